"""The outbox: what this host owes the fleet, kept in its state file.

Rules of this file:
* Everything bound for the database passes through here first and leaves
  only after the database committed it: the database away, a restart, a
  crash lose nothing. Each row's `seq` (never reused: AUTOINCREMENT) is the
  event's sequence in the fleet, so a replay is harmless ((host, seq) is
  unique there).
* Bounded: past `limit` rows, the oldest events are summarised, one row per
  (address, signature, service) with their danger and attempts added up,
  and counted, until 9/10 of the limit is reached; blocks and unblocks are
  never summarised. Where most events are alone for their address (nothing
  folds), those are dropped, counted and logged. Nothing goes silently.
* Summarising works in steps of at most STEP rows, a short transaction
  each, and the sender yields to the loop between steps: the state file is
  shared with the daemon's own commits, so one long transaction (or a
  thread) would hold those up as surely as work on the loop would. A pass
  reads the oldest tenth of the limit in steps, folds it in memory, and
  writes it back in steps that each replace some groups' rows atomically:
  a crash mid-pass loses nothing. Nothing else writes the outbox meanwhile
  (the sender runs the steps and sends nothing until the pass ends).
* It also keeps each remote part's cursor (where its stream of decisions stands).
* An event's body is a line of text (event_line); blocks and unblocks are JSON.
"""

from __future__ import annotations

import json
import logging
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..state import State

log = logging.getLogger("syslogban.fleet")

EVENT, BLOCK, UNBLOCK = "event", "block", "unblock"
STEP = 500  # rows a summarising step reads or replaces (one short transaction)
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
    dropped: int = 0     # events that folded into nothing (all of distinct addresses)


class Outbox:
    def __init__(self, path: str | os.PathLike[str], limit: int) -> None:
        self._state = State(path)  # a connection of its own to the state file
        self._db = self._state.db
        self.limit = limit
        self.counters = OutboxCounters()
        self._size = int(self._db.execute("SELECT count(*) FROM fleet_outbox").fetchone()[0])
        self._folding = False  # summarising, down to 9/10 of the limit
        self._pass: _Pass | None = None

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

    @property
    def full(self) -> bool:
        """Past the limit (or summarising, down to 9/10 of it): `summarise` has work."""
        return (self._pass is not None or self._size > self.limit
                or (self._folding and self._size > self.limit * 9 // 10))

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

    def cursor(self, remote: str) -> str:
        """Where the remote part's stream stands (the fleet: a pg_snapshot's text)."""
        row = self._db.execute("SELECT position FROM remote_cursor WHERE remote = ?",
                               (remote,)).fetchone()
        return str(row[0]) if row else ""

    def set_cursor(self, remote: str, position: str) -> None:
        with self._state.transaction():
            self._db.execute("INSERT INTO remote_cursor VALUES (?, ?) ON CONFLICT(remote) "
                             "DO UPDATE SET position = excluded.position", (remote, position))

    def close(self) -> None:
        self._state.close()

    def summarise(self) -> int:
        """One step of summarising, in one short transaction: the rows it read or
        replaced (STEP at most); 0 when there is nothing to do."""
        if self._pass is None:
            self._folding = self.full
            if not self._folding:
                return 0
            self._pass = _Pass(max(self.limit // 10, STEP))
        step = self._pass
        if not step.read_all:
            touched = self._read(step)
            if touched:
                return touched
        if step.written == 0:  # the whole region read: lone events dropped?
            step.drop_singles = step.rows - len(step.keys) < step.rows // 4
        touched = self._write(step)
        if step.written == len(step.keys):
            self._end_pass()
        return max(touched, 1)

    def _read(self, step: _Pass) -> int:
        rows = self._db.execute("SELECT seq, body FROM fleet_outbox WHERE kind = ? AND seq > ? "
                                "ORDER BY seq LIMIT ?",
                                (EVENT, step.after, min(STEP, step.region - step.rows))).fetchall()
        for seq, body in rows:
            step.add(seq, *event_fields(body))
        if rows:
            step.after = rows[-1][0]
        step.rows += len(rows)
        step.read_all = not rows or step.rows >= step.region
        return len(rows)

    def _write(self, step: _Pass) -> int:
        """Replaces the rows of the next groups (STEP rows at most) by one row each,
        or by none (a lone event, where nothing much folds): atomically."""
        seqs: list[int] = []
        folded: list[tuple[str, str]] = []
        dropped = 0
        while step.written < len(step.keys):
            group = step.written
            rows = step.seqs[group].tolist()
            if len(seqs) + len(rows) > STEP:
                break
            step.written += 1
            if len(rows) > 1:
                address, signature, service, _ = step.keys[group]
                folded.append((EVENT, event_line(address, signature, service,
                                                 step.danger[group], step.attempts[group],
                                                 step.at[group])))
            elif not step.drop_singles:
                continue
            else:
                dropped += 1
            seqs += rows
        with self._state.transaction():
            self._db.execute("DELETE FROM fleet_outbox WHERE seq IN "
                             "(SELECT value FROM json_each(?))", (json.dumps(seqs),))
            self._db.executemany("INSERT INTO fleet_outbox (kind, body) VALUES (?, ?)", folded)
        gone = len(seqs) - len(folded)
        self._size -= gone
        self.counters.summarised += gone - dropped
        self.counters.dropped += dropped
        step.summarised += gone - dropped
        step.dropped += dropped
        return len(seqs)

    def _end_pass(self) -> None:
        step, self._pass = self._pass, None
        assert step is not None
        if step.summarised or step.dropped:
            log.warning("fleet outbox full (%d rows): %d of its oldest events summarised "
                        "(their danger and attempts kept)%s", self.limit, step.summarised,
                        f", {step.dropped} dropped (each alone for its address)"
                        if step.dropped else "")


class _Pass:
    """One pass of summarising over the oldest `region` events: read in steps and
    grouped per (address, signature, service) in memory with their rows' seqs
    (a group holds STEP rows at most: a busy address makes several), then
    written back in steps, group after group. Numbers in flat lists and arrays,
    not an object per group: a region's 100,000 groups would cost pauses of a
    quarter of a second in the garbage collector."""

    __slots__ = ("region", "rows", "after", "read_all", "index", "keys", "danger", "attempts",
                 "at", "seqs", "written", "drop_singles", "summarised", "dropped")

    def __init__(self, region: int) -> None:
        self.region = region
        self.rows = 0
        self.after = 0           # the last seq read
        self.read_all = False
        self.index: dict[tuple[str, str, str, int], int] = {}  # key and part -> group
        self.keys: list[tuple[str, str, str, int]] = []
        self.danger: list[int] = []
        self.attempts: list[int] = []
        self.at: list[float] = []
        self.seqs: list[array[int]] = []  # each group's rows
        self.written = 0             # groups written back
        self.drop_singles = False    # nothing much folds: lone events are dropped
        self.summarised = 0
        self.dropped = 0

    def add(self, seq: int, address: str, signature: str, service: str, danger: int,
            at: float, attempts: int) -> None:
        part = 0
        group = self.index.get((address, signature, service, part))
        while group is not None and len(self.seqs[group]) >= STEP:  # no group outgrows a step
            part += 1
            group = self.index.get((address, signature, service, part))
        if group is None:
            group = self.index[address, signature, service, part] = len(self.keys)
            self.keys.append((address, signature, service, part))
            self.danger.append(0)
            self.attempts.append(0)
            self.at.append(at)
            self.seqs.append(array("q"))
        self.danger[group] += danger
        self.attempts[group] += attempts
        self.at[group] = max(self.at[group], at)
        self.seqs[group].append(seq)
