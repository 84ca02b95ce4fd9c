"""The bridge's part of the state file: its outbox and its book of decisions.

Rules of this file:
* A thin shell over two tables of the state file (state.py migrates them):
  crowdsec_outbox holds what waits for the LAPI, in order; crowdsec_decisions
  the LAPI decisions this host knows of. Rows in, rows out.
* Its own connection to the file: the bridge writes from its worker thread
  while the daemon commits blocks from another, and SQLite (WAL) serialises
  the two writers; one connection shared by two threads would mix their
  transactions.
* Each change is one transaction, so an operation and what follows from it
  (an alert sent, the lookup of its decision ids) never both or neither exist.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..state import StateError, Transaction
from .decisions import Decision


@dataclass(frozen=True, slots=True)
class Operation:
    """Something the LAPI must be told: an alert, a lookup of its decisions, a deletion."""

    id: int
    target: str
    kind: str          # alert, lookup or delete
    body: dict[str, Any]


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StateError(f"state file {path}: {exc}") from None

    def operations(self) -> list[Operation]:
        rows = self._read("SELECT id, target, kind, body FROM crowdsec_outbox ORDER BY id")
        return [Operation(int(i), str(t), str(k), json.loads(str(b))) for i, t, k, b in rows]

    def decisions(self) -> list[Decision]:
        rows = self._read("SELECT id, target, until, origin, own FROM crowdsec_decisions")
        return [Decision(int(i), str(t), float(u), str(o), bool(own))
                for i, t, u, o, own in rows]

    def queue(self, target: str, kind: str, body: dict[str, Any]) -> Operation:
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO crowdsec_outbox (target, kind, body) VALUES (?, ?, ?)",
                (target, kind, json.dumps(body)))
        return Operation(int(cursor.lastrowid or 0), target, kind, body)

    def finish(self, done: Iterable[int], follow: Sequence[tuple[str, str, dict[str, Any]]] = (),
               added: Iterable[Decision] = (), removed: Iterable[int] = ()) -> list[Operation]:
        """Removes finished operations, queues what follows from them and
        updates the book, in one transaction; the queued operations."""
        queued = []
        with self._transaction():
            self._db.executemany("DELETE FROM crowdsec_outbox WHERE id = ?",
                                 [(i,) for i in done])
            for target, kind, body in follow:
                cursor = self._db.execute(
                    "INSERT INTO crowdsec_outbox (target, kind, body) VALUES (?, ?, ?)",
                    (target, kind, json.dumps(body)))
                queued.append(Operation(int(cursor.lastrowid or 0), target, kind, body))
            self._db.executemany("DELETE FROM crowdsec_decisions WHERE id = ?",
                                 [(i,) for i in removed])
            self._db.executemany("INSERT OR REPLACE INTO crowdsec_decisions VALUES (?, ?, ?, ?, ?)",
                                 [(d.id, d.target, d.until, d.origin, int(d.own))
                                  for d in added])
        return queued

    def close(self) -> None:
        self._db.close()

    def _read(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"state file {self.path}: cannot read: {exc}") from None

    def _transaction(self) -> Transaction:
        return Transaction(self._db, self.path)
