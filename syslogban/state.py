"""State: what syslogban remembers across restarts, in SQLite (WAL mode).

Rules of this file:
* A thin shell: rows in, rows out. It decides nothing (that is blocker.py).
* Every write is one transaction, committed before it returns: the daemon
  reports a block applied only after `record` returned, so a block it
  reported survives `kill -9` at any moment. In WAL mode a commit is in the
  operating system's hands when it returns (synchronous=NORMAL); durable=True
  also waits for the disk (FULL), for power losses, at a flush per batch.
* The file is private (0600): evidence lines are log text about users.
* The schema has a version; MIGRATIONS turns any older file into the
  current one, in order, inside one transaction each.
* Any block can be written: counts past SQLite's 64-bit integers are stored
  at its limit.
* One bad row never costs the others: a block row that cannot be restored
  (unreadable, a target that is no address or is never blocked, an end
  beyond durations.MAX_DURATION written by an older syslogban) is skipped,
  logged and counted, and left in the file for the admin to look at.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .address import unblockable
from .blocker import Block, History, normal_target
from .durations import MAX_DURATION
from .errors import SyslogbanError, os_error

log = logging.getLogger("syslogban.state")

INTEGER_MAX = 2**63 - 1  # SQLite's largest INTEGER

MIGRATIONS: tuple[str, ...] = (
    # 1: active blocks, and the history of everything ever blocked or scored
    """
    CREATE TABLE blocks (
        target     TEXT PRIMARY KEY,
        since      REAL NOT NULL,
        until      REAL,               -- NULL: permanent
        reason     TEXT NOT NULL,
        score      INTEGER NOT NULL,
        signatures TEXT NOT NULL,      -- JSON list of signature ids
        nth        INTEGER NOT NULL,
        lifetime   INTEGER NOT NULL,
        evidence   TEXT NOT NULL       -- JSON list of the last log lines
    );
    CREATE TABLE offenders (
        target   TEXT PRIMARY KEY,
        blocks   INTEGER NOT NULL,
        lifetime INTEGER NOT NULL
    );
    """,
    # 2: the CrowdSec bridge: what waits for the LAPI (alerts of this host's
    #    blocks, the lookup of their decision ids, deletions), and the LAPI
    #    decisions this host knows of (pulled ones, and its own pushed ones)
    """
    CREATE TABLE crowdsec_outbox (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL,
        kind   TEXT NOT NULL,      -- alert, lookup or delete
        body   TEXT NOT NULL       -- JSON
    );
    CREATE TABLE crowdsec_decisions (
        id     INTEGER PRIMARY KEY,  -- the LAPI's decision id
        target TEXT NOT NULL,
        until  REAL NOT NULL,
        origin TEXT NOT NULL,
        own    INTEGER NOT NULL      -- 1: this host's block, pushed as an alert
    );
    """,
    # 3: where a block came from (empty: this host), and the remote parts'
    # outbox (syslogban.fleet.outbox) and cursors
    """
    ALTER TABLE blocks ADD COLUMN origin TEXT NOT NULL DEFAULT '';
    CREATE TABLE fleet_outbox (
        seq  INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the fleet's (host, seq)
        kind TEXT NOT NULL,                      -- event, block, unblock
        body TEXT NOT NULL                       -- JSON
    );
    CREATE TABLE remote_cursor (
        remote   TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    );
    """,
)


class StateError(SyslogbanError):
    """The state file cannot be read or written; the message says which and why."""


class State:
    def __init__(self, path: str | os.PathLike[str], durable: bool = False) -> None:
        """Opens (creating, 0600) and migrates the state file; ':memory:' keeps none."""
        self.path = str(path)
        self.skipped = 0  # block rows load() could not restore
        try:
            if self.path != ":memory:":
                _create_private(Path(self.path))
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except PermissionError as exc:
            raise StateError(f"state file {self.path}: {os_error(exc)} (run as root, or "
                             "name a writable file: --state PATH)") from None
        except OSError as exc:
            raise StateError(f"state file {self.path}: {os_error(exc)}") from None
        except sqlite3.Error as exc:
            raise StateError(f"state file {self.path}: {exc}") from None

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.version
        if current > len(MIGRATIONS):
            raise StateError(f"state file {self.path} has schema version {current}, newer "
                             f"than this syslogban ({len(MIGRATIONS)}): upgrade syslogban")
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self._transaction():
                for statement in filter(str.strip, script.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={version}")

    def _transaction(self) -> Transaction:
        return Transaction(self._db, self.path)

    # For the modules that keep tables of their own in the state file (the
    # fleet's outbox), each over a connection of its own.
    transaction = _transaction

    @property
    def db(self) -> sqlite3.Connection:
        return self._db

    # -------------------------------------------------------------- reading

    def load(self, now: float) -> tuple[list[Block], dict[str, History], list[Block]]:
        """(active blocks, history, blocks that ended while syslogban was down).

        The ended ones are deleted here; the caller unblocks them.
        """
        try:
            rows = self._db.execute("SELECT target, since, until, reason, score, signatures,"
                                    " nth, lifetime, origin FROM blocks").fetchall()
            history = {target: History(blocks, lifetime) for target, blocks, lifetime
                       in self._db.execute("SELECT target, blocks, lifetime FROM offenders")}
        except sqlite3.Error as exc:
            raise StateError(f"state file {self.path}: cannot read: {exc}") from None
        blocks = []
        for row in rows:
            try:
                blocks.append(_restorable(_block(row), now))
            except (ValueError, TypeError, OverflowError) as exc:
                self.skipped += 1
                log.warning("state file %s: block row %.60r not restored: %s",
                            self.path, row[0], exc)
        ended = [b for b in blocks if b.until <= now]
        self.remove(b.target for b in ended)
        return [b for b in blocks if b.until > now], history, ended

    def evidence(self, target: str) -> list[str]:
        row = self._db.execute("SELECT evidence FROM blocks WHERE target = ?",
                               (target,)).fetchone()
        return json.loads(row[0]) if row else []

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM blocks").fetchone()[0])

    # -------------------------------------------------------------- writing

    def record(self, blocks: Sequence[tuple[Block, Sequence[str]]],
               history: Mapping[str, History], removed: Iterable[str] = ()) -> None:
        """Stores new blocks (with their evidence) and history and forgets the
        `removed` ones (no target in both), in one transaction."""
        with self._transaction():
            self._db.executemany("DELETE FROM blocks WHERE target = ?",
                                 [(t,) for t in removed])
            self._db.executemany(
                "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(b.target, b.since, None if b.permanent else b.until, b.reason,
                  _integer(b.score), json.dumps(list(b.signatures)), _integer(b.nth),
                  _integer(b.lifetime), json.dumps(list(ev)), b.origin)
                 for b, ev in blocks])
            self._save_history(history)

    def remove(self, targets: Iterable[str]) -> None:
        """Forgets blocks that ended or were lifted (their history stays)."""
        with self._transaction():
            self._db.executemany("DELETE FROM blocks WHERE target = ?",
                                 [(t,) for t in targets])

    def save_history(self, history: Mapping[str, History]) -> None:
        with self._transaction():
            self._save_history(history)

    def _save_history(self, history: Mapping[str, History]) -> None:
        self._db.executemany(
            "INSERT INTO offenders VALUES (?, ?, ?) ON CONFLICT(target) DO UPDATE "
            "SET blocks = excluded.blocks, lifetime = excluded.lifetime",
            [(target, _integer(h.blocks), _integer(h.lifetime))
             for target, h in history.items()])

    def close(self) -> None:
        self._db.close()


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK and StateError."""

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self.db, self.path = db, path

    def __enter__(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StateError(f"state file {self.path}: cannot write: {exc}") from None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error as error:
                exc = error
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # nothing to roll back: the failure was BEGIN or COMMIT itself
        if isinstance(exc, sqlite3.Error):
            raise StateError(f"state file {self.path}: cannot write: {exc}") from None


def _integer(value: int) -> int:
    """A count as SQLite stores it: at most its largest integer (2**63 - 1).

    A count that large is absurd, but one that overflows makes the whole
    transaction fail, every later one with it (the writes that wait are
    written together)."""
    return min(value, INTEGER_MAX)


def _create_private(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _block(row: tuple[object, ...]) -> Block:
    target, since, until, reason, score, signatures, nth, lifetime, origin = row
    return Block(str(target), float(since),  # type: ignore[arg-type]
                 math.inf if until is None else float(until),  # type: ignore[arg-type]
                 str(reason), int(score), tuple(json.loads(str(signatures))),  # type: ignore[call-overload]
                 int(nth), int(lifetime), str(origin))  # type: ignore[call-overload]


def _restorable(block: Block, now: float) -> Block:
    """The block as stored, or ValueError saying why it cannot be restored."""
    if normal_target(block.target) != block.target:
        raise ValueError("not the normal spelling of an address or prefix")
    refused = unblockable(ipaddress.ip_network(block.target))
    if refused:
        raise ValueError(f"{block.target} {refused}")
    if math.isnan(block.until) or math.isnan(block.since):
        raise ValueError("no valid time")
    # A day's slack: the clock may have been set back since the block began.
    if block.until != math.inf and block.until - now > MAX_DURATION + 86400:
        raise ValueError(f"ends {block.until - now:.3g} s from now, beyond the longest "
                         "block (10 years)")
    return block
