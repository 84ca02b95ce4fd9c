"""The enforcer: decided blocks and unblocks in, state and firewall kept equal.

Rules of this file:
* Everything that writes the state file or calls the firewall driver lives
  here, and the order of those side effects is this file's: a decision is
  committed to the state, then applied to the firewall in a batch, and only
  then reported (logged, then handed to `on_blocked`).
* One driver call at a time, from any task (libnftables aborts when called
  twice at once): every call holds the `firewall` lock.
* The firewall may refuse, fail or be flushed by an admin; the state never
  diverges from what was decided. A refused batch is retried with back-off
  (each change alone after the first refusal), and what is still missing
  after that is repaired by the next firewall check (a sync of everything).
* The state file may be unwritable for a while (a full disk): protection
  goes on from memory, and what could not be written waits in `_unsaved`
  (the last word per target, so it stays as small as the blocks themselves)
  for the next commit, tried again every STATE_RETRY seconds meanwhile. A
  block it reported is in the state file as soon as the disk takes it.
* No failure ends the batch task: one that is nobody's fault (a bug) is
  logged and the decisions wait, like a failed write.
* It does not decide: what should be in force is the blocker's (it reads
  `decisions.blocker`, which a reload may replace); the enforcer only makes
  the state and the kernel hold it, and ends blocks whose time is up.

Theory of operation: callers `queue` blocks and `lift` unblocks; the batch
task wakes, commits everything queued in one transaction, and sends
everything committed as one firewall batch. Batches grow with the load, and a
lone block waits for nothing (batch_delay can add a wait). `commit` lets a
caller wait for the state but not the firewall (omprog's confirmations).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .backends import Backend, BackendError, Change
from .blocker import Block
from .decisions import Decisions
from .display import block_said
from .state import State, StateError

log = logging.getLogger("syslogban")

RETRY_DELAYS = (0.1, 0.5, 2.0, 5.0, 15.0, 30.0)
STATE_RETRY = 5.0  # seconds between tries to write what the state file refused

Decided = tuple[Block, list[str]]  # a block and the evidence stored with it


@dataclass(slots=True)
class EnforcerCounters:
    batches: int = 0
    backend_errors: int = 0
    state_errors: int = 0
    unblocks: int = 0
    repairs: int = 0  # syncs after the firewall was found to differ


class Enforcer:
    def __init__(self, decisions: Decisions, state: State, backend: Backend,
                 batch_delay: float, on_blocked: Callable[[Block, list[str]], None]) -> None:
        self.decisions = decisions
        self.state = state
        self.backend = backend
        self.batch_delay = batch_delay  # a reload may change it
        self.on_blocked = on_blocked    # after the firewall holds the block
        self.counters = EnforcerCounters()
        self.firewall = asyncio.Lock()  # one driver call at a time, from any task
        self._pending: list[Decided] = []
        self._unpending: list[Block] = []
        self._ended: list[str] = []  # ended in the kernel on their own: the state forgets them
        self._unsaved: dict[str, Decided | None] = {}  # not written yet; None: a removal
        self._committed: list[tuple[list[Decided], list[Block]]] = []
        self._commit_lock = asyncio.Lock()
        self._failing = False  # the last write failed (said once per outage)
        self._wakeup = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------ lifecycle

    def start(self, now: float) -> None:
        """Makes the firewall hold the active blocks, then starts the batch and
        expiry tasks (call it from the loop, after the blocker is restored)."""
        self.backend.start()
        self.backend.sync(self._wanted(), now)
        self._tasks = [asyncio.create_task(self._batches()), asyncio.create_task(self._expiry())]

    async def close(self, flush_firewall: bool) -> None:
        """Commits and applies what is queued, then lets go of the firewall.

        The batch task is never cancelled in the middle of a batch (the batch
        would be lost, and the state closed under a commit): it ends after it.
        """
        batches, expiry = self._tasks
        expiry.cancel()
        await asyncio.gather(expiry, return_exceptions=True)
        self._closing = True
        self._wakeup.set()
        await batches
        await self.flush()
        if self._unsaved:
            log.error("%d changes could not be written to the state file: the next start "
                      "does not know them", len(self._unsaved))
        self.backend.stop(flush=flush_firewall)

    # ------------------------------------------------------------ queueing

    def queue(self, block: Block, evidence: list[str]) -> None:
        """A block to commit and apply with the next batch."""
        self._pending.append((block, evidence))
        self._wakeup.set()

    def lift(self, block: Block) -> None:
        """An ended or lifted block to remove with the next batch."""
        self._unpending.append(block)
        self._wakeup.set()

    async def _batches(self) -> None:
        """A batch leaves as soon as the previous one is done: decisions made while
        one is applied make the next batch, so batches grow with the load and a
        lone block waits for nothing (batch_delay can add a wait)."""
        while not self._closing:
            try:  # what the state file refused is tried again, new decisions or not
                await asyncio.wait_for(self._wakeup.wait(),
                                       STATE_RETRY if self._unsaved else None)
            except TimeoutError:
                pass
            if self.batch_delay and not self._closing:
                await asyncio.sleep(self.batch_delay)
            self._wakeup.clear()
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - protection must outlive a bug
                log.error("a batch failed, its decisions wait for the next one: %s: %s",
                          type(exc).__name__, exc)

    async def flush(self) -> bool:
        """Commits, applies and reports what was queued; whether the commit succeeded."""
        committed = await self._commit_queued()
        await self._apply_committed()
        return committed

    async def commit(self) -> bool:
        """Commits what was queued; the batch task takes it to the firewall.

        When this returns, every decision queued before the call is committed
        (the lock orders concurrent commits), which is what omprog's
        confirmations wait for; they need not wait for the firewall.
        """
        committed = await self._commit_queued()
        if self._committed:
            self._wakeup.set()
        return committed

    async def _commit_queued(self) -> bool:
        async with self._commit_lock:
            blocks, self._pending = self._pending, []
            unblocks, self._unpending = self._unpending, []
            ended, self._ended = self._ended, []
            unsaved = self._unsaved
            # In the order they happened: blocks that ended, new blocks, unblocks.
            unsaved.update(dict.fromkeys(ended))
            unsaved.update((b.target, (b, evidence)) for b, evidence in blocks)
            unsaved.update(dict.fromkeys(b.target for b in unblocks))
            committed = await self._write(unsaved) if unsaved else True
            if blocks or unblocks:
                self._committed.append((blocks, unblocks))  # from memory if need be
        return committed

    async def _write(self, unsaved: dict[str, Decided | None]) -> bool:
        """Writes what waits in one transaction; on failure it keeps waiting."""
        written = [d for d in unsaved.values() if d is not None]
        history = {b.target: self.decisions.blocker.history[b.target] for b, _ in written
                   if b.target in self.decisions.blocker.history}
        removed = [t for t, d in unsaved.items() if d is None]
        try:  # in a thread: a durable commit waits for the disk, the loop must not
            await asyncio.to_thread(self.state.record, written, history, removed)
        except Exception as exc:  # noqa: BLE001 - a full disk, or a bug: it all waits
            self.counters.state_errors += 1
            if not self._failing:
                log.error("%s; protection goes on from memory, %d changes wait for the "
                          "state file", exc if isinstance(exc, StateError)
                          else f"{type(exc).__name__}: {exc}", len(unsaved))
            self._failing = True
            return False
        if self._failing:
            log.warning("the state file takes writes again: %d changes written", len(unsaved))
            self._failing = False
        unsaved.clear()
        return True

    # ------------------------------------------------------------- applying

    async def _apply_committed(self) -> None:
        """Every committed batch waiting, as one firewall batch, then reported."""
        async with self.firewall:
            queued, self._committed = self._committed, []
            blocks = [b for batch, _ in queued for b in batch]
            unblocks = [b for _, batch in queued for b in batch]
            if not (blocks or unblocks):
                return
            changes = [Change(True, b.target, b.until) for b, _ in blocks]
            changes += [Change(False, b.target, 0.0) for b in unblocks]
            await self._apply(changes)
        for block, evidence in blocks:
            log.warning("blocked %s", block_said(block))
            try:
                self.on_blocked(block, evidence)
            except Exception as exc:  # noqa: BLE001 - a notifier's or remote part's bug
                log.error("reporting the block of %s failed: %s: %s", block.target,
                          type(exc).__name__, exc)
        for block in unblocks:
            log.info("unblocked %s", block.target)

    async def _apply(self, changes: list[Change]) -> None:
        """One batch, retried with back-off; the daemon goes on deciding meanwhile.

        When a batch of several changes is refused, each is tried alone once,
        so that one change the firewall will never take does not hold back the
        others. What still fails after the last retry is left to the next
        firewall check, which repairs any difference with a sync.
        """
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            if delay:
                await asyncio.sleep(delay)
            if await self._applied(changes, f"firewall update failed (attempt {attempt + 1})"):
                return
            if attempt == 0 and len(changes) > 1:
                changes = [c for c in changes
                           if not await self._applied([c], f"firewall refused {c.target}")]
                if not changes:
                    return
        log.error("giving up on %d changes for now; the next firewall check repairs them",
                  len(changes))

    async def _applied(self, changes: list[Change], failure: str) -> bool:
        try:
            await asyncio.to_thread(self.backend.apply, changes, time.time())
        except Exception as exc:  # noqa: BLE001 - a driver's bug is retried like a refusal
            self.counters.backend_errors += 1
            log.error("%s: %s", failure, exc if isinstance(exc, BackendError)
                      else f"{type(exc).__name__}: {exc}")
            return False
        self.counters.batches += 1
        return True

    # ------------------------------------------------------- checking, ending

    def _wanted(self) -> dict[str, float]:
        return {t: b.until for t, b in self.decisions.blocker.active.items()}

    async def replace_backend(self, backend: Backend) -> None:
        """Hands the firewall to `backend` (the same driver with other options,
        after a reload): started, then synced by the caller; the old one is let
        go of without flushing, so the blocks stay in force throughout."""
        async with self.firewall:
            await asyncio.to_thread(backend.start)
            old, self.backend = self.backend, backend
        await asyncio.to_thread(old.stop, False)

    async def sync(self) -> None:
        """Makes the firewall hold exactly the active blocks (after a reload),
        set up anew first as a repair does: an admin may have flushed it. A
        BackendError is counted and left to the caller to report."""
        async with self.firewall:
            try:
                await asyncio.to_thread(self._resync, time.time())
            except BackendError:
                self.counters.backend_errors += 1
                raise

    async def check_firewall(self) -> bool:
        """Repairs the firewall when it no longer holds what the state says.

        An admin's `nft flush ruleset`, a firewall reload, a batch given up on:
        whatever the cause, one sync makes them equal again. Blocks about to
        end are left out of the comparison (the kernel may end them first).
        """
        async with self.firewall:
            return await self._check_firewall()

    async def _check_firewall(self) -> bool:
        now = time.time()
        try:
            held = set(await asyncio.to_thread(self.backend.list))
        except BackendError as exc:
            held, reason = set(), str(exc)
        else:
            reason = ""
        active = self.decisions.blocker.active
        missing = {t for t, b in active.items() if b.until > now + 5} - held
        stale = held - set(active)
        if not (missing or stale or reason):
            return False
        self.counters.repairs += 1
        log.warning("the firewall differs from the state (%d missing, %d not ours%s): "
                    "repairing", len(missing), len(stale), f"; {reason}" if reason else "")
        try:
            await asyncio.to_thread(self._resync, time.time())
        except BackendError as exc:
            self.counters.backend_errors += 1
            log.error("firewall repair failed, next check retries: %s", exc)
        return True

    def _resync(self, now: float) -> None:
        self.backend.start()
        self.backend.sync(self._wanted(), now)

    async def _expiry(self) -> None:
        """Ends blocks whose time is up: in the state only, when the kernel ends
        them itself (nft set timeouts); else with an unblock batch."""
        while True:
            due = self.decisions.blocker.next_expiry()
            await asyncio.sleep(1.0 if due is None else min(max(due - time.time(), 0.0), 1.0))
            ended = self.decisions.blocker.expire(time.time())
            if ended:
                self.counters.unblocks += len(ended)
                if self.backend.kernel_expiry:  # the state forgets them with the next commit
                    self._ended += [b.target for b in ended]
                    self._wakeup.set()
                else:
                    for block in ended:
                        self.lift(block)
