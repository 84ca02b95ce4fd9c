"""Commands: what each request on the control socket means, answered as JSON.

Rules of this file:
* One handler per command, in one table; control.py carries the bytes and
  this file never touches a socket. A handler reads the rooms and answers;
  a block or unblock goes through the decisions (which refuse allow-listed
  and unknown targets) and then the enforcer, and is answered only once the
  firewall holds it.
* An admin's mistake (a bad address, a duration, a target never blocked) is
  a ValueError or TypeError with a one-line message: it becomes an error
  answer, never a traceback. Any other failure of a command (the state file
  unreadable, a bug) is answered too, and logged in one line: a client never
  waits for an answer that will not come.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from .blocker import Block, normal_target
from .decisions import Decisions
from .durations import format_duration
from .enforcer import Enforcer
from .state import State

log = logging.getLogger("syslogban.control")

Answer = dict[str, Any]
Handler = Callable[[dict[str, Any]], Awaitable[Answer]]


class Commands:
    def __init__(self, decisions: Decisions, enforcer: Enforcer, state: State,
                 status: Callable[[], dict[str, Any]],
                 reload: Callable[[], Awaitable[Answer]],
                 unblocked: Callable[[str, float], Awaitable[list[str]]]) -> None:
        self.decisions = decisions
        self.enforcer = enforcer
        self.state = state
        self._status = status
        self._reload = reload
        self._unblocked = unblocked  # the remote parts hear of an admin's unblock, and answer
        self._handlers: dict[str, Handler] = {
            "status": self._show_status, "list": self._list, "block": self._block,
            "unblock": self._unblock, "reload": self._reload_config, "why": self._why,
        }

    async def handle(self, request: dict[str, Any]) -> Answer:
        command = request["command"]
        handler = self._handlers.get(command)
        if handler is None:
            return {"ok": False, "error": f"unknown command {command!r}"[:100]}
        try:
            return await handler(request)
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a broken command must not leave its client hanging
            log.error("control: %s failed: %s: %s", command, type(exc).__name__, exc)
            return {"ok": False, "error": f"{command} failed: {exc}"[:300]}

    async def _show_status(self, request: dict[str, Any]) -> Answer:
        return {"ok": True, **self._status()}

    async def _list(self, request: dict[str, Any]) -> Answer:
        active = sorted(self.decisions.blocker.active.values(), key=lambda b: b.since)
        return {"ok": True, "blocks": [_block_json(b) for b in active]}

    async def _block(self, request: dict[str, Any]) -> Answer:
        block, replaced = self.decisions.block(str(request.get("target", "")),
                                               request.get("for", "permanent"), time.time(),
                                               bool(request.get("replace", False)))
        self.enforcer.queue(block, ["manual block over the control socket"])
        await self.enforcer.flush()
        return {"ok": True, "block": _block_json(block),
                "replaced": _block_json(replaced) if replaced else None}

    async def _unblock(self, request: dict[str, Any]) -> Answer:
        target = normal_target(str(request.get("target", "")))
        block = self.decisions.unblock(target, time.time())
        self.enforcer.lift(block)
        await self.enforcer.flush()
        remote = await self._unblocked(block.target, time.time())
        answer: Answer = {"ok": True, "unblocked": block.target}
        if block.target != target:
            answer["covered"] = target  # the prefix block that held it was lifted
        if remote:
            answer["remote"] = remote  # the fleet lifted it everywhere, or refused
        return answer

    async def _reload_config(self, request: dict[str, Any]) -> Answer:
        return await self._reload()

    async def _why(self, request: dict[str, Any]) -> Answer:
        """The target's block (or the prefix block covering it), history, attempts
        per service within the window, and the evidence grouped per attempt."""
        target = normal_target(str(request.get("target", "")))
        blocker = self.decisions.blocker
        now = time.time()
        block = blocker.covering(target, now)
        history = blocker.history.get(target)
        kept = list(self.decisions.evidence.get(target, ()))
        evidence = [e.message for e in kept] or self.state.evidence(
            block.target if block else target)
        attempts = blocker.attempts(target, now)
        if block is None and history is None and not evidence and not attempts:
            raise ValueError(f"{target}: nothing known about it")
        grouped: dict[int, dict[str, Any]] = {}
        for line in kept:
            grouped.setdefault(line.attempt, {"attempt": line.attempt, "service": line.service,
                                              "lines": []})["lines"].append(line.message)
        return {"ok": True, "target": target,
                "allowed": "/" not in target and blocker.allows(target),
                "block": _block_json(block) if block else None,
                "covered_by": block.target if block and block.target != target else None,
                "history": asdict(history) if history else None, "attempts": attempts,
                "evidence": evidence,  # attempts in the order they began (first line first)
                "per_attempt": [grouped[ref] for ref in sorted(grouped)]}


def _block_json(block: Block) -> dict[str, Any]:
    data = asdict(block)
    data["until"] = None if block.permanent else block.until
    data["duration"] = format_duration(block.until - block.since)
    return data
