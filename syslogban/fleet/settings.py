"""The [fleet] table of the configuration file (and `--fleet KEY=VALUE`).

Pure: a mapping in, a FleetSettings out, or ValueError naming the key.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..durations import parse_duration


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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"unknown fleet key {', '.join(unknown)} "
                             f"(one of {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for key, raw in table.items():
            try:
                values[key] = _PARSE[key](raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"fleet.{key}: {exc}") from None
        settings = cls(**values)
        if settings.dsn and not settings.dsn.startswith(("postgresql://", "postgres://")):
            raise ValueError("fleet.dsn: write a libpq URI, postgresql://ROLE@HOST/DATABASE")
        return settings


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _count(low: int, high: int) -> Any:
    def parse(value: Any) -> int:
        number = int(value)
        if isinstance(value, bool) or not low <= number <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return number
    return parse


def _rate(value: Any) -> float:
    number = float(value)
    if not 0 <= number <= 1e6:
        raise ValueError("must be a number from 0 to 1000000")
    return number


def _finite_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds == float("inf"):
        raise ValueError("must be a finite duration")
    return seconds


_PARSE = {"dsn": _text, "name": _text, "outbox": _count(1000, 10**9),
          "batch": _count(1, 10**6), "max_duration": _finite_duration, "rate": _rate,
          "keep": _finite_duration, "connect_timeout": _finite_duration}
