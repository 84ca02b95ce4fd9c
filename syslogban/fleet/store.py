"""The fleet's SQL: psycopg 3 async, one statement per question.

Rules of this file:
* The shell around decide.py: it sends a batch's events, gets back the facts
  of the addresses that may cross (their events, their history), asks the
  pure decision, and writes what it returns. Nothing here scores.
* Every call is a transaction of its own (autocommit): ingest() stores the
  events and names the addresses that may cross, score() (after that
  commit) gives their facts, decide_all() writes the blocks under a lock
  per target (schema.py, version 5). No call holds a lock while another
  host waits for more than its own short statement; a crossing is never
  missed (the last host to commit an address's events scores them all) and
  never decided twice. A batch whose decisions fail is sent again whole:
  its events are idempotent and ingest() names its addresses again.
* Down, the decision log is read by snapshot: the follower's cursor is the
  snapshot of its last read (text, pg_snapshot), and it reads the rows that
  became visible since, whatever order they committed in.
* What the database refuses for one row (a revocation without the grant)
  is reported, the rest of the batch goes on.
"""

from __future__ import annotations

import json
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

# A function of the newest schema version this syslogban calls.
CURRENT_FUNCTION = "syslogban.score(text, float8, bigint, bigint, bigint)"
# A decision as one JSON array (the driver reads a value at a time, in
# Python: one value a row, parsed by json, costs a tenth of twelve columns).
_DECISION = ("json_build_array(id, target::text, extract(epoch FROM since)::float8,"
             " extract(epoch FROM until)::float8, origin, reason, revoked, score, signatures,"
             " nth, lifetime, evidence)")


async def connect(settings: FleetSettings) -> psycopg.AsyncConnection[Any]:
    """A connection as this host's role; FleetError when the role is another name,
    or the schema older than this syslogban. The server checks every second
    that the host is still there: a host gone (stopped in the middle of a
    call, killed) holds no lock for longer."""
    conn = await psycopg.AsyncConnection.connect(
        settings.dsn, autocommit=True, connect_timeout=max(1, int(settings.connect_timeout)),
        application_name="syslogban")
    role, current = (await (await conn.execute(  # type: ignore[misc]
        "SELECT session_user, to_regprocedure(%s) IS NOT NULL,"
        " set_config('client_connection_check_interval', '1000', false)",
        (CURRENT_FUNCTION,))).fetchone())[:2]
    problem = None
    if settings.name and role != settings.name:
        problem = (f"fleet: the database knows this host as {role!r}, not {settings.name!r}: "
                   f"its events would carry {role!r}; fix [fleet] name or the role in dsn")
    elif not current:
        problem = ("fleet: the database's fleet schema is older than this syslogban: run "
                   "`syslogban fleet init` as its owner")
    if problem:
        await conn.close()
        raise FleetError(problem)
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
    """One outbox batch: its events in one call (one round trip), then this
    host's blocks and unblocks in their order, then the fleet's decisions
    (a second round trip when there are any)."""
    events = [(seq, body) for seq, kind, body in rows if kind == EVENT]
    sent = Sent(len(events))
    found = await _ingest(conn, events, backlog, config, now) if events else []
    blocks: list[dict[str, Any]] = []
    for _, kind, body in rows:
        if kind == BLOCK:
            blocks.append(body)
        elif kind == UNBLOCK:
            await _decide(conn, blocks, sent)
            blocks = []
            await _revoke(conn, body, sent)
    await _decide(conn, blocks, sent)
    await _decide(conn, found, sent)
    return sent


async def _revoke(conn: psycopg.AsyncConnection[Any], body: dict[str, Any], sent: Sent) -> None:
    """An admin's unblock; revoke() lifts nothing when the fleet blocked the
    target again after it (the unblock came late, or is a batch sent again)."""
    target = body["target"]
    try:
        row = await (await conn.execute("SELECT syslogban.revoke(%s, to_timestamp(%s))",
                                        (target, body.get("at", 0.0)))).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        why = "this host's role may not unblock fleet-wide (grant it syslogban_unblock)"
        sent.refused.append((target, why))
        sent.unblocks.append((target, why))
        return
    if row is None or row[0] is None:
        sent.unblocks.append((target, "the fleet blocked it again after this unblock"))
    else:
        sent.decided.append((target, "unblocked"))
        sent.unblocks.append((target, None))


def _lines(events: Sequence[tuple[int, str]]) -> str:
    """Events as ingest() reads them: a line each, the sequence first."""
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
    row = await (await conn.execute(
        "SELECT string_agg(target::text || E'\\t' || coalesce(id::text, '') || E'\\t'"
        " || coalesce(refused, ''), E'\\n') FROM syslogban.decide_all(%s::jsonb)",
        (json.dumps(bodies),))).fetchone()
    for line in (row[0] or "").splitlines() if row else ():
        target, made, refused = line.split("\t")
        if made:
            sent.decided.append((target, "decided"))
        elif refused not in _NO_REFUSAL:
            sent.refused.append((target, refused))


