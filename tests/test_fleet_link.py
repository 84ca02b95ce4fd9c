"""The fleet link of several hosts against a real PostgreSQL 15, in one loop:
events up, decisions down, spray, unblock, forged names, an outage."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pytest
from deadlines import bounded, run, until
from postgres import OWNER_PASSWORD, Cluster, cluster, database, requires_postgres  # noqa: F401

from syslogban.attempts import Counted
from syslogban.blocker import Block, BlockerConfig, Policy
from syslogban.fleet.link import CANCEL_BUDGET, STOP_BUDGET, Fleet
from syslogban.fleet.settings import FleetSettings
from syslogban.matcher import Attack
from syslogban.remote import RemoteDecision

pytestmark = requires_postgres
CONFIG = BlockerConfig(policy=Policy(threshold=30, window=3600))
ONE = Counted(0, 1, 10)  # a line that is a failed login of danger 10


class Host:
    """One fleet link and what it was told."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.active: dict[str, RemoteDecision] = {}
        self.syncs = 0

    def deliver(self, decisions: Sequence[RemoteDecision], complete: bool) -> None:
        self.syncs += complete
        for d in decisions:
            if d.revoked:
                self.active.pop(d.target, None)
            else:
                self.active[d.target] = d

    def attack(self, address: str, times: int = 1) -> None:
        for _ in range(times):
            self.fleet.attacked(Attack(address, "postfix.sasl", "postfix", 10), ONE, time.time())


def link(cluster: Cluster, database: str, tmp: Path, role: str, unblock: bool = False,
         name: str | None = None) -> Fleet:
    password = cluster.add_host(role, unblock=unblock)
    settings = FleetSettings(dsn=cluster.dsn(role, password, database),
                             name=role if name is None else name)
    return Fleet(settings, str(tmp / f"{role}.db"), lambda: CONFIG)


async def hosts(*fleets: Fleet) -> list[Host]:
    started = [Host(f) for f in fleets]
    for h in started:
        await h.fleet.start(h.deliver)
    return started


async def stop(*started: Host) -> None:
    for h in started:
        await bounded(h.fleet.stop(), f"{h.fleet.settings.name}'s stop")


def test_a_block_spreads_and_a_spray_is_blocked_everywhere(
        cluster: Cluster, database: str, tmp_path: Path) -> None:
    async def body() -> None:
        mx1, mx2, mx3 = await hosts(*(link(cluster, database, tmp_path, f"mx{n}")
                                      for n in (1, 2, 3)))
        mx1.attack("192.0.2.1", 3)
        await until(lambda: all("192.0.2.1" in h.active for h in (mx1, mx2, mx3)), "spread")
        decision = mx3.active["192.0.2.1"]
        assert (decision.origin, decision.reason, decision.score) == ("fleet:mx1", "score", 30)
        assert all(line.split(" ")[1] == "mx1:" for line in decision.evidence)
        for h in (mx1, mx2, mx3):  # one attempt per host: no host alone reaches 30
            h.attack("198.51.100.7")
        await until(lambda: all("198.51.100.7" in h.active for h in (mx1, mx2, mx3)), "spray")
        spray = mx1.active["198.51.100.7"]
        assert {line.split(" ")[1] for line in spray.evidence} == {"mx1:", "mx2:", "mx3:"}
        assert sum(h.fleet.counters.decided for h in (mx1, mx2, mx3)) == 2  # one winner each
        await stop(mx1, mx2, mx3)
    run(body)


def test_blocks_and_unblocks_anywhere_act_everywhere(
        cluster: Cluster, database: str, tmp_path: Path) -> None:
    async def body() -> None:
        mx1, mx2 = await hosts(link(cluster, database, tmp_path, "mx1"),
                               link(cluster, database, tmp_path, "mx2", unblock=True))
        now = time.time()
        mx1.fleet.blocked(Block("203.0.113.0/24", now, now + 600, "manual", 0, (), 1, 0),
                          ["manual block over the control socket"])
        await until(lambda: "203.0.113.0/24" in mx2.active, "the manual block")
        assert mx2.active["203.0.113.0/24"].reason == "manual"
        mx1.fleet.unblocked("203.0.113.0/24", now)  # mx1 may not unblock fleet-wide
        refusal = await mx1.fleet.unblock_verdict("203.0.113.0/24")
        assert refusal is not None and refusal.startswith("fleet: not lifted on the other hosts")
        assert mx1.fleet.counters.refused == 1 and "203.0.113.0/24" in mx2.active
        mx2.fleet.unblocked("203.0.113.0/24", now)
        assert await mx2.fleet.unblock_verdict("203.0.113.0/24") == "fleet: lifted on every host"
        await until(lambda: not mx1.active and not mx2.active, "the unblock everywhere")
        await stop(mx1, mx2)
    run(body)


