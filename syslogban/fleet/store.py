"""The fleet's SQL: psycopg 3 async, one statement per question.

Rules of this file:
* The shell around decide.py: it fetches the events of the addresses a batch
  touched, asks the pure decision, and writes what it returns. Nothing here
  scores.
* One batch is one transaction: the per-address locks first (in one order,
  so no deadlock), then the events, the revocations, this host's blocks and
  last the fleet-wide decisions. Under the locks, two hosts that see the
  same address at once are serialised: the second sees the first's events,
  so a crossing is never missed and never decided twice.
* What the database refuses for one row (a revocation without the grant) is
  refused in a savepoint and reported; the rest of the batch still commits.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..blocker import Block, BlockerConfig, History
from ..durations import PERMANENT
from ..remote import RemoteDecision
from .admin import FleetError
from .decide import Event, decide, evidence
from .outbox import BLOCK, EVENT, UNBLOCK
from .schema import NOTIFY_CHANNEL
from .settings import FleetSettings

_COLUMNS = ("id, target::text, extract(epoch FROM since)::float8,"
            " extract(epoch FROM until)::float8, origin, reason, revoked, score, signatures,"
            " nth, lifetime, evidence")


@asynccontextmanager
async def atomic(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """conn.transaction(), except for a task cancelled inside it (a daemon
    stopping mid-batch): the connection is closed then, not rolled back. Its
    statement is still running, so psycopg's ROLLBACK would fail and print
    "error ignored in rollback"; the server rolls back a transaction whose
    connection is gone, and the outbox still holds the batch."""
    async with conn.transaction():
        try:
            yield
        except asyncio.CancelledError:
            await conn.close()
            raise


async def connect(settings: FleetSettings) -> psycopg.AsyncConnection[Any]:
    """A connection as this host's role; FleetError when the role is another name."""
    conn = await psycopg.AsyncConnection.connect(
        settings.dsn, autocommit=True, connect_timeout=max(1, int(settings.connect_timeout)),
        application_name="syslogban")
    role = (await (await conn.execute("SELECT session_user")).fetchone())[0]  # type: ignore[index]
    if settings.name and role != settings.name:
        await conn.close()
        raise FleetError(f"fleet: the database knows this host as {role!r}, not "
                         f"{settings.name!r}: its events would carry {role!r}; fix [fleet] "
                         "name or the role in dsn")
    return conn


async def host_name(conn: psycopg.AsyncConnection[Any]) -> str:
    return str((await (await conn.execute("SELECT session_user")).fetchone())[0])  # type: ignore[index]


async def last_seq(conn: psycopg.AsyncConnection[Any]) -> int:
    """The highest event sequence the database holds from this host."""
    row = await (await conn.execute(
        "SELECT last_seq FROM syslogban.hosts WHERE name = session_user")).fetchone()
    return int(row[0]) if row else 0


@dataclass(slots=True)
class Sent:
    events: int = 0
    decided: list[tuple[str, str]] = field(default_factory=list)  # (target, why) made
    refused: list[tuple[str, str]] = field(default_factory=list)  # (target, why) not made
    unblocks: list[tuple[str, str | None]] = field(default_factory=list)  # (target, refusal)


