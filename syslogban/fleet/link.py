"""This host's link to the fleet: the Remote the daemon plugs in.

Rules of this file:
* Events up, decisions down, and neither ever waits for the database: the
  daemon's calls put rows in memory and return; the sender moves them to the
  outbox (the state file) and from there to the database in batches. The
  database away, the outbox grows (bounded, see outbox.py) and local
  blocking goes on untouched.
* Decisions come down by LISTEN/NOTIFY, which only wakes the follower: it
  reads what became visible since its cursor (the snapshot of its last
  read), so a lost notification costs nothing but
  a second (the follower also looks every second). On start and after every
  reconnect it takes the blocks in force in one query (a full sync), then the
  stream.
* Three connections: the sender's, the listener's (NOTIFY), the follower's;
  each one reconnects alone, with back-off, and says so once per outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from ..attempts import Counted
from ..blocker import Block, BlockerConfig
from ..matcher import Attack
from ..remote import Deliver, Remote
from ..waiting import wait_event
from . import store
from .admin import FleetError, describe
from .outbox import BLOCK, EVENT, UNBLOCK, Outbox, event_line
from .settings import FleetSettings

log = logging.getLogger("syslogban.fleet")

BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
POLL = 1.0           # seconds between looks at the log without a notification
PRUNE_EVERY = 3600.0
STOP_BUDGET = 2.0    # seconds the sender gets to empty the outbox when the daemon stops
CANCEL_BUDGET = 3.0  # seconds the tasks get to end once cancelled
VERDICT_BUDGET = 2.0  # seconds an admin's unblock waits for the database's word
FAILURES = (psycopg.Error, OSError, FleetError)


@dataclass(slots=True)
class FleetCounters:
    batches: int = 0
    events_sent: int = 0
    decided: int = 0           # decisions this host wrote (its own blocks, fleet scores)
    refused: int = 0           # rows the database refused (allow-listed, no grant)
    received: int = 0          # decisions read from the log
    outages: int = 0


class Fleet(Remote):
    name = "fleet"

    def __init__(self, settings: FleetSettings, state_path: str,
                 blocker_config: Callable[[], BlockerConfig]) -> None:
        self.settings = settings
        self.blocker_config = blocker_config  # the current one (it changes on reload)
        self.outbox = Outbox(state_path, settings.outbox)
        self.counters = FleetCounters()
        self.host = settings.host  # the role it logs in as, once connected
        self._buffer: list[tuple[str, Any]] = []
        self._wake = asyncio.Event()
        self._notified = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []  # sender, listener, follower
        self._stopping = False
        self._deliver: Deliver | None = None
        self._writer: psycopg.AsyncConnection[Any] | None = None
        self._down: dict[str, str] = {}  # connection -> what is wrong with it
        self._verdicts: dict[str, asyncio.Future[str]] = {}  # an admin's unblocks, answered
        self._cursor = self.outbox.cursor(self.name)

    # ------------------------------------------------------ the daemon's side

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._wake.set()  # what the outbox kept from the last run goes at once
        self._tasks = [asyncio.create_task(part(), name=f"fleet {part.__name__[1:]}")
                       for part in (self._sender, self._listener, self._follower)]

    def attacked(self, attack: Attack, counted: Counted, now: float) -> None:
        """Attempts, not lines: a line that adds nothing (it reports an attempt
        another line counted) is not sent."""
        if counted.new or counted.points:
            self._queue(EVENT, event_line(attack.address, attack.signature, attack.service,
                                          counted.points, counted.new, now))

    def blocked(self, block: Block, evidence: Sequence[str]) -> None:
        if not block.origin:  # a decision that came from elsewhere goes back to no one
            lines = [f"{self.host}: {line}" for line in evidence]  # whose lines, on every host
            self._queue(BLOCK, store.block_body(block, lines))

    def unblocked(self, target: str, now: float) -> None:
        self._queue(UNBLOCK, {"target": target, "at": now})
        if target not in self._verdicts:
            self._verdicts[target] = asyncio.get_running_loop().create_future()

    async def unblock_verdict(self, target: str) -> str | None:
        """Whether the fleet lifted it everywhere or refused (a host whose role
        lacks syslogban_unblock), as the database said; or that it waits."""
        verdict = self._verdicts.get(target)
        if verdict is None:
            return None
        if "sender" in self._down:
            return (f"fleet: the database is away ({self._down['sender']}): the other hosts "
                    "lift it once it is back")
        try:
            async with asyncio.timeout(VERDICT_BUDGET):
                return await asyncio.shield(verdict)
        except TimeoutError:
            return (f"fleet: no answer from the database within {VERDICT_BUDGET:.0f} s: the "
                    "unblock waits in the outbox for the other hosts")

    def status(self) -> dict[str, Any]:
        return {"host": self.host, "connected": not self._down, "problems": dict(self._down),
                "outbox": len(self.outbox) + len(self._buffer), "cursor": self._cursor,
                **asdict(self.counters), "outbox_counters": asdict(self.outbox.counters)}

    async def stop(self) -> None:
        """Lets the sender send for up to STOP_BUDGET seconds; the rest waits in
        the outbox. Every task then ends by its cancel (none is waited for
        longer than CANCEL_BUDGET: a stop never hangs)."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            await asyncio.wait(self._tasks[:1], timeout=STOP_BUDGET)  # the sender
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=CANCEL_BUDGET)
            for task in stuck:
                log.error("fleet: %s did not stop; left behind", task.get_name())
        self._spill()
        if len(self.outbox):
            log.warning("fleet: %d rows stay in the outbox for the next start", len(self.outbox))
        if self._writer is not None:
            await self._writer.close()
        self.outbox.close()

    def _queue(self, kind: str, body: Any) -> None:
        self._buffer.append((kind, body))
        self._wake.set()

    def _spill(self) -> None:
        """Memory to the outbox: from here on, a crash loses nothing."""
        if self._buffer:
            rows, self._buffer = self._buffer, []
            self.outbox.append(rows)

    # ----------------------------------------------------------- up: sending

    async def _sender(self) -> None:
        failures = 0
        retry_at = 0.0
        last_prune = time.monotonic()
        while True:
            if not self._stopping:
                await wait_event(self._wake, None if failures == 0
                                 else max(0.0, retry_at - time.monotonic()))
            self._wake.clear()
            self._spill()
            while self.outbox.full and self.outbox.summarise():  # in steps: the loop (local
                await asyncio.sleep(0)                            # blocking) goes on between
            if self._stopping and failures:  # the database is away: the outbox keeps it
                return
            if time.monotonic() < retry_at:
                continue
            try:
                await self._send_all()
                if time.monotonic() - last_prune > PRUNE_EVERY and self._writer is not None:
                    last_prune = time.monotonic()
                    await store.prune(self._writer, self.settings.keep)
                failures = 0
                self._up("sender")
            except FAILURES as exc:
                failures += 1
                retry_at = time.monotonic() + BACKOFF[min(failures, len(BACKOFF)) - 1]
                await self._lost("sender", exc)
                if self._writer is not None:
                    await self._writer.close()
                    self._writer = None
            if self._stopping and not failures:
                return

    async def _send_all(self) -> None:
        if self._writer is None:
            self._writer = await self._connect()
            self.outbox.floor(await store.last_seq(self._writer))
        while len(self.outbox):
            rows = self.outbox.peek(self.settings.batch)
            sent = await store.send(self._writer, rows, self.blocker_config(),
                                    len(self.outbox), time.time())
            self.outbox.remove(rows[-1][0])
            self.counters.batches += 1
            self.counters.events_sent += sent.events
            self.counters.decided += len(sent.decided)
            self.counters.refused += len(sent.refused)
            for target, why in sent.refused:
                log.warning("fleet: %s refused: %s", target, why)
            for target, refusal in sent.unblocks:
                verdict = self._verdicts.pop(target, None)
                if verdict is not None and not verdict.done():
                    verdict.set_result("fleet: lifted on every host" if refusal is None else
                                       f"fleet: not lifted on the other hosts: {refusal}")
            self._spill()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await store.connect(self.settings)
        self.host = await store.host_name(conn)
        return conn

    def _up(self, which: str) -> None:
        if which in self._down:
            del self._down[which]
            log.warning("fleet: %s connected again", which)

    async def _lost(self, which: str, exc: BaseException) -> None:
        if isinstance(exc, FleetError):  # a mistake of the configuration: say it plainly
            text = str(exc)
        else:
            text = f"fleet database: {describe(exc)}"
        if which not in self._down:
            self.counters.outages += which == "sender"
            log.error("%s (%s); local blocking goes on, the outbox keeps %d rows", text, which,
                      len(self.outbox))
        self._down[which] = text

    # -------------------------------------------------------- down: receiving

    async def _listener(self) -> None:
        """Only wakes the follower; a lost notification is found by its poll."""
        await self._reconnecting("listener", self._listen)

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            await store.listen(conn)
            self._up("listener")
            async for _ in conn.notifies():
                self._notified.set()
        finally:
            await conn.close()

    async def _follower(self) -> None:
        await self._reconnecting("follower", self._follow)

    async def _follow(self) -> None:
        conn = await self._connect()
        try:
            decisions, self._cursor = await store.snapshot(conn)
            self.counters.received += len(decisions)
            assert self._deliver is not None
            self._deliver(decisions, True)
            self.outbox.set_cursor(self.name, self._cursor)
            self._up("follower")
            while True:
                self._notified.clear()  # before the read: a decision after it wakes again
                changes, self._cursor = await store.changes(conn, self._cursor)
                if changes:
                    self.counters.received += len(changes)
                    self._deliver(changes, False)
                    self.outbox.set_cursor(self.name, self._cursor)
                await wait_event(self._notified, POLL)
        finally:
            await conn.close()

    async def _reconnecting(self, which: str, body: Callable[[], Any]) -> None:
        failures = 0
        while True:
            try:
                await body()
            except FAILURES as exc:
                await self._lost(which, exc)
            failures += 1
            await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF)) - 1])
            if which not in self._down:
                failures = 0
