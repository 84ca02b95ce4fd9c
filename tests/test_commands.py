"""The control commands' dispatcher: every request gets an answer."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from syslogban.backends import create
from syslogban.blocker import BlockerConfig
from syslogban.commands import Commands
from syslogban.decisions import Decisions
from syslogban.enforcer import Enforcer
from syslogban.state import State


def test_a_command_that_fails_unexpectedly_is_answered_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    decisions = Decisions(BlockerConfig())
    state = State(tmp_path / "state.db")
    state.close()  # `why` reads the evidence from it: sqlite3.ProgrammingError

    async def reload() -> dict[str, object]:
        return {"ok": True}

    commands = Commands(decisions, Enforcer(decisions, state, create("null"), 0.0,
                                            lambda block, evidence: None),
                        state, dict, reload, lambda target, now: None)
    with caplog.at_level(logging.ERROR):
        answer = asyncio.run(commands.handle({"command": "why", "target": "192.0.2.1"}))
    assert answer["ok"] is False and answer["error"].startswith("why failed: ")
    assert "control: why failed: ProgrammingError" in caplog.text
