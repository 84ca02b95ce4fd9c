"""The fleet's SQL against a real PostgreSQL 15, hosts at once: each crossing
decided once and never missed, the follower's cursor never skips a decision,
a batch or an unblock sent again does no harm."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import psycopg
from deadlines import run
from postgres import Cluster, cluster, database, requires_postgres  # noqa: F401

from syslogban.blocker import BlockerConfig, Policy
from syslogban.fleet import store
from syslogban.fleet.outbox import BLOCK, EVENT, UNBLOCK, event_line
from syslogban.fleet.settings import FleetSettings

pytestmark = requires_postgres
CONFIG = BlockerConfig(policy=Policy(threshold=30, window=3600, block_time=3600))


async def connect(cluster: Cluster, database: str, role: str,
                  unblock: bool = False) -> psycopg.AsyncConnection[Any]:
    password = cluster.add_host(role, unblock=unblock)
    return await store.connect(FleetSettings(dsn=cluster.dsn(role, password, database),
                                             name=role))


def events(first_seq: int, addresses: list[str], now: float) -> list[tuple[int, str, Any]]:
    return [(first_seq + n, EVENT, event_line(a, "postfix.sasl", "postfix", 10, 1, now))
            for n, a in enumerate(addresses)]


def decisions(cluster: Cluster, database: str) -> list[str]:
    return cluster.sql("SELECT host(target) FROM syslogban.decisions WHERE NOT revoked"
                       " ORDER BY target", database=database).split()


def test_hosts_at_once_decide_each_crossing_once_and_miss_none(
        cluster: Cluster, database: str) -> None:
    """Three hosts send two attempts for each of 300 addresses at once, in
    batches of shuffled sizes and orders: the third attempt of each, whoever
    sends it, makes exactly one decision; the three after it make none."""
    addresses = [f"10.7.{n // 200}.{n % 200 + 1}" for n in range(300)]

    async def host(conn: psycopg.AsyncConnection[Any], seed: int) -> int:
        mine = random.Random(seed).sample(addresses * 2, 2 * len(addresses))
        seq, made = 1, 0
        while mine:
            size = random.Random(seed + seq).randint(1, 40)
            batch, mine = mine[:size], mine[size:]
            sent = await store.send(conn, events(seq, batch, time.time()), CONFIG, 0,
                                    time.time())
            seq += len(batch)
            made += len(sent.decided)
        return made

    async def body() -> None:
        conns = [await connect(cluster, database, f"mx{n}") for n in (1, 2, 3)]
        made = await asyncio.gather(*(host(c, n) for n, c in enumerate(conns)))
        assert sum(made) == len(addresses)
        for c in conns:
            await c.close()
    run(body)
    assert decisions(cluster, database) == sorted(addresses, key=lambda a: tuple(
        int(part) for part in a.split(".")))


def test_a_host_waits_for_another_on_the_same_address_and_sees_its_events(
        cluster: Cluster, database: str) -> None:
    """mx2 stored an attempt on 192.0.2.3; mx1 stored one more and has not
    committed; mx2's third waits for mx1's transaction, then sees all three:
    the crossing is not missed (each alone saw two at most). Another address
    does not wait."""
    async def body() -> None:
        mx1, mx2 = [await connect(cluster, database, role) for role in ("mx1", "mx2")]
        now = time.time()
        assert await store._ingest(mx2, _lines(1, ["192.0.2.3"], now), 0, CONFIG, now) == []
        await mx1.set_autocommit(False)
        assert await store._ingest(mx1, _lines(1, ["192.0.2.3"], now), 0, CONFIG, now) == []
        other = await store._ingest(mx2, _lines(2, ["192.0.2.4"], now), 0, CONFIG, now)
        assert other == []  # not held by mx1
        third = asyncio.create_task(
            store._ingest(mx2, _lines(3, ["192.0.2.3"], now), 0, CONFIG, now))
        done, _ = await asyncio.wait([third], timeout=0.5)
        assert not done, "mx2 did not wait for mx1's transaction on the same address"
        await mx1.commit()
        (block,) = await asyncio.wait_for(third, 10)
        assert (block["target"], block["score"], len(block["evidence"])) == ("192.0.2.3", 30, 3)
        for c in (mx1, mx2):
            await c.close()
    run(body)


def _lines(first_seq: int, addresses: list[str], now: float) -> list[tuple[int, str]]:
    return [(seq, line) for seq, _, line in events(first_seq, addresses, now)]


def test_the_follower_reads_a_decision_that_commits_after_a_later_one(
        cluster: Cluster, database: str) -> None:
    """Decision ids are not commit order: mx1's transaction takes an id, mx2's
    a higher one and commits first. A cursor by id would skip mx1's; the
    snapshot cursor reads it when it commits."""
    async def body() -> None:
        slow = await connect(cluster, database, "mx1")
        fast = await connect(cluster, database, "mx2")
        follower = await connect(cluster, database, "mx3")
        _, cursor = await store.snapshot(follower)
        now = time.time()
        await slow.set_autocommit(False)
        await slow.execute("SELECT * FROM syslogban.decide_all(%s::jsonb)",
                           (store.json.dumps([_block("192.0.2.1", now)]),))
        await fast.execute("SELECT * FROM syslogban.decide_all(%s::jsonb)",
                           (store.json.dumps([_block("192.0.2.2", now)]),))
        seen, cursor = await store.changes(follower, cursor)
        assert [d.target for d in seen] == ["192.0.2.2"]
        await slow.commit()
        seen, cursor = await store.changes(follower, cursor)
        assert [d.target for d in seen] == ["192.0.2.1"]
        assert (await store.changes(follower, cursor))[0] == []  # nothing twice
        ids = await (await follower.execute(
            "SELECT host(target), id FROM syslogban.decisions ORDER BY id")).fetchall()
        assert [a for a, _ in ids] == ["192.0.2.1", "192.0.2.2"]  # the lower id came later
        for c in (slow, fast, follower):
            await c.close()
    run(body)


def _block(target: str, now: float) -> dict[str, Any]:
    return {"target": target, "since": now, "until": now + 3600, "reason": "manual",
            "score": 0, "signatures": [], "nth": 1, "lifetime": 0, "evidence": []}


def test_a_batch_sent_again_finds_its_crossing(cluster: Cluster, database: str) -> None:
    """The events went in, the decisions did not (the connection broke between
    the two calls): the batch sent again decides."""
    async def body() -> None:
        conn = await connect(cluster, database, "mx1")
        batch = events(1, ["192.0.2.9"] * 3, time.time())
        await store._ingest(conn, _lines(1, ["192.0.2.9"] * 3, time.time()), 0, CONFIG,
                            time.time())
        assert decisions(cluster, database) == []
        sent = await store.send(conn, batch, CONFIG, 0, time.time())
        assert (sent.events, sent.decided) == (3, [("192.0.2.9/32", "decided")])
        await conn.close()
    run(body)
    assert decisions(cluster, database) == ["192.0.2.9"]


def test_an_unblock_sent_again_leaves_a_newer_block(cluster: Cluster, database: str) -> None:
    async def body() -> None:
        admin = await connect(cluster, database, "mx-admin", unblock=True)
        now = time.time()
        unblock = (2, UNBLOCK, {"target": "192.0.2.5", "at": now})
        await store.send(admin, [(1, BLOCK, _block("192.0.2.5", now - 10)), unblock], CONFIG,
                         0, now)
        await store.send(admin, [(3, BLOCK, _block("192.0.2.5", now + 1))], CONFIG, 0, now)
        first = await store.send(admin, [(4, UNBLOCK, {"target": "192.0.2.6", "at": now})],
                                 CONFIG, 0, now)
        assert first.unblocks == [("192.0.2.6", None)]
        again = await store.send(admin, [unblock], CONFIG, 0, now)  # the answer was lost
        assert again.unblocks == [("192.0.2.5", "the fleet blocked it again after this unblock")]
        assert again.decided == again.refused == []
        await admin.close()
    run(body)
    assert decisions(cluster, database) == ["192.0.2.5", "192.0.2.5"]
    assert cluster.sql("SELECT count(*) FROM syslogban.active", database=database) == "1"