def test_a_host_naming_itself_another_is_refused(
        cluster: Cluster, database: str, tmp_path: Path) -> None:
    async def body() -> None:
        (rogue,) = await hosts(link(cluster, database, tmp_path, "mx1", name="mx2"))
        rogue.attack("192.0.2.1", 3)
        await until(lambda: len(rogue.fleet.status()["problems"]) == 3, "the refusal")
        problem = rogue.fleet.status()["problems"]["sender"]
        assert problem.startswith("fleet: the database knows this host as 'mx1', not 'mx2'")
        assert len(rogue.fleet.outbox) == 3  # kept, not sent in another's name
        await stop(rogue)
    run(body)
    events = cluster.sql("SELECT count(*) FROM syslogban.events", database=database)
    assert events == "0"


def test_a_new_host_gets_every_block_in_force(
        cluster: Cluster, database: str, tmp_path: Path) -> None:
    async def body() -> None:
        (mx1,) = await hosts(link(cluster, database, tmp_path, "mx1"))
        for n in range(1, 6):
            mx1.attack(f"192.0.2.{n}", 3)
        await until(lambda: len(mx1.active) == 5, "five blocks")
        (mx9,) = await hosts(link(cluster, database, tmp_path, "mx9"))
        await until(lambda: len(mx9.active) == 5, "the full sync")
        assert mx9.syncs == 1
        await stop(mx1, mx9)
    run(body)


def test_an_outage_loses_nothing(tmp_path: Path) -> None:
    own = Cluster()
    try:
        name = own.new_database()
        from syslogban.fleet.admin import init
        init(own.dsn("syslogban", OWNER_PASSWORD, name))

        async def body() -> None:
            mx1, mx2 = await hosts(link(own, name, tmp_path, "mx1"),
                                   link(own, name, tmp_path, "mx2"))
            mx1.attack("192.0.2.1", 3)
            await until(lambda: "192.0.2.1" in mx2.active, "the first block")
            await until(lambda: len(mx1.fleet.outbox) == 0, "the first events acknowledged")
            own.stop()
            for n in range(2, 42):
                mx1.attack(f"192.0.2.{n}", 3)
                await asyncio.sleep(0.005)
            await until(lambda: len(mx1.fleet.status()["problems"]) == 3, "the outage seen")
            assert len(mx1.fleet.outbox) == 120
            mx1.fleet.unblocked("192.0.2.1", time.time())  # the answer does not wait
            verdict = await bounded(mx1.fleet.unblock_verdict("192.0.2.1"), "the verdict", 1)
            assert verdict is not None and verdict.startswith("fleet: the database is away (")
            own.start()
            await until(lambda: len(mx2.active) == 41, "the catch-up", timeout=30)
            await until(lambda: len(mx1.fleet.outbox) == 0, "the outbox drained")
            assert mx1.fleet.counters.refused == 1  # the unblock, when it arrived: no grant
            assert not mx1.fleet.status()["problems"] and mx2.syncs >= 2
            await stop(mx1, mx2)
        run(body)
        assert own.sql("SELECT count(*) FROM syslogban.events", database=name) == "123"
    finally:
        own.destroy()


def test_a_stop_in_the_middle_of_a_batch_is_quick_quiet_and_loses_nothing(
        cluster: Cluster, database: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The database holds the sender's call (a table lock of the owner's): the
    stop ends it within its budget, without psycopg's "error ignored in
    rollback"; the batch stays in the outbox, and the next start delivers it
    once (the database holds its three events, never six)."""
    owner = psycopg.connect(cluster.dsn("syslogban", OWNER_PASSWORD, database))
    owner.execute("LOCK TABLE syslogban.events IN EXCLUSIVE MODE")

    async def held() -> None:
        (mx1,) = await hosts(link(cluster, database, tmp_path, "mx1"))
        mx1.attack("192.0.2.1", 3)
        await until(lambda: _waiting_for_a_lock(cluster, database), "the sender held by the lock")
        begin = time.monotonic()
        await stop(mx1)
        assert time.monotonic() - begin < STOP_BUDGET + CANCEL_BUDGET
        assert len(mx1.fleet.outbox) == 3

    async def again() -> None:
        (mx1,) = await hosts(link(cluster, database, tmp_path, "mx1"))
        await until(lambda: not len(mx1.fleet.outbox), "the outbox sent")
        await until(lambda: "192.0.2.1" in mx1.active, "the block of the three events")
        await stop(mx1)
    try:
        with caplog.at_level(logging.WARNING):
            run(held)
    finally:
        owner.rollback()
        owner.close()
    assert "error ignored" not in caplog.text
    assert "3 rows stay in the outbox" in caplog.text
    run(again)
    assert cluster.sql("SELECT count(*) FROM syslogban.events", database=database) == "3"


def _waiting_for_a_lock(cluster: Cluster, database: str) -> bool:
    return cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'mx1'"
                       " AND wait_event_type = 'Lock'", database=database) != "0"