# What decide_all() answers when another host was first: nothing to report.
_NO_REFUSAL = ("already blocked", "decided otherwise meanwhile")


_NEVER = 1 << 62


async def _ingest(conn: psycopg.AsyncConnection[Any], events: Sequence[tuple[int, str]],
                  backlog: int, config: BlockerConfig, now: float) -> list[dict[str, Any]]:
    """Stores the events; the blocks the fleet's events cause now for the
    addresses of this batch, as decide_all() takes them. ingest() names the
    addresses whose lifetime reaches the lowest bar (the policies' lowest
    threshold, the blacklist); score(), a second call after the first
    committed, gives the facts of those that cross within the window: their
    earlier blocks, lifetime danger, last decision, and the events that
    count, one row an address with its events as lines (the driver reads a
    value at a time: ten columns an event would cost ten times as much)."""
    policies = (config.policy, *config.services.values())
    bars = (min((p.threshold for p in policies if not p.count_attempts), default=_NEVER),
            min((p.threshold for p in policies if p.count_attempts), default=_NEVER),
            config.blacklist if config.blacklist is not None else _NEVER)
    near = await (await conn.execute(
        "SELECT string_agg(a, ' ') FROM syslogban.ingest(%s, %s, %s, %s, %s) a",
        (_lines(events), backlog, *bars))).fetchone()
    if not near or not near[0]:
        return []
    facts = await (await conn.execute(
        "SELECT string_agg(concat_ws(E'\\t', addr, blocks, lifetime, last_id) || E'\\n'"
        " || lines, E'\\n\\n') FROM syslogban.score(%s, %s, %s, %s, %s)",
        (near[0], now - max(p.window for p in policies), *bars))).fetchone()
    events_of: dict[str, list[Event]] = {}
    history: dict[str, History] = {}
    last: dict[str, int] = {}
    for fact in facts[0].split("\n\n") if facts and facts[0] else ():
        head, _, lines = fact.partition("\n")
        address, blocks, lifetime, last_id = head.split("\t")
        mine = events_of[address] = []
        for line in lines.split("\n"):
            host, seq, signature, service, danger, at, attempts = line.split("\t")
            mine.append(Event(host, int(seq), address, signature, service, int(danger),
                              float(at), int(attempts)))
        danger_now = sum(e.danger for e in mine)  # in lifetime; the blocker adds it again
        history[address] = History(int(blocks), max(0, int(lifetime) - danger_now))
        last[address] = int(last_id)
    found = decide(config, [e for mine in events_of.values() for e in mine], history, now)
    return [{**block_body(block, evidence(events_of.get(target, ()))),
             "expected": last.get(target)} for target, block in found.items()]


async def snapshot(conn: psycopg.AsyncConnection[Any]) -> tuple[list[RemoteDecision], str]:
    """Every block in force and the snapshot they are current to, in one statement."""
    return await _decisions(conn, "SELECT pg_current_snapshot()::text, (SELECT json_agg("
                            f"{_DECISION} ORDER BY id) FROM syslogban.active)::text", {})


async def changes(conn: psycopg.AsyncConnection[Any],
                  cursor: str) -> tuple[list[RemoteDecision], str]:
    """The decisions that became visible since the snapshot `cursor`, in the
    order they were made, and the snapshot they are current to."""
    return await _decisions(
        conn, "SELECT pg_current_snapshot()::text, (SELECT json_agg("
        f"{_DECISION} ORDER BY id) FROM syslogban.decisions d"
        " WHERE d.xid >= pg_snapshot_xmin(%(c)s::pg_snapshot)"
        " AND NOT pg_visible_in_snapshot(d.xid, %(c)s::pg_snapshot))::text", {"c": cursor})


async def _decisions(conn: psycopg.AsyncConnection[Any], query: str,
                     params: dict[str, Any]) -> tuple[list[RemoteDecision], str]:
    row = await (await conn.execute(query, params)).fetchone()
    assert row is not None
    return [remote_decision(d) for d in json.loads(row[1] or "[]")], str(row[0])


async def listen(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")


async def prune(conn: psycopg.AsyncConnection[Any], keep: float) -> int:
    row = await (await conn.execute("SELECT syslogban.prune(make_interval(secs => %s))",
                                    (keep,))).fetchone()
    return int(row[0]) if row else 0


def remote_decision(row: Sequence[Any]) -> RemoteDecision:
    """A decision of the log (_DECISION's fields) as the remote parts report it."""
    (_, target, since, until, origin, reason, revoked, score, signatures, nth, lifetime,
     lines) = row
    if target.endswith(("/32", "/128")):
        target = target.rsplit("/", 1)[0]
    return RemoteDecision(target, float(since),
                          PERMANENT if until is None or math.isinf(until) else float(until),
                          f"fleet:{origin}", reason, bool(revoked), int(score),
                          tuple(signatures), int(nth), int(lifetime), tuple(lines))