async def send(conn: psycopg.AsyncConnection[Any], rows: Sequence[tuple[int, str, Any]],
               config: BlockerConfig, backlog: int, now: float) -> Sent:
    """One outbox batch, in one transaction, a statement for each kind of row
    whatever the batch's size. (psycopg 3.1's pipeline mode made a small
    batch slower here, 4.9 ms against 2.9 ms: it is not used.)"""
    events = [(seq, body) for seq, kind, body in rows if kind == EVENT]
    blocks = [body for _, kind, body in rows if kind == BLOCK]
    unblocks = [body for _, kind, body in rows if kind == UNBLOCK]
    addresses = sorted({body.split("\t", 1)[0] for _, body in events})
    sent = Sent(len(events))
    targets = sorted({*addresses, *(b["target"] for b in blocks),
                      *(u["target"] for u in unblocks)})
    async with atomic(conn):
        await conn.execute("SELECT syslogban.lock_targets(string_to_array(%s, ' ')::cidr[])",
                           (" ".join(targets),))
        if events:
            await conn.execute("SELECT syslogban.observe(%s, %s)", (_lines(events), backlog))
        for body in unblocks:
            try:
                async with atomic(conn):
                    await conn.execute("SELECT syslogban.revoke(%s)", (body["target"],))
                sent.decided.append((body["target"], "unblocked"))
                sent.unblocks.append((body["target"], None))
            except psycopg.errors.InsufficientPrivilege:
                why = "this host's role may not unblock fleet-wide (grant it syslogban_unblock)"
                sent.refused.append((body["target"], why))
                sent.unblocks.append((body["target"], why))
        await _decide(conn, blocks, sent)
        found = await _fleet_decisions(conn, addresses, config, now)
        await _decide(conn, [block_body(block, lines) for block, lines in found], sent)
    return sent


def _lines(events: Sequence[tuple[int, str]]) -> str:
    """Events as observe() reads them: a line each, the sequence first."""
    return "\n".join(f"{seq}\t{line}" for seq, line in events)


def block_body(block: Block, lines: Sequence[str]) -> dict[str, Any]:
    """A block as the outbox keeps it (JSON) and decide() takes it."""
    return {"target": block.target, "since": block.since,
            "until": None if block.permanent else block.until, "reason": block.reason,
            "score": block.score, "signatures": list(block.signatures), "nth": block.nth,
            "lifetime": block.lifetime, "evidence": list(lines)[-20:]}


async def _decide(conn: psycopg.AsyncConnection[Any], bodies: Sequence[dict[str, Any]],
                  sent: Sent) -> None:
    if not bodies:
        return
    rows = await (await conn.execute("SELECT target::text, id, refused"
                                     " FROM syslogban.decide_all(%s::jsonb)",
                                     (json.dumps(bodies),))).fetchall()
    for target, made, refused in rows:
        if made is not None:
            sent.decided.append((target, "decided"))
        elif refused != "already blocked":
            sent.refused.append((target, str(refused)))


# The addresses of a batch that could cross now (cheap sums over the window),
# then, for those not covered by a block in force, their earlier blocks, their
# lifetime danger and the events that count (after the last block ended, or
# the last unblock, and within the window): the blocker decides from these.
_SCORING = """
    WITH batch AS (SELECT DISTINCT x::inet AS addr
                   FROM string_to_table(%(addresses)s, ' ') x),
    recent AS (
        SELECT b.addr, coalesce(sum(e.danger), 0) AS danger,
               coalesce(sum(e.attempts), 0) AS attempts
        FROM batch b LEFT JOIN syslogban.events e
          ON e.addr = b.addr AND e.at > to_timestamp(%(horizon)s)
        GROUP BY b.addr),
    open AS (
        SELECT r.addr, coalesce(o.lifetime, 0) AS lifetime
        FROM recent r LEFT JOIN syslogban.offenders o ON o.target = r.addr
        WHERE (r.danger >= %(danger)s OR r.attempts >= %(attempts)s
               OR coalesce(o.lifetime, 0) >= %(blacklist)s)
          AND syslogban.covering(r.addr::cidr) IS NULL),
    facts AS (
        SELECT open.addr, open.lifetime,
            (SELECT count(*) FROM syslogban.decisions d
              WHERE d.target = open.addr::cidr AND NOT d.revoked) AS blocks,
            coalesce((SELECT CASE WHEN d.revoked THEN d.since
                                  ELSE coalesce(d.until, 'infinity') END
                        FROM syslogban.decisions d WHERE d.target = open.addr::cidr
                       ORDER BY d.id DESC LIMIT 1), '-infinity') AS fresh
        FROM open)
    SELECT host(facts.addr), facts.blocks, facts.lifetime,
           string_agg(concat_ws(E'\t', e.host, e.seq, e.signature, e.service, e.danger,
                                extract(epoch FROM e.at)::float8, e.attempts), E'\n')
    FROM facts JOIN syslogban.events e
      ON e.addr = facts.addr AND e.at > greatest(facts.fresh, to_timestamp(%(horizon)s))
    GROUP BY facts.addr, facts.blocks, facts.lifetime
"""
_NEVER = 1 << 62


