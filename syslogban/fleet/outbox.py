"""The outbox: what this host owes the fleet, kept in its state file.

Rules of this file:
* Everything bound for the database passes through here first and leaves
  only after the database committed it: the database away, a restart, a
  crash lose nothing. Each row's `seq` (never reused: AUTOINCREMENT) is the
  event's sequence in the fleet, so a replay is harmless ((host, seq) is
  unique there).
* Bounded: past `limit` rows, the oldest events are summarised, one row per
  (address, signature) with their danger and attempts added up, and counted; blocks and
  unblocks are never summarised. Nothing is dropped silently.
* It also keeps each remote part's cursor (the last decision it took).
* An event's body is a line of text (event_line); blocks and unblocks are JSON.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..state import State

log = logging.getLogger("syslogban.fleet")

EVENT, BLOCK, UNBLOCK = "event", "block", "unblock"
_CLEAN = str.maketrans("\t\n", "  ")


def event_line(address: str, signature: str, service: str, danger: int, attempts: int,
               at: float) -> str:
    """An event as the outbox keeps it and the database's observe() reads it
    (after its sequence): fields apart by tabs, which rule ids and service
    names never hold (replaced, to be sure). `danger` is what the line adds
    to the score, `attempts` the failed logins it adds (attempts.py), so that
    `attempts = N` counts failed logins fleet-wide, not lines. Text, not
    JSON: the fleet's 5,000 events a second a host would spend most of their
    time in JSON."""
    return (f"{address}\t{signature.translate(_CLEAN)}\t{service.translate(_CLEAN)}\t"
            f"{int(danger)}\t{at!r}\t{int(attempts)}")


def event_fields(line: str) -> tuple[str, str, str, int, float, int]:
    """(address, signature, service, danger, at, attempts) of an event line; a
    line from before attempts were sent (five fields) is one attempt."""
    address, signature, service, danger, at, *attempts = line.split("\t")
    return address, signature, service, int(danger), float(at), int(attempts[0]) if attempts else 1


@dataclass(slots=True)
class OutboxCounters:
    queued: int = 0
    sent: int = 0
    summarised: int = 0  # events folded into summary rows while the outbox was full


class Outbox:
    def __init__(self, path: str | os.PathLike[str], limit: int) -> None:
        self._state = State(path)  # a connection of its own to the state file
        self._db = self._state.db
        self.limit = limit
        self.counters = OutboxCounters()
        self._size = int(self._db.execute("SELECT count(*) FROM fleet_outbox").fetchone()[0])

    def __len__(self) -> int:
        return self._size

    def append(self, items: Sequence[tuple[str, Any]]) -> None:
        """Queues (kind, body) rows in one transaction."""
        if not items:
            return
        with self._state.transaction():
            self._db.executemany("INSERT INTO fleet_outbox (kind, body) VALUES (?, ?)",
                                 [(kind, body if kind == EVENT else json.dumps(body))
                                  for kind, body in items])
            self._size += len(items)
            self.counters.queued += len(items)
            if self._size > self.limit:
                self._summarise(self._size - self.limit * 9 // 10)

    def peek(self, limit: int) -> list[tuple[int, str, Any]]:
        """The oldest rows, in order: (seq, kind, body)."""
        rows = self._db.execute("SELECT seq, kind, body FROM fleet_outbox ORDER BY seq LIMIT ?",
                                (limit,)).fetchall()
        return [(seq, kind, body if kind == EVENT else json.loads(body))
                for seq, kind, body in rows]

    def remove(self, last: int) -> None:
        """Forgets every row up to `last`: the database committed them."""
        with self._state.transaction():
            gone = self._db.execute("DELETE FROM fleet_outbox WHERE seq <= ?", (last,)).rowcount
        self._size -= gone
        self.counters.sent += gone

    def floor(self, seq: int) -> None:
        """The next sequence is above `seq` (the database has seen up to it: a
        state file lost or restored from a backup must not reuse numbers)."""
        with self._state.transaction():
            self._db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) "
                             "WHERE name = 'fleet_outbox'", (seq,))
            self._db.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'fleet_outbox', ? "
                             "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence "
                             "WHERE name = 'fleet_outbox')", (seq,))

    def cursor(self, remote: str) -> int:
        row = self._db.execute("SELECT position FROM remote_cursor WHERE remote = ?",
                               (remote,)).fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, remote: str, position: int) -> None:
        with self._state.transaction():
            self._db.execute("INSERT INTO remote_cursor VALUES (?, ?) ON CONFLICT(remote) "
                             "DO UPDATE SET position = excluded.position", (remote, position))

    def close(self) -> None:
        self._state.close()

    def _summarise(self, count: int) -> None:
        """The oldest `count` events become one row per (address, signature, service)."""
        rows = self._db.execute("SELECT seq, body FROM fleet_outbox WHERE kind = ? ORDER BY seq "
                                "LIMIT ?", (EVENT, count)).fetchall()
        if not rows:
            return
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for _, body in rows:
            address, signature, service, danger, at, attempts = event_fields(body)
            group = groups.setdefault((address, signature, service), [0, 0, 0.0])
            group[0] += danger
            group[1] += attempts
            group[2] = max(group[2], at)
        self._db.execute("DELETE FROM fleet_outbox WHERE kind = ? AND seq <= ?", (EVENT, rows[-1][0]))
        self._db.executemany("INSERT INTO fleet_outbox (kind, body) VALUES (?, ?)",
                             [(EVENT, event_line(a, sig, svc, danger, attempts, at))
                              for (a, sig, svc), (danger, attempts, at) in groups.items()])
        folded = len(rows) - len(groups)
        self._size -= folded
        self.counters.summarised += folded
        log.warning("fleet outbox full (%d rows): %d oldest events summarised into %d rows "
                    "(their danger and attempts kept)", self.limit, len(rows), len(groups))
