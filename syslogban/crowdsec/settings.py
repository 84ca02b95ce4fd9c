"""The [crowdsec] table of the configuration file: where the LAPI is, and
which of the two roles syslogban plays there.

    [crowdsec]
    url = "http://127.0.0.1:8080/"   # the Local API
    bouncer_key = "..."              # pull decisions (omit: no pulling)
    machine_id = "mx1"               # push alerts (omit: no pushing)
    machine_password = "..."
    poll = "10s"

Rules of this file:
* Pure: a mapping in (the TOML table, or --crowdsec KEY=VALUE flags, all
  strings), settings or ValueError with the key and the reason out.
* The secrets never leave through `shown()` (what `status` prints).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..durations import parse_duration

KEYS = ("url", "bouncer_key", "machine_id", "machine_password", "poll")
POLL_RANGE = (1.0, 3600.0)
DEFAULT_POLL = 10.0


@dataclass(frozen=True, slots=True)
class CrowdSecSettings:
    url: str = ""
    bouncer_key: str = ""       # empty: no pulling
    machine_id: str = ""        # empty: no pushing
    machine_password: str = ""
    poll: float = DEFAULT_POLL

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @property
    def pulls(self) -> bool:
        return bool(self.url and self.bouncer_key)

    @property
    def pushes(self) -> bool:
        return bool(self.url and self.machine_id)

    @property
    def plain_remote(self) -> bool:
        """http to another host: the key and the password cross the network in clear."""
        parts = urlsplit(self.url)
        if parts.scheme != "http":
            return False
        host = parts.hostname or ""
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host != "localhost"

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> CrowdSecSettings:
        unknown = sorted(set(table) - set(KEYS))
        if unknown:
            raise ValueError(f"crowdsec: unknown key {', '.join(unknown)} "
                             f"(known: {', '.join(KEYS)})")
        if not table:
            return cls()
        values = {key: _text(key, table[key]) for key in KEYS[:4] if key in table}
        url = values.get("url", "")
        if not url:
            raise ValueError("crowdsec: url is missing: write the Local API's address, "
                             "e.g. url = \"http://127.0.0.1:8080/\"")
        _check_url(url)
        if not url.endswith("/"):
            values["url"] = url + "/"
        if bool(values.get("machine_id")) != bool(values.get("machine_password")):
            raise ValueError("crowdsec: machine_id and machine_password go together "
                             "(both to push alerts, neither to push none)")
        if not values.get("bouncer_key") and not values.get("machine_id"):
            raise ValueError("crowdsec: set bouncer_key to pull decisions, machine_id and "
                             "machine_password to push alerts, or both")
        poll = DEFAULT_POLL
        if "poll" in table:
            try:
                poll = parse_duration(table["poll"])
            except ValueError as exc:
                raise ValueError(f"crowdsec: poll: {exc}") from None
            if not POLL_RANGE[0] <= poll <= POLL_RANGE[1]:
                raise ValueError("crowdsec: poll must be from 1s to 1h")
        return cls(**values, poll=poll)

    def shown(self) -> dict[str, Any]:
        """For `syslogban status`: the secrets as ***."""
        return {"url": self.url, "bouncer_key": "***" if self.bouncer_key else "",
                "machine_id": self.machine_id,
                "machine_password": "***" if self.machine_password else "",
                "poll": self.poll}


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"crowdsec: {key} must be a non-empty string")
    if any(not c.isprintable() for c in value):
        raise ValueError(f"crowdsec: {key} holds a control character")
    return value.strip()


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        if parts.port == 0:  # .port also raises ValueError for one out of range
            raise ValueError("port 0")
    except ValueError as exc:
        raise ValueError(f"crowdsec: url {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"crowdsec: url {url!r}: write http://HOST:PORT/ or "
                         "https://HOST:PORT/")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("crowdsec: url: no query, fragment or user name here "
                         "(the credentials have keys of their own)")
