"""The enforcer: state and firewall kept equal to what was decided, whatever fails."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from syslogban.adopt import adopt
from syslogban.backends import create
from syslogban.blocker import Block, BlockerConfig
from syslogban.bounds import Bounds, Gate
from syslogban.decisions import Decisions
from syslogban.enforcer import Enforcer
from syslogban.matcher import Attack
from syslogban.remote import RemoteDecision
from syslogban.state import State


async def _until(condition, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_a_report_that_fails_does_not_stop_the_batches(tmp_path: Path) -> None:
    """A notifier or remote part that raises on one block: the next blocks are
    still committed, applied and reported."""
    reported: list[str] = []

    def on_blocked(block: Block, evidence: list[str]) -> None:
        if not reported:
            reported.append("failed")
            raise RuntimeError("a bug in a remote part")
        reported.append(block.target)

    async def scenario() -> None:
        decisions = Decisions(BlockerConfig())
        enforcer = Enforcer(decisions, State(tmp_path / "state.db"), create("null"), 0.0,
                            on_blocked)
        enforcer.start(time.time())
        for n in (1, 2):
            now = time.time()
            enforcer.queue(decisions.blocker.block(f"192.0.2.{n}", now + 60, now), [])
            await _until(lambda: len(reported) == n, f"block {n} reported")
        await enforcer.close(flush_firewall=False)

    asyncio.run(scenario())
    assert reported == ["failed", "192.0.2.2"]


def test_a_remote_peers_absurd_history_does_not_stop_enforcement(tmp_path: Path) -> None:
    """A fleet peer writes a lifetime of 2**63 - 1 (PostgreSQL's bigint allows it);
    one local attack later the address's history passes SQLite's integers. The
    next block is still written, and so are the blocks after it."""
    reported: list[str] = []

    async def scenario() -> None:
        decisions = Decisions(BlockerConfig())
        state = State(tmp_path / "state.db")
        enforcer = Enforcer(decisions, state, create("null"), 0.0,
                            lambda block, evidence: reported.append(block.target))
        enforcer.start(time.time())
        now = time.time()
        gate = Gate(Bounds(), decisions.blocker.config.allow)
        peer = RemoteDecision("192.0.2.77", now - 10, now - 1 + 2, "fleet:mx9",
                              nth=2**31 - 1, lifetime=2**63 - 1)
        for block, evidence in adopt(decisions.blocker, gate, "fleet", [peer], False,
                                     now).blocks:
            enforcer.queue(block, evidence)
        await _until(lambda: reported == ["192.0.2.77"], "the remote block")
        await asyncio.sleep(1.1)  # it ends
        for _ in range(3):
            block = decisions.blocker.observe(
                Attack("192.0.2.77", "postfix.sasl", "postfix", 10), time.time())
            if block is not None:
                enforcer.queue(block, ["an attack"])
        now = time.time()
        enforcer.queue(decisions.blocker.block("192.0.2.78", now + 60, now), [])
        await _until(lambda: len(reported) == 3, "the local blocks")
        await enforcer.close(flush_firewall=False)
        assert enforcer.counters.state_errors == 0
        active, _, _ = state.load(time.time())
        assert {b.target for b in active} == {"192.0.2.77", "192.0.2.78"}

    asyncio.run(scenario())
