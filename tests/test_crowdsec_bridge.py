"""The bridge against a real LAPI, without the daemon: what it delivers,
what it pushes, what waits in the outbox while the LAPI is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from crowdsec_lapi import Lapi as LapiProcess
from crowdsec_lapi import lapi, requires_lapi  # noqa: F401 (fixture)
from syslogban.blocker import Block
from syslogban.crowdsec.bridge import CrowdSecBridge
from syslogban.crowdsec.settings import CrowdSecSettings
from syslogban.crowdsec.store import Store
from syslogban.remote import RemoteDecision
from syslogban.state import State

pytestmark = requires_lapi
PASSWORD = "mx1-password-0123456789"
ADMIN = "crowdsec:cscli/manual 'ban' from 'cscli-admin'"


def settings(lapi: LapiProcess, pull: bool = True, push: bool = True) -> CrowdSecSettings:
    key = lapi.add_bouncer(f"mx1-{time.monotonic_ns()}") if pull else ""
    if push:
        lapi.add_machine("mx1", PASSWORD)
    return CrowdSecSettings(lapi.url, key, "mx1" if push else "", PASSWORD if push else "",
                            poll=0.2 if pull else 10.0)


class Harness:
    """One bridge with a state file, collecting what it delivers."""

    def __init__(self, tmp: Path, config: CrowdSecSettings) -> None:
        self.path = str(tmp / "state.db")
        State(self.path).close()
        self.bridge = CrowdSecBridge(config, self.path)
        self.delivered: list[RemoteDecision] = []   # one by one
        self.syncs: list[list[RemoteDecision]] = []  # complete lists (after a start)

    def deliver(self, decisions: Sequence[RemoteDecision], complete: bool) -> None:
        (self.syncs.append(list(decisions)) if complete else self.delivered.extend(decisions))

    async def start(self) -> Harness:
        await self.bridge.start(self.deliver)
        return self

    async def until(self, condition: Callable[[], Any], what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: "
                                     f"{self.delivered} {self.bridge.status()}")
            await asyncio.sleep(0.05)

    def outbox(self) -> list[str]:
        store = Store(self.path)
        try:
            return [op.kind for op in store.operations()]
        finally:
            store.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def block(target: str, seconds: float = 3600) -> Block:
    now = time.time()
    return Block(target, now, now + seconds, "score", 30, ("postfix.sasl",), 1, 30)


def test_pulled_decisions_arrive_and_leave(tmp_path: Path, lapi: LapiProcess) -> None:
    async def scenario() -> None:
        h = await Harness(tmp_path, settings(lapi, push=False)).start()
        await h.until(lambda: h.syncs == [[]], "the startup stream, empty")
        lapi.cscli("decisions", "add", "-i", "192.0.2.9", "-d", "1h")
        await h.until(lambda: h.delivered, "the decision")
        [d] = h.delivered
        assert (d.target, d.origin, d.revoked) == ("192.0.2.9", ADMIN, False)
        assert 3590 < d.until - time.time() <= 3600
        assert d.evidence[0].startswith("CrowdSec decision #1, ")
        lapi.cscli("decisions", "delete", "-i", "192.0.2.9")
        await h.until(lambda: len(h.delivered) == 2, "the lift")
        assert (h.delivered[1].target, h.delivered[1].revoked) == ("192.0.2.9", True)
        await h.bridge.stop()
    run(scenario)


def test_a_block_becomes_a_decision_and_an_unblock_deletes_it(
        tmp_path: Path, lapi: LapiProcess) -> None:
    async def scenario() -> None:
        h = await Harness(tmp_path, settings(lapi, pull=False)).start()
        h.bridge.blocked(block("192.0.2.7"), ["line 1", "line 2", "line 3"])
        await h.until(lambda: h.bridge.status()["alerts_sent"] == 1 and not h.outbox(),
                      "the alert and its lookup")
        [listed] = lapi.decisions("--origin", "syslogban")
        assert (listed["value"], listed["scenario"], listed["type"]) == (
            "192.0.2.7", "syslogban/postfix.sasl", "ban")
        [(alert,)] = [(a,) for a in lapi.cscli_json("alerts", "list", "--all")]
        assert alert["events_count"] == 3 and alert["machine_id"] == "mx1"
        h.bridge.unblocked("192.0.2.7", time.time())
        await h.until(lambda: h.bridge.status()["deletions_sent"] == 1, "the deletion")
        assert lapi.decisions("--origin", "syslogban") == []
        await h.bridge.stop()
    run(scenario)


def test_an_admin_deleting_this_hosts_decision_lifts_its_block(
        tmp_path: Path, lapi: LapiProcess) -> None:
    async def scenario() -> None:
        h = await Harness(tmp_path, settings(lapi)).start()
        h.bridge.blocked(block("192.0.2.7"), ["line"])
        await h.until(lambda: h.bridge.status()["decisions_known"] == 1, "the own decision")
        await asyncio.sleep(0.5)  # polls see it come back: nothing is delivered for it
        assert h.delivered == []
        lapi.cscli("decisions", "delete", "-i", "192.0.2.7")
        await h.until(lambda: h.delivered, "the lift")
        [d] = h.delivered
        assert (d.target, d.revoked, d.origin) == (
            "192.0.2.7", True, "crowdsec:syslogban/syslogban/postfix.sasl")
        await h.bridge.stop()
    run(scenario)


def test_alerts_wait_while_the_lapi_is_away_and_nothing_is_lost(
        tmp_path: Path, lapi: LapiProcess) -> None:
    async def scenario() -> None:
        config = settings(lapi)
        h = await Harness(tmp_path, config).start()
        await h.until(lambda: h.bridge.status()["synced"], "the startup stream")
        lapi.stop()
        h.bridge.blocked(block("192.0.2.1"), ["line"])
        h.bridge.blocked(block("192.0.2.2"), ["line"])
        await h.until(lambda: not h.bridge.status()["reachable"], "the failure")
        assert h.outbox() == ["alert", "alert"]
        await h.bridge.stop()  # the daemon stops too, with alerts waiting
        assert h.outbox() == ["alert", "alert"]
        lapi.start()
        lapi.cscli("decisions", "add", "-i", "198.51.100.3", "-d", "1h")
        again = await Harness(tmp_path, config).start()
        await again.until(lambda: again.bridge.status()["alerts_sent"] == 2 and
                          not again.outbox(), "the waiting alerts")
        assert {d["value"] for d in lapi.decisions("--origin", "syslogban")} == {
            "192.0.2.1", "192.0.2.2"}
        await again.until(lambda: again.syncs, "the startup stream")
        assert [d.target for d in again.syncs[0]] == ["198.51.100.3"]
        assert again.delivered == []
        await again.bridge.stop()
    run(scenario)


def test_an_alert_whose_block_ended_while_waiting_is_not_sent(
        tmp_path: Path, lapi: LapiProcess) -> None:
    async def scenario() -> None:
        config = settings(lapi, pull=False)
        lapi.stop()
        h = await Harness(tmp_path, config).start()
        h.bridge.blocked(block("192.0.2.1", seconds=3), ["line"])
        await h.until(lambda: not h.bridge.status()["reachable"], "the failure")
        assert h.outbox() == ["alert"]
        await asyncio.sleep(3)
        lapi.start()
        await h.until(lambda: h.bridge.status()["alerts_expired"] == 1, "the expiry")
        assert h.outbox() == [] and lapi.decisions("--origin", "syslogban") == []
        await h.bridge.stop()
    run(scenario)


def test_an_unblock_before_the_alert_left_sends_nothing(
        tmp_path: Path, lapi: LapiProcess) -> None:
    async def scenario() -> None:
        config = settings(lapi, pull=False)
        lapi.stop()
        h = await Harness(tmp_path, config).start()
        h.bridge.blocked(block("192.0.2.1"), ["line"])
        h.bridge.unblocked("192.0.2.1", time.time())
        await asyncio.sleep(0.5)
        assert h.outbox() == [] and h.bridge.status()["alerts_sent"] == 0
        await h.bridge.stop()
        lapi.start()
        assert lapi.decisions("--origin", "syslogban") == []
    run(scenario)


def test_decisions_deleted_while_syslogban_was_stopped_are_lifted_at_start(
        tmp_path: Path, lapi: LapiProcess) -> None:
    async def scenario() -> None:
        config = settings(lapi, push=False)
        lapi.cscli("decisions", "add", "-i", "192.0.2.1", "-d", "1h")
        lapi.cscli("decisions", "add", "-i", "192.0.2.2", "-d", "1h")
        h = await Harness(tmp_path, config).start()
        await h.until(lambda: h.syncs, "the startup stream")
        assert [(d.target, d.origin) for d in h.syncs[0]] == [("192.0.2.1", ADMIN),
                                                              ("192.0.2.2", ADMIN)]
        await h.bridge.stop()
        lapi.cscli("decisions", "delete", "-i", "192.0.2.1")
        again = await Harness(tmp_path, config).start()
        await again.until(lambda: again.syncs, "the startup stream")
        # the complete list: the daemon lifts crowdsec blocks not in it
        assert [d.target for d in again.syncs[0]] == ["192.0.2.2"]
        assert again.delivered == []
        await again.bridge.stop()
    run(scenario)


def test_an_operation_the_lapi_can_never_take_does_not_hold_back_the_others(
        tmp_path: Path, lapi: LapiProcess) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, settings(lapi, pull=False))
        store = Store(h.path)
        store.queue("192.0.2.1", "lookup", {"alert_id": 999, "origin": "crowdsec:x/y"})  # 404
        store.queue("192.0.2.2", "alert", {"garbage": True})
        store.close()
        await h.start()
        h.bridge.blocked(block("192.0.2.3"), ["line"])
        await h.until(lambda: h.bridge.status()["alerts_sent"] == 1 and not h.outbox(),
                      "the good alert")
        assert h.bridge.status()["dropped"] == 2
        assert [d["value"] for d in lapi.decisions("--origin", "syslogban")] == ["192.0.2.3"]
        await h.bridge.stop()
    run(scenario)
