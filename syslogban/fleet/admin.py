"""`syslogban fleet init` and `syslogban fleet status`: the admin's view.

A thin shell over schema.py with a synchronous psycopg connection; every
database error becomes a FleetError with one line an admin can act on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ..errors import SyslogbanError
from . import schema


class FleetError(SyslogbanError):
    """The fleet's database refused or cannot be reached; the message says which."""


def describe(exc: BaseException) -> str:
    """The first line of a database error, without the driver's class names."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextmanager
def connection(dsn: str, timeout: float = 10.0) -> Iterator[Any]:
    import psycopg
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout)),
                             autocommit=True) as conn:
            yield conn
    except psycopg.Error as exc:
        raise FleetError(f"fleet database: {describe(exc)}") from None


def init(dsn: str) -> str:
    """Creates or migrates the schema; what was done, in words."""
    with connection(dsn) as conn:
        try:
            before, after = schema.migrate(conn)
        except RuntimeError as exc:
            raise FleetError(str(exc)) from None
    if before == after:
        return f"fleet schema is up to date (version {after})"
    return f"fleet schema migrated from version {before} to {after}"


def status(dsn: str) -> dict[str, Any]:
    """The schema version, every host with its last contact and backlog, the decisions."""
    with connection(dsn) as conn:
        version = schema.version(conn)
        if version == 0:
            raise FleetError("fleet database: no fleet schema yet: run `syslogban fleet init`")
        hosts = [{"name": name, "first_seen": _iso(first), "last_contact": _iso(last),
                  "backlog": backlog, "last_seq": seq}
                 for name, first, last, backlog, seq in schema.hosts(conn)]
        active, events = conn.execute(
            "SELECT (SELECT count(*) FROM syslogban.active),"
            " (SELECT count(*) FROM syslogban.events"
            "  WHERE at > now() - interval '1 hour')").fetchone()
    return {"version": version, "hosts": hosts, "active_decisions": active,
            "events_last_hour": events}


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")
