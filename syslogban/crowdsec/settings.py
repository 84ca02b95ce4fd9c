"""The [crowdsec] table of the configuration file: where the LAPI is, and
which of the two roles syslogban plays there.

    [crowdsec]
    url = "http://127.0.0.1:8080/"   # the Local API
    bouncer_key = "..."              # pull decisions (omit: no pulling)
    machine_id = "mx1"               # push alerts (omit: no pushing)
    machine_password = "..."
    poll = "10s"

Rules of this file:
* Pure: CROWDSEC declares the keys in the configuration schema's vocabulary
  (syslogban/schema.py), with the rule between them; CrowdSecSettings is what
  they make.
* The secrets never leave through `shown()` or the schema (what `status` and
  `config show` print: ***).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..schema import Kind, Option, Table, duration, secret

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
        """From the [crowdsec] table (or --crowdsec flags), checked by the
        configuration's schema (CROWDSEC below); raises ConfigError (a ValueError)."""
        from ..config import parse_table
        return cls(**parse_table("crowdsec", table))

    def shown(self) -> dict[str, Any]:
        """For `syslogban status`: the secrets as ***."""
        return {"url": self.url, "bouncer_key": "***" if self.bouncer_key else "",
                "machine_id": self.machine_id,
                "machine_password": "***" if self.machine_password else "",
                "poll": self.poll}


def _text(value: Any) -> str:
    """A string (empty: not set), without control characters."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if any(not c.isprintable() for c in value):
        raise ValueError("holds a control character")
    return value.strip()


def _url(value: Any) -> str:
    url = _text(value)
    if not url:
        return url
    try:
        parts = urlsplit(url)
        if parts.port == 0:  # .port also raises ValueError for one out of range
            raise ValueError("port 0")
    except ValueError as exc:
        raise ValueError(f"{url}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url}: write http://HOST:PORT/ or https://HOST:PORT/")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("no query, fragment or user name here (the credentials have keys "
                         "of their own)")
    return url if url.endswith("/") else url + "/"


def _roles(table: Mapping[str, Any]) -> list[str]:
    """Which keys need which: nothing set is off; otherwise a url and at least one role."""
    if not any(table.get(key) for key in ("url", "bouncer_key", "machine_id",
                                          "machine_password")):
        return []
    if not table.get("url"):
        return ["url is missing: write the Local API's address, "
                "e.g. url = \"http://127.0.0.1:8080/\""]
    if bool(table.get("machine_id")) != bool(table.get("machine_password")):
        return ["machine_id and machine_password go together "
                "(both to push alerts, neither to push none)"]
    if not table.get("bouncer_key") and not table.get("machine_id"):
        return ["set bouncer_key to pull decisions, machine_id and machine_password to "
                "push alerts, or both"]
    return []


TEXT = Kind(_text)
CROWDSEC = Table("crowdsec", (
    Option("url", Kind(_url), "", "the Local API, e.g. http://127.0.0.1:8080/ (empty: off)"),
    Option("bouncer_key", secret(TEXT), "", "pull decisions with this bouncer key"),
    Option("machine_id", TEXT, "", "push alerts as this machine"),
    Option("machine_password", secret(TEXT), "", "the machine's password"),
    Option("poll", duration(minimum=POLL_RANGE[0], maximum=POLL_RANGE[1]), DEFAULT_POLL,
           "how often to ask for new decisions (1s to 1h)"),
), help="CrowdSec's Local API: pull its decisions, push syslogban's blocks as alerts",
    check=_roles, make=CrowdSecSettings, restart=True)
