"""The daemon: one asyncio loop from record bytes to firewall changes.

Rules of this file:
* It wires the pure core (pipeline, blocker) to the shell (sources, state,
  backend, control, notifications) and owns the order of side effects:
  a decision is committed to the state, then applied to the firewall in a
  batch, and only then reported (logged, notified). A batch the firewall
  refuses is retried with back-off; the state already holds it, so a
  restart in between still applies it.
* It never reads its own log back: records of the program "syslogban" are
  ignored, and it logs to stderr or a file, never to syslog.
* Reload (SIGHUP or `syslogban reload`) builds the new rules and allow-list
  first and swaps them in only when all of it loaded: a broken file leaves
  the old configuration in force.

Blocks outlive the daemon: stopping keeps them in the firewall unless
flush_on_exit is set, and a restart restores the active ones from the state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import __version__
from .backends import Backend, create
from .blocker import Block, normal_target
from .config import Config, load
from .control import ControlServer
from .decisions import Decisions
from .durations import format_duration
from .enforcer import Enforcer
from .engine import Engine
from .inputs import Inputs
from .notify import Notifier, NotifyConfig
from .pipeline import Detection
from .privileges import capabilities, drop_to
from .state import State

log = logging.getLogger("syslogban")

PRUNE_EVERY = 60.0


class Daemon:
    def __init__(self, config: Config, config_path: str | None = None, flags: Any = None) -> None:
        self.config_path = config_path  # what `reload` reads again
        self.flags = flags
        self.engine = Engine.build(config)
        self.decisions = Decisions(self.engine.blocker_config())
        self.state = State(":memory:" if config.dry_run else config.state, config.state_durable)
        self.backend: Backend = (create("null") if config.dry_run
                                 else create(config.backend, **config.backend_options))
        self.started = time.time()
        self.enforcer = Enforcer(self.decisions, self.state, self.backend, config.batch_delay,
                                 self._blocked)
        self.stopping = asyncio.Event()
        self.control: ControlServer | None = None
        self.inputs = Inputs(config, self._detect, self._detect_record, self.enforcer.commit)
        self.notifier = self._notifier(config)
        self.notifications: set[asyncio.Task[None]] = set()

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
        log.info("syslogban %s: %d signatures, backend %s, %d blocks restored, "
                 "%d ended while stopped", __version__, len(self.engine.signatures),
                 self.backend.name, len(active), len(ended))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        if config.control:
            self.control = ControlServer(config.control, self.handle, config.control_group)
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
        log.info("running as %s with capabilities %s", config.user,
                 {k: hex(v) for k, v in capabilities().items()})

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
        decided = self.decisions.decide(detection, now)
        if decided is not None:
            self.enforcer.queue(*decided)

    def _blocked(self, block: Block, evidence: list[str]) -> None:
        """A block the firewall holds: notified in a task of its own (a slow mail
        server must not hold the loop)."""
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
                self._write_metrics()

    # ------------------------------------------------------------ reloading

    async def reload(self) -> dict[str, Any]:
        try:
            config = load(self.config_path, self.flags)
            # In a thread: names in the allow-list are resolved, netlink is asked.
            engine = await asyncio.to_thread(Engine.build, config, self.engine)
        except Exception as exc:  # a broken file must never stop the daemon
            log.error("reload failed, the previous configuration stays in force: %s", exc)
            return {"ok": False, "error": f"reload failed, previous configuration kept: {exc}"}
        self.engine = engine
        self.decisions.reconfigure(engine.blocker_config())
        self.enforcer.batch_delay = config.batch_delay
        await self.enforcer.sync()
        log.info("reloaded: %d signatures, %d allow-list entries",
                 len(engine.signatures), len(engine.allow))
        return {"ok": True, "signatures": len(engine.signatures)}

    # -------------------------------------------------------------- control

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request["command"]
        try:
            if command == "status":
                return {"ok": True, **self.status()}
            if command == "list":
                return {"ok": True, "blocks": [self._block_json(b) for b in
                                               sorted(self.decisions.blocker.active.values(),
                                                      key=lambda b: b.since)]}
            if command == "block":
                return await self._manual_block(request)
            if command == "unblock":
                return await self._manual_unblock(request)
            if command == "reload":
                return await self.reload()
            if command == "why":
                return {"ok": True, **self.why(str(request.get("target", "")))}
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": False, "error": f"unknown command {command!r}"[:100]}

    async def _manual_block(self, request: dict[str, Any]) -> dict[str, Any]:
        block = self.decisions.block(str(request.get("target", "")),
                                     request.get("for", "permanent"), time.time())
        self.enforcer.queue(block, ["manual block over the control socket"])
        await self.enforcer.flush()
        return {"ok": True, "block": self._block_json(block)}

    async def _manual_unblock(self, request: dict[str, Any]) -> dict[str, Any]:
        block = self.decisions.unblock(str(request.get("target", "")))
        self.enforcer.lift(block)
        await self.enforcer.flush()
        return {"ok": True, "unblocked": block.target}

    def why(self, text: str) -> dict[str, Any]:
        target = normal_target(text)
        block = self.decisions.blocker.active.get(target)
        history = self.decisions.blocker.history.get(target)
        evidence = list(self.decisions.evidence.get(target, ())) or self.state.evidence(target)
        if block is None and history is None and not evidence:
            raise ValueError(f"{target}: nothing known about it")
        return {"target": target, "allowed": "/" not in target and self.decisions.blocker.allows(target),
                "block": self._block_json(block) if block else None,
                "history": asdict(history) if history else None, "evidence": evidence}

    @staticmethod
    def _block_json(block: Block) -> dict[str, Any]:
        data = asdict(block)
        data["until"] = None if block.permanent else block.until
        data["duration"] = format_duration(block.until - block.since)
        return data

    def status(self) -> dict[str, Any]:
        c = self.engine.pipeline.counters
        matcher = self.engine.pipeline.matcher
        return {
            "version": __version__,
            "uptime": round(time.time() - self.started),
            "config": self.engine.config.effective(),
            "backend": self.backend.name,
            "signatures": len(self.engine.signatures),
            "rule_files": sorted({s.source for s in self.engine.signatures}),
            "allow": self.engine.allow,
            "counters": {
                "records_read": c.lines, "records_parsed": c.parsed,
                "records_rejected": dict(c.rejected), "records_filtered": c.filtered,
                "attacks": dict(c.attacks), "invalid_addresses": matcher.invalid_addresses,
                "sessions": asdict(matcher.correlator.counters),
                "blocker": asdict(self.decisions.blocker.counters),
                "blocks_active": len(self.decisions.blocker.active),
                "inputs": asdict(self.inputs.counters),
                "addresses_tracked": self.decisions.blocker.tracked(),
                **asdict(self.enforcer.counters),
            },
        }

    # -------------------------------------------------------------- metrics

    def _write_metrics(self) -> None:
        """node_exporter textfile format, written atomically (rename)."""
        status = self.status()["counters"]
        lines = []

        def metric(name: str, value: float, help_text: str, labels: str = "") -> None:
            if not any(line.startswith(f"# HELP syslogban_{name} ") for line in lines):
                lines.append(f"# HELP syslogban_{name} {help_text}")
                lines.append(f"# TYPE syslogban_{name} "
                             f"{'gauge' if name.endswith(('active', 'tracked')) else 'counter'}")
            lines.append(f"syslogban_{name}{labels} {value}")

        metric("records_read_total", status["records_read"], "Records read.")
        for reason, count in status["records_rejected"].items():
            metric("records_rejected_total", count, "Records rejected.", f'{{reason="{reason}"}}')
        for sig, count in status["attacks"].items():
            metric("attacks_total", count, "Attacks detected.", f'{{signature="{sig}"}}')
        metric("blocks_total", status["blocker"]["blocks"], "Blocks decided.")
        metric("blocks_active", status["blocks_active"], "Blocks in force.")
        metric("addresses_tracked", status["addresses_tracked"], "Addresses with a score.")
        metric("backend_errors_total", status["backend_errors"], "Failed firewall updates.")
        path = self.engine.config.metrics_file
        directory = os.path.dirname(path) or "."
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(f.name, path)


def run(config_path: str | None, flags: Any) -> int:
    """`syslogban run`: configure logging, then run the daemon until it stops."""
    config = load(config_path, flags)
    handler: logging.Handler = (logging.FileHandler(config.log_file) if config.log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=config.log_level, handlers=[handler], force=True)
    return asyncio.run(Daemon(config, config_path, flags).run())
