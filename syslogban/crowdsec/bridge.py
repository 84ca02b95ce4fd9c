"""The CrowdSec bridge as the daemon runs it: one remote part (remote.py).

Rules of this file:
* The shell around the pure book (decisions.py) and alert (alerts.py): it
  owns the order of the LAPI calls, the outbox and the retries. It never
  touches the blocker, the firewall or the blocks in the state; decisions
  go to the daemon through `deliver`, which admits them (allow-list, bounds).
* One worker task makes every LAPI call, one after another, in a thread:
  a poll never overlaps a push, so the book always knows this host's own
  decisions before a stream answer can mention them.
* Sending never waits: `blocked` and `unblocked` note what happened and wake
  the worker. The worker writes it to the outbox (the state file) before it
  tries the LAPI; what the LAPI did not take stays there, in order, for the
  next try or the next start. A LAPI that is away slows nothing local.
* An outbox operation leaves the outbox in the same transaction that queues
  what follows from it, so a crash in between sends nothing twice and
  forgets nothing.

Operations: `alert` (POST /v1/alerts, built when it leaves, with the time
the block has left), `lookup` (GET /v1/alerts/{id}: the ids of its decisions,
so that an unblock can delete exactly them; `then_delete` when the unblock
came first), `delete` (DELETE /v1/decisions/{id}).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..blocker import Block
from ..durations import PERMANENT, format_duration
from ..remote import Deliver, Remote, RemoteDecision
from .alerts import alert
from .decisions import Book, Decision, Update, go_duration, origin_of
from .lapi import Lapi, LapiError
from .settings import CrowdSecSettings
from .store import Operation, Store

log = logging.getLogger("syslogban.crowdsec")

RETRY_AFTER = (1.0, 5.0, 15.0, 30.0, 60.0)  # seconds, after consecutive failures
STOP_BUDGET = 3.0                            # seconds to send what waits when stopping


@dataclass(slots=True)
class BridgeCounters:
    polls: int = 0
    decisions_read: int = 0
    blocks_delivered: int = 0
    lifts_delivered: int = 0
    alerts_sent: int = 0
    alerts_expired: int = 0   # their block ended before the LAPI could take them
    deletions_sent: int = 0
    dropped: int = 0          # operations the LAPI refused outright (4xx): logged, not retried
    errors: int = 0


class CrowdSecBridge(Remote):
    name = "crowdsec"

    def __init__(self, settings: CrowdSecSettings, state_path: str | None,
                 lapi: Lapi | None = None, clock: Callable[[], float] = time.time) -> None:
        """state_path None (a dry run): nothing is kept and nothing is pushed."""
        self.settings = settings
        self.lapi = lapi or Lapi(settings.url, settings.bouncer_key, settings.machine_id,
                                 settings.machine_password)
        self.store = Store(state_path) if state_path else None
        self.pushes = settings.pushes and self.store is not None
        self.clock = clock
        self.book = Book()
        self.counters = BridgeCounters()
        self._deliver: Deliver = lambda decisions, complete: None
        self._blocked: list[tuple[Block, int]] = []
        self._unblocked: list[str] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._synced = False          # a startup stream has been applied
        self._next_poll = 0.0
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""
        self._waiting = 0
        self._stopping = False

    # ---------------------------------------------------- the Remote interface

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        if self.store is not None:
            self.book.restore(await asyncio.to_thread(self.store.decisions))
            self._waiting = len(await asyncio.to_thread(self.store.operations))
        if self.settings.plain_remote:
            log.warning("CrowdSec LAPI %s is reached over plain http: its keys and "
                        "passwords cross the network unencrypted; prefer https",
                        self.settings.url)
        log.info("CrowdSec bridge to %s: %s%s, %d decisions known, %d operations waiting",
                 self.settings.url, "pulling decisions" if self.settings.pulls else "",
                 (" and " if self.settings.pulls and self.pushes else "")
                 + ("pushing alerts" if self.pushes else ""), len(self.book.by_id),
                 self._waiting)
        self._task = asyncio.create_task(self._work())

    def blocked(self, block: Block, evidence: Sequence[str]) -> None:
        if self.pushes:
            self._blocked.append((block, len(evidence)))
            self._wake.set()

    def unblocked(self, target: str, now: float) -> None:
        if self.pushes:
            self._unblocked.append(target)
            self._wake.set()

    def status(self) -> dict[str, Any]:
        return {"url": self.settings.url, "pulling": self.settings.pulls,
                "pushing": self.pushes, "reachable": self._failures == 0,
                "last_error": self._last_error, "synced": self._synced,
                "decisions_known": len(self.book.by_id), "operations_waiting": self._waiting,
                **asdict(self.counters), "stream": asdict(self.book.counters)}

    async def stop(self) -> None:
        """Sends what waits for at most STOP_BUDGET seconds; the rest stays queued."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_BUDGET)
        except TimeoutError:  # a LAPI that does not answer: what waits stays queued
            self.lapi.abort()  # the worker's thread ends now, not at the call's deadline
            self._task.cancel()
            log.warning("CrowdSec: %d operations stay in the outbox for the next start",
                        self._waiting)
            return  # a thread may still be in a call: the store stays open until exit
        if self.store is not None:
            self.store.close()

    # -------------------------------------------------------------- the worker

    async def _work(self) -> None:
        while True:
            try:
                await self._round(push_only=self._stopping)
            except Exception as exc:  # noqa: BLE001 - the bridge must never stop the daemon
                self._failed(exc)  # an answer nothing expected, a bug: retried like an outage
            if self._stopping:
                return
            # Failing, nothing happens before the retry (a poll due long ago included).
            due = self._retry_at if self._failures else (
                self._next_poll if self.settings.pulls else math.inf)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(),
                                       max(min(due - self.clock(), 3600.0), 0.0))
            self._wake.clear()

    async def _round(self, push_only: bool) -> None:
        await self._note()
        if self._failures and self.clock() < self._retry_at:
            return
        try:
            if self.pushes:
                await self._push()
            if self.settings.pulls and not push_only and self.clock() >= self._next_poll:
                await self._poll()
        except LapiError as exc:
            await self._count_waiting()
            self._failed(exc)
        else:
            await self._count_waiting()
            if self._failures:
                log.warning("CrowdSec LAPI %s is reachable again", self.settings.url)
            self._failures, self._last_error = 0, ""

    async def _count_waiting(self) -> None:
        if self.store is not None:
            self._waiting = len(await asyncio.to_thread(self.store.operations))

    def _failed(self, exc: Exception) -> None:
        self.counters.errors += 1
        self._synced = False  # a stream answer may have been lost: start over with all
        error = str(exc) if isinstance(exc, LapiError) else \
            f"CrowdSec bridge: {type(exc).__name__}: {exc}"
        if error != self._last_error:
            log.error("%s; %d operations wait in the outbox, local blocking goes on",
                      error, self._waiting)
        self._last_error = error
        self._retry_at = self.clock() + RETRY_AFTER[min(self._failures, len(RETRY_AFTER) - 1)]
        self._failures += 1

    async def _note(self) -> None:
        """Writes what happened since the last round to the outbox."""
        if self.store is None or not (self._blocked or self._unblocked):
            return
        blocked, self._blocked = self._blocked, []
        unblocked, self._unblocked = self._unblocked, []
        for block, evidence in blocked:
            body = {**asdict(block), "until": None if block.permanent else block.until,
                    "evidence": evidence}
            await asyncio.to_thread(self.store.queue, block.target, "alert", body)
        for target in unblocked:
            await self._note_unblock(target)

    async def _note_unblock(self, target: str) -> None:
        assert self.store is not None
        pending = [op for op in await asyncio.to_thread(self.store.operations)
                   if op.target == target and op.kind in ("alert", "lookup")]
        follow: list[tuple[str, str, dict[str, Any]]] = []
        for op in pending:  # an alert not sent yet is simply not sent
            if op.kind == "lookup":
                follow.append((target, "lookup", {**op.body, "then_delete": True}))
        ids = self.book.forget_own(target)
        if ids:
            follow.append((target, "delete", {"ids": ids}))
        await asyncio.to_thread(self.store.finish, [op.id for op in pending], follow, (), ids)

    async def _push(self) -> None:
        assert self.store is not None
        waiting = await asyncio.to_thread(self.store.operations)
        while waiting:
            op = waiting.pop(0)
            try:  # what follows from it goes next: the lookup right after its alert
                waiting[0:0] = await self._send(op)
            except LapiError as exc:
                if not exc.rejected:
                    raise  # unreachable, or a server error: the operation waits
                self._drop(op, str(exc))
            except (KeyError, TypeError, ValueError) as exc:  # an unreadable operation
                self._drop(op, f"unreadable ({exc!r})")

    def _drop(self, op: Operation, why: str) -> None:
        """An operation the LAPI will never take: retrying it forever would hold
        back every one behind it (CrowdSec agents do, crowdsecurity/crowdsec#2687)."""
        assert self.store is not None
        self.counters.dropped += 1
        log.error("CrowdSec: dropped the %s of %s: %s", op.kind, op.target, why)
        self.store.finish([op.id])

    async def _send(self, op: Operation) -> list[Operation]:
        """Sends one operation; the operations that follow from it."""
        assert self.store is not None
        follow: list[tuple[str, str, dict[str, Any]]] = []
        added: list[Decision] = []
        removed: list[int] = []
        if op.kind == "alert":
            body = alert(_block(op.body), int(op.body.get("evidence", 0)), self.clock())
            if body is None:
                self.counters.alerts_expired += 1
            else:
                [alert_id] = await asyncio.to_thread(self.lapi.post_alerts, [body])
                self.counters.alerts_sent += 1
                follow.append((op.target, "lookup", {"alert_id": alert_id,
                                                     "origin": origin_of(body["decisions"][0])}))
        elif op.kind == "lookup":
            found = await asyncio.to_thread(self.lapi.alert_decisions, op.body["alert_id"])
            now = self.clock()
            own = [Decision(i, op.target, now + go_duration(left), op.body["origin"], own=True)
                   for i, left in found]
            if op.body.get("then_delete"):
                follow.append((op.target, "delete", {"ids": [d.id for d in own]}))
            else:
                applied = self.book.own(own)
                added, removed = applied.added, applied.removed
        elif op.kind == "delete":
            for decision_id in op.body["ids"]:
                await asyncio.to_thread(self.lapi.delete_decision, decision_id)
                self.counters.deletions_sent += 1
        return await asyncio.to_thread(self.store.finish, [op.id], follow, added, removed)

    async def _poll(self) -> None:
        startup = not self._synced
        answer = await asyncio.to_thread(self.lapi.stream, startup)
        now = self.clock()
        self._next_poll = now + self.settings.poll
        self.counters.polls += 1
        read = self.book.counters.decisions
        try:
            applied = self.book.apply(answer, now, startup)
        except ValueError as exc:
            raise LapiError(f"CrowdSec LAPI {self.settings.url}: {exc}") from None
        self.counters.decisions_read += self.book.counters.decisions - read
        if self.store is not None and (applied.added or applied.removed):
            await asyncio.to_thread(self.store.finish, [], (), applied.added, applied.removed)
        if startup:
            log.info("CrowdSec: %d live decisions at start", len(self.book.by_id))
        self._synced = True
        if startup:  # every remote block in force: the daemon lifts the others
            self._deliver([self._remote(u, now) for u in self.book.in_force()], True)
            lifts = [u for u in applied.updates if u.lift and u.own]
            if lifts:
                self._deliver([self._remote(u, now) for u in lifts], False)
        elif applied.updates:
            self._deliver([self._remote(u, now) for u in applied.updates], False)

    def _remote(self, update: Update, now: float) -> RemoteDecision:
        if update.lift:
            self.counters.lifts_delivered += 1
            return RemoteDecision(update.target, now, now, update.origin, reason="crowdsec",
                                  revoked=True)
        self.counters.blocks_delivered += 1
        left = format_duration(update.until - now)
        return RemoteDecision(update.target, now, update.until, update.origin,
                              reason="crowdsec", evidence=(
                                  f"CrowdSec decision #{update.decision}, {left} left when "
                                  "it arrived",))


def _block(body: dict[str, Any]) -> Block:
    """The block an outbox alert was queued for."""
    until = body.get("until")
    return Block(str(body["target"]), float(body["since"]),
                 PERMANENT if until is None else float(until), str(body["reason"]),
                 int(body["score"]), tuple(body["signatures"]), int(body["nth"]),
                 int(body["lifetime"]))