async def _fleet_decisions(conn: psycopg.AsyncConnection[Any], addresses: Sequence[str],
                           config: BlockerConfig, now: float) -> list[tuple[Block, list[str]]]:
    """The blocks the fleet's events cause for the addresses of this batch."""
    if not addresses:
        return []
    policies = (config.policy, *config.services.values())
    bars = {"addresses": " ".join(addresses),
            "horizon": now - max(p.window for p in policies),
            "danger": min((p.threshold for p in policies if not p.count_attempts),
                          default=_NEVER),
            "attempts": min((p.threshold for p in policies if p.count_attempts),
                            default=_NEVER),
            "blacklist": config.blacklist if config.blacklist is not None else _NEVER}
    # One row per address, its events as lines: the driver reads a value at a
    # time, so ten columns for each event would cost ten times as much.
    rows = await (await conn.execute(_SCORING, bars)).fetchall()
    events: dict[str, list[Event]] = {}
    history: dict[str, History] = {}
    for address, blocks, lifetime, lines in rows:
        mine = events[address] = []
        for line in lines.split("\n"):
            host, seq, signature, service, danger, at, attempts = line.split("\t")
            mine.append(Event(host, int(seq), address, signature, service, int(danger),
                              float(at), int(attempts)))
        danger_now = sum(e.danger for e in mine)  # in lifetime; the blocker adds it again
        history[address] = History(blocks, max(0, lifetime - danger_now))
    found = decide(config, [e for mine in events.values() for e in mine], history, now)
    return [(block, evidence(events.get(target, ()))) for target, block in found.items()]


async def snapshot(conn: psycopg.AsyncConnection[Any]) -> tuple[list[RemoteDecision], int]:
    """Every block in force and the cursor they are current to, in one statement."""
    rows = await (await conn.execute(
        f"SELECT top, {_COLUMNS} FROM (SELECT coalesce(max(id), 0) AS top"
        " FROM syslogban.decisions) log LEFT JOIN syslogban.active ON true ORDER BY id"
    )).fetchall()
    return [remote_decision(r[1:]) for r in rows if r[1] is not None], int(rows[0][0])


async def changes(conn: psycopg.AsyncConnection[Any], cursor: int,
                  limit: int = 5000) -> list[tuple[int, RemoteDecision]]:
    """The decision log after `cursor`, in order: (id, decision)."""
    rows = await (await conn.execute(f"SELECT {_COLUMNS} FROM syslogban.decisions"
                                     " WHERE id > %s ORDER BY id LIMIT %s",
                                     (cursor, limit))).fetchall()
    return [(int(r[0]), remote_decision(r)) for r in rows]


async def listen(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")


async def prune(conn: psycopg.AsyncConnection[Any], keep: float) -> int:
    row = await (await conn.execute("SELECT syslogban.prune(make_interval(secs => %s))",
                                    (keep,))).fetchone()
    return int(row[0]) if row else 0


def remote_decision(row: Sequence[Any]) -> RemoteDecision:
    (_, target, since, until, origin, reason, revoked, score, signatures, nth, lifetime,
     lines) = row
    if target.endswith(("/32", "/128")):
        target = target.rsplit("/", 1)[0]
    return RemoteDecision(target, float(since),
                          PERMANENT if until is None or math.isinf(until) else float(until),
                          f"fleet:{origin}", reason, bool(revoked), int(score),
                          tuple(signatures), int(nth), int(lifetime), tuple(lines))
