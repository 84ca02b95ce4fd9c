"""The [fleet] table of the configuration file (and `--fleet KEY=VALUE`).

Pure: FLEET declares the keys in the configuration schema's vocabulary
(syslogban/schema.py); FleetSettings is what they make.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..schema import TEXT, Kind, Option, Table, duration, number, whole


@dataclass(frozen=True, slots=True)
class FleetSettings:
    dsn: str = ""                  # libpq URI; empty: no fleet
    name: str = ""                 # this host in the fleet (its role); empty: the host name
    outbox: int = 1_000_000        # events kept while the database is away; older summarised
    batch: int = 5000              # events sent in one transaction at most
    max_duration: float = 86400.0  # longest remote block taken (longer ones are shortened)
    rate: float = 200.0            # remote blocks taken a second (bursts of a minute's worth)
    keep: float = 172800.0         # how long events stay in the database
    connect_timeout: float = 5.0

    @property
    def enabled(self) -> bool:
        return bool(self.dsn)

    @property
    def host(self) -> str:
        return self.name or socket.gethostname()

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> FleetSettings:
        """From the [fleet] table (or --fleet flags), checked by the configuration's
        schema (FLEET below); raises ConfigError (a ValueError)."""
        from ..config import parse_table
        return cls(**parse_table("fleet", table))


def _dsn(value: Any) -> str:
    dsn = TEXT.parse(value)
    if dsn and not dsn.startswith(("postgresql://", "postgres://")):
        raise ValueError("write a libpq URI, postgresql://ROLE@HOST/DATABASE")
    return dsn


def without_password(dsn: str) -> str:
    """A libpq URI as `status` may show it: the password replaced by ***."""
    dsn = re.sub(r"(?<=[?&])password=[^&]*", "password=***", dsn)
    scheme, sep, rest = dsn.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" not in userinfo:
        return dsn
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


_D = FleetSettings()
FINITE = duration(maximum=10 * 365 * 86400.0)
FLEET = Table("fleet", (
    Option("dsn", Kind(_dsn, without_password), _D.dsn,
           "libpq URI of the fleet's PostgreSQL (empty: no fleet)"),
    Option("name", TEXT, _D.name, "this host in the fleet (its role; empty: the host name)"),
    Option("outbox", whole(1000, 10**9), _D.outbox,
           "events kept while the database is away (older ones summarised)"),
    Option("batch", whole(1, 10**6), _D.batch, "events sent in one transaction at most"),
    Option("max_duration", FINITE, _D.max_duration,
           "longest remote block taken (longer ones are shortened)"),
    Option("rate", number(0, 1e6), _D.rate,
           "remote blocks taken a second (bursts of a minute's worth)"),
    Option("keep", FINITE, _D.keep, "how long events stay in the database"),
    Option("connect_timeout", FINITE, _D.connect_timeout, "give up connecting after this"),
), help="several hosts sharing attacks and blocks through PostgreSQL", make=FleetSettings,
    restart=True)
