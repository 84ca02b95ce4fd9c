"""The daemon: one asyncio loop that wires the rooms together and runs them.

Rules of this file:
* It holds no room's logic, only the wiring: inputs.py (sources) hands
  records to the engine's detection pipeline (engine.py), detections go to
  decisions.py, what it decides goes to enforcer.py (state, then firewall),
  and what the firewall holds is reported (the notifier). commands.py answers
  the control socket; status.py and metrics.py render the counters. A second
  source of decisions or sink of events is one more room wired here.
* It owns the lifecycle: restore the state into the blocker and the
  firewall, open control, listeners, drop privileges, read; on SIGTERM or the
  end of input, stop in the reverse order, so that whatever was read is
  decided, committed and applied before the state closes.
* It never reads its own log back: records of the program "syslogban" are
  ignored, and it logs to stderr or a file, never to syslog.
* Reload (SIGHUP or `syslogban reload`) builds the new rules and allow-list
  first and swaps them in only when all of it loaded: a broken file leaves
  the old configuration in force. Active blocks and offender history carry
  over (decisions.py), and the firewall is set up and synced anew, as the
  periodic check repairs it (an admin may have flushed it).

Blocks outlive the daemon: stopping keeps them in the firewall unless
flush_on_exit is set, and a restart restores the active ones from the state.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from . import __version__, heap, logs, status
from .backends import Backend, BackendError, create
from .blocker import Block
from .config import Config, ConfigError, load, restart_needed
from .control import ControlServer
from .commands import Commands
from .decisions import Decisions
from .enforcer import Enforcer
from .engine import Engine
from .errors import os_error
from .inputs import Inputs
from .notify import Notifier, NotifyConfig
from .pipeline import Detection
from .privileges import CAP_NET_ADMIN, capabilities, drop_to
from .remotes import Remotes
from .state import State

log = logging.getLogger("syslogban")

PRUNE_EVERY = 60.0


class Daemon:
    def __init__(self, config: Config, config_path: str | None = None, flags: Any = None) -> None:
        self.config_path = config_path  # what `reload` reads again
        self.started_with = config  # what a reload cannot change (Option.restart)
        self.flags = flags
        self.engine = Engine.build(config)
        self.decisions = Decisions(self.engine.blocker_config())
        self.state = State(":memory:" if config.dry_run else config.state, config.state_durable)
        self.backend: Backend = (create("null") if config.dry_run
                                 else create(config.backend, **config.backend_options))
        self.started = time.time()
        self.enforcer = Enforcer(self.decisions, self.state, self.backend, config.batch_delay,
                                 self._blocked)
        self.remotes = Remotes(config, self.decisions, self.enforcer)
        self.stopping = asyncio.Event()
        self.control: ControlServer | None = None
        self.inputs = Inputs(config, self._detect, self._detect_record, self.enforcer.commit)
        self.commands = Commands(self.decisions, self.enforcer, self.state, self.status,
                                 self.reload, self.remotes.unblocked)
        self.notifier = self._notifier(config)
        self.notifications: set[asyncio.Task[None]] = set()
        self._metrics_failing = False
        self._reloading = asyncio.Lock()  # one reload at a time, SIGHUP's or a client's
        self._hup_wanted = False
        self._hup_task: asyncio.Task[None] | None = None

    @staticmethod
    def _notifier(config: Config) -> Notifier | None:
        """Mail and hook, when configured; a dry run sends and runs nothing."""
        notify = NotifyConfig.from_mapping(config.notify)
        if config.dry_run or not (notify.mail_to or notify.exec_argv):
            return None
        return Notifier(notify, time.time())

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        config = self.engine.config
        now = time.time()
        active, history, ended = self.state.load(now)
        self.decisions.blocker.restore(active, history)
        self.enforcer.start(now)
        await self.remotes.start()
        log.info("syslogban %s: %d signatures, backend %s, %d blocks restored, "
                 "%d ended while stopped, %d rows not restored", __version__,
                 len(self.engine.signatures), self.backend.name, len(active), len(ended),
                 self.state.skipped)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._sighup)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        if config.control:
            self.control = ControlServer(config.control, self.commands.handle,
                                         config.control_group)
            await self.control.start()
        tasks = [asyncio.create_task(self._housekeeping())]
        await self.inputs.listen()
        if config.user and not config.dry_run:
            self._drop_privileges(config)
        if config.stdin:
            tasks.append(asyncio.create_task(self._until_end(self.inputs.read_stdin())))
        if config.omprog:
            tasks.append(asyncio.create_task(self._until_end(self.inputs.read_omprog())))
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.inputs.close()
        await self.remotes.stop()
        await self.enforcer.close(flush_firewall=config.flush_on_exit)
        if self.notifier is not None:
            await asyncio.gather(*self.notifications, return_exceptions=True)
            await self.notifier.close()
        if self.control is not None:
            await self.control.close()
        self.state.close()
        log.warning("syslogban stopped (%s; %d records read, %d addresses tracked)",
                    "blocks removed" if config.flush_on_exit else "blocks kept in place",
                    self.engine.pipeline.counters.lines, self.decisions.blocker.tracked())
        return 0

    def _drop_privileges(self, config: Config) -> None:
        """The parser of attacker text runs without root from here on."""
        state = Path(config.state)  # its directory stays the admin's (StateDirectory=)
        files = [state, Path(f"{state}-wal"), Path(f"{state}-shm")]
        drop_to(config.user, self.backend.name in ("nftables", "ipset"), files)
        kept = capabilities().get("CapEff", 0) & (1 << CAP_NET_ADMIN)
        log.info("running as %s, %s", config.user,
                 "keeping CAP_NET_ADMIN only" if kept else "with no capabilities")

    async def _until_end(self, reader: Awaitable[None]) -> None:
        """The end of stdin (or of omprog's pipe) stops the daemon."""
        await reader
        log.info("end of input")
        self.stopping.set()

    # ------------------------------------------------------------- deciding

    def _detect(self, chunk: bytes, now: float) -> None:
        for detection in self.engine.pipeline.feed(chunk, now):
            self._decide(detection, now)

    def _detect_record(self, record: bytes, now: float) -> None:
        detection = self.engine.pipeline.feed_record(record, now)
        if detection is not None:
            self._decide(detection, now)

    def _decide(self, detection: Detection, now: float) -> None:
        self.remotes.attacked(detection.attack, detection.counted, now)
        decided = self.decisions.decide(detection, now)
        if decided is not None:
            self.enforcer.queue(*decided)

    def _blocked(self, block: Block, evidence: list[str]) -> None:
        """A block the firewall holds: told to the remote parts, and notified in a
        task of its own (a slow mail server must not hold the loop)."""
        self.remotes.blocked(block, evidence)
        if self.notifier is not None:
            task = asyncio.create_task(self.notifier.on_block(block, evidence, time.time()))
            self.notifications.add(task)
            task.add_done_callback(self.notifications.discard)

    async def _housekeeping(self) -> None:
        last_check = time.monotonic()
        while True:
            config = self.engine.config
            await asyncio.sleep(min(PRUNE_EVERY, config.metrics_interval, config.firewall_check))
            if time.monotonic() - last_check >= config.firewall_check:
                last_check = time.monotonic()
                await self.enforcer.check_firewall()
            self.decisions.blocker.prune(time.time())
            self.inputs.count_kernel_drops()
            if self.notifier is not None:
                await self.notifier.tick(time.time())
            if self.engine.config.metrics_file:
                self._write_metrics(self.engine.config.metrics_file)

    def _write_metrics(self, path: str) -> None:
        """A metrics file that cannot be written (a full disk, its directory gone)
        is said once until it can again: it must not end the firewall checks."""
        from . import metrics  # only when asked for: prometheus_client costs 3 MiB
        try:
            metrics.write(path, self.status()["counters"])
        except OSError as exc:
            if not self._metrics_failing:
                log.error("cannot write the metrics file, retrying: %s", os_error(exc))
            self._metrics_failing = True
        else:
            if self._metrics_failing:
                log.warning("the metrics file is written again: %s", path)
            self._metrics_failing = False

    # ------------------------------------------------------------ reloading

    def _sighup(self) -> None:
        """SIGHUP (log rotation may send a storm): one reload after the one in
        progress, however many came meanwhile; it reads the files as they are
        then. A reload each (a second each) piled up for minutes, and held the
        threads that the state file and the firewall are written from."""
        self._hup_wanted = True
        if self._hup_task is None or self._hup_task.done():
            self._hup_task = asyncio.create_task(self._hup_reloads())

    async def _hup_reloads(self) -> None:
        while self._hup_wanted:
            self._hup_wanted = False
            try:
                await self.reload()
            except Exception as exc:  # noqa: BLE001 - a bug must not end the reloads
                log.error("reload failed: %s: %s", type(exc).__name__, exc)

    async def reload(self) -> dict[str, Any]:
        """Rules, allow-list and policies anew; refuses what a start would refuse,
        applies driver options, and names the changes that wait for a restart."""
        async with self._reloading:
            return await self._reload()

    async def _reload(self) -> dict[str, Any]:
        logs.reopen()  # first: a rotated log_file is followed even if the file is broken
        try:
            config = load(self.config_path, self.flags)
            # In a thread: names in the allow-list are resolved, netlink is asked.
            engine = await asyncio.to_thread(Engine.build, config, self.engine)
            backend = self._new_backend(config)
            if backend is not None:  # the driver's options changed: the same driver, anew
                await self.enforcer.replace_backend(backend)
                self.backend = backend
        except Exception as exc:  # a broken file must never stop the daemon
            problems = str(exc).splitlines() or [type(exc).__name__]
            log.error("reload failed, the previous configuration stays in force "
                      "(%d problem%s):", len(problems), "" if len(problems) == 1 else "s")
            for problem in problems:  # a log line each: the journal and grep see them all
                log.error("reload failed: %s", problem)
            # one line each: the verdict, then every problem (file: key: reason)
            return {"ok": False, "error": f"reload failed, previous configuration kept:\n{exc}"}
        waiting = restart_needed(self.started_with, config)
        if config.log_file != self.engine.config.log_file:
            logs.setup(config.log_level, config.log_file)
        self.engine = engine
        self.decisions.reconfigure(engine.blocker_config())
        self.remotes.reconfigure(config)
        self.enforcer.batch_delay = config.batch_delay
        logging.getLogger().setLevel(config.log_level)
        try:  # an admin's `nft flush ruleset` is repaired here, not at the next check
            await self.enforcer.sync()
        except BackendError as exc:
            log.error("reloaded, but the firewall refused to be set up (the next firewall "
                      "check retries): %s", exc)
            return {"ok": False, "error": "reloaded, but the firewall refused to be set up "
                    f"(the next firewall check retries): {exc}"}
        log.info("reloaded: %d signatures, %d allow-list entries%s",
                 len(engine.signatures), len(engine.allow),
                 f"; at the next start only: {', '.join(waiting)}" if waiting else "")
        return {"ok": True, "signatures": len(engine.signatures), "restart_needed": waiting,
                "backend_options_applied": backend is not None}

    def _new_backend(self, config: Config) -> Backend | None:
        """A driver with the new options when only they changed (nftables' ports,
        say); None when they did not, or when a restart must change the driver."""
        old = self.engine.config
        if config.dry_run or self.started_with.dry_run \
                or config.backend != self.started_with.backend \
                or config.backend_options == old.backend_options:
            return None
        return create(config.backend, **config.backend_options)

    def status(self) -> dict[str, Any]:
        return status.render(self.engine, self.decisions, self.enforcer, self.inputs,
                             self.remotes.status(), self.started, time.time())


NO_INPUT = ("run: no input: give --stdin, --omprog or --listen (or `listen` in the "
            "configuration); a daemon that reads no log takes its blocks only from the "
            "fleet or CrowdSec, so it needs [fleet] or [crowdsec]")


def run(config_path: str | None, flags: Any) -> int:
    """`syslogban run`: configure logging, then run the daemon until it stops."""
    config = load(config_path, flags)
    if not (config.listen or config.stdin or config.omprog
            or config.fleet.enabled or config.crowdsec.enabled):
        raise ConfigError(NO_INPUT)
    logs.setup(config.log_level, config.log_file)
    daemon = Daemon(config, config_path, flags)
    heap.settle()
    return asyncio.run(daemon.run())
