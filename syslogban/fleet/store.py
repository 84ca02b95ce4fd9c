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

import math
from collections.abc import Sequence
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


async def send(conn: psycopg.AsyncConnection[Any], rows: Sequence[tuple[int, str, Any]],
               config: BlockerConfig, backlog: int, now: float) -> Sent:
    """One outbox batch, in one transaction, in three round trips (a pipeline:
    the statements leave together; only the scoring waits for its answer)."""
    events = [(seq, body) for seq, kind, body in rows if kind == EVENT]
    blocks = [body for _, kind, body in rows if kind == BLOCK]
    unblocks = [body for _, kind, body in rows if kind == UNBLOCK]
    addresses = sorted({body[0] for _, body in events})
    sent = Sent(len(events))
    targets = sorted({*addresses, *(b["target"] for b in blocks),
                      *(u["target"] for u in unblocks)})
    async with conn.pipeline(), conn.transaction():
        await conn.execute("SELECT syslogban.lock_targets(%s::cidr[])", (targets,))
        if events:
            columns = list(zip(*[(seq, *body) for seq, body in events]))
            await conn.execute(
                "SELECT syslogban.observe(%s::bigint[], %s::inet[], %s::text[], %s::text[],"
                " %s::int[], ARRAY(SELECT to_timestamp(x) FROM unnest(%s::float8[]) x), %s)",
                (*[list(c) for c in columns], backlog))
        for body in unblocks:
            try:
                async with conn.transaction():
                    await conn.execute("SELECT syslogban.revoke(%s)", (body["target"],))
                sent.decided.append((body["target"], "unblocked"))
            except psycopg.errors.InsufficientPrivilege:
                sent.refused.append((body["target"], "this host's role may not unblock "
                                     "fleet-wide (syslogban_unblock)"))
        await _decide(conn, blocks, sent)
        found = await _fleet_decisions(conn, addresses, config, now)
        await _decide(conn, [block_body(block, lines) for block, lines in found], sent)
    return sent


def block_body(block: Block, lines: Sequence[str]) -> dict[str, Any]:
    """A block as the outbox keeps it (JSON) and decide() takes it."""
    return {"target": block.target, "since": block.since,
            "until": None if block.permanent else block.until, "reason": block.reason,
            "score": block.score, "signatures": list(block.signatures), "nth": block.nth,
            "lifetime": block.lifetime, "evidence": list(lines)[-20:]}


async def _decide(conn: psycopg.AsyncConnection[Any], bodies: Sequence[dict[str, Any]],
                  sent: Sent) -> None:
    cursors = [await conn.execute(
        "SELECT * FROM syslogban.decide(%s, to_timestamp(%s), to_timestamp(%s), %s, %s, %s,"
        " %s, %s, %s)",
        (body["target"], body["since"], body["until"], body["reason"], body["score"],
         body["signatures"], body["nth"], body["lifetime"], body["evidence"]))
        for body in bodies]
    for body, cursor in zip(bodies, cursors):
        made, refused = await cursor.fetchone()  # type: ignore[misc]
        if made is not None:
            sent.decided.append((body["target"], body["reason"]))
        elif refused != "already blocked":
            sent.refused.append((body["target"], str(refused)))


# Per address of a batch not covered by a block in force: its earlier blocks,
# its lifetime danger, and the events that count (after the last block ended,
# or the last unblock, and within the window).
_SCORING = """
    WITH open AS (
        SELECT x.addr,
            (SELECT count(*) FROM syslogban.decisions d
              WHERE d.target = x.addr::cidr AND NOT d.revoked) AS blocks,
            coalesce((SELECT o.lifetime FROM syslogban.offenders o
                       WHERE o.target = x.addr), 0) AS lifetime,
            coalesce((SELECT CASE WHEN d.revoked THEN d.since
                                  ELSE coalesce(d.until, 'infinity') END
                        FROM syslogban.decisions d WHERE d.target = x.addr::cidr
                       ORDER BY d.id DESC LIMIT 1), '-infinity') AS fresh
        FROM unnest(%s::inet[]) x(addr)
        WHERE syslogban.covering(x.addr::cidr) IS NULL)
    SELECT open.blocks, open.lifetime, e.host, e.seq, host(e.addr), e.signature, e.service,
           e.danger, extract(epoch FROM e.at)::float8
    FROM open JOIN syslogban.events e
      ON e.addr = open.addr AND e.at > greatest(open.fresh, to_timestamp(%s))
"""


async def _fleet_decisions(conn: psycopg.AsyncConnection[Any], addresses: Sequence[str],
                           config: BlockerConfig, now: float) -> list[tuple[Block, list[str]]]:
    """The blocks the fleet's events cause for the addresses of this batch."""
    if not addresses:
        return []
    horizon = now - max(p.window for p in (config.policy, *config.services.values()))
    rows = await (await conn.execute(_SCORING, (list(addresses), horizon))).fetchall()
    history: dict[str, History] = {}
    by_address: dict[str, list[Event]] = {}
    for blocks, lifetime, *columns in rows:
        event = Event(*columns)
        history[event.address] = History(blocks, lifetime)
        by_address.setdefault(event.address, []).append(event)
    found = []
    for address, events in by_address.items():
        danger = sum(e.danger for e in events)  # already in lifetime; the blocker adds it again
        known = history[address]
        block = decide(config, address, events,
                       History(known.blocks, max(0, known.lifetime - danger)), now)
        if block is not None:
            found.append((block, evidence(events)))
    return found


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
