"""Remotes: the remote parts the configuration names, as one room of the daemon.

Rules of this file:
* It builds the parts (the fleet when [fleet] names a database, the CrowdSec
  bridge when [crowdsec] names a LAPI; more parts add a line to `parts`), starts and stops them, and hands them
  this host's events: attacks, the blocks the firewall holds, an admin's
  unblocks. With no part configured every call does nothing (the null case
  needs no object).
* What a part delivers goes through adopt.py (the local allow-list and the
  bounds of bounds.py, whoever sends) into the decisions, then to the
  enforcer like any block: committed, applied, shown by `list` and `why`.
  Refusals are logged here, once each, and counted by the gate.
* Only this host's own blocks (origin "") leave as events: a block that came
  from a remote part never goes back out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .adopt import adopt
from .attempts import Counted
from .blocker import Block
from .bounds import Bounds, Gate
from .config import Config
from .decisions import Decisions
from .enforcer import Enforcer
from .matcher import Attack
from .remote import Deliver, Remote, RemoteDecision

log = logging.getLogger("syslogban")


def parts(config: Config, decisions: Decisions) -> list[Remote]:
    """The remote parts this configuration asks for (a dry run keeps no outbox)."""
    found: list[Remote] = []
    if config.fleet.enabled:
        from .fleet.link import Fleet  # only when used: psycopg is not imported otherwise
        found.append(Fleet(config.fleet, ":memory:" if config.dry_run else config.state,
                           lambda: decisions.blocker.config))  # a reload replaces the blocker
    if config.crowdsec.enabled:
        from .crowdsec.bridge import CrowdSecBridge  # only when used: no cost otherwise
        found.append(CrowdSecBridge(config.crowdsec, None if config.dry_run else config.state))
    return found


class Remotes:
    def __init__(self, config: Config, decisions: Decisions, enforcer: Enforcer) -> None:
        self.decisions = decisions
        self.enforcer = enforcer
        self.parts = parts(config, decisions)
        self.gate = self._gate(config)

    def _gate(self, config: Config) -> Gate:
        blocker = self.decisions.blocker.config
        bounds = Bounds.for_aggregation(blocker.aggregation, config.fleet.max_duration,
                                        config.fleet.rate)
        return Gate(bounds, blocker.allow)

    def reconfigure(self, config: Config) -> None:
        """A reload: the new allow-list and bounds, the same counters."""
        counters = self.gate.counters
        self.gate = self._gate(config)
        self.gate.counters = counters

    async def start(self) -> None:
        for part in self.parts:
            await part.start(self._deliverer(part.name))

    async def stop(self) -> None:
        for part in self.parts:
            await part.stop()

    def _deliverer(self, name: str) -> Deliver:
        def deliver(decisions: Sequence[RemoteDecision], complete: bool) -> None:
            adopted = adopt(self.decisions.blocker, self.gate, name, decisions, complete,
                            time.time())
            for refusal in adopted.refusals:
                log.warning("refused a decision from %s", refusal)
            for block, evidence in adopted.blocks:
                self.enforcer.queue(block, evidence)
            for block in adopted.unblocks:
                log.info("%s lifted the block of %s", name, block.target)
                self.enforcer.lift(block)
        return deliver

    # ------------------------------------------------------ this host's events

    def attacked(self, attack: Attack, counted: Counted, now: float) -> None:
        if self.parts and not self.decisions.blocker.allows(attack.address):
            for part in self.parts:
                part.attacked(attack, counted, now)

    def blocked(self, block: Block, evidence: Sequence[str]) -> None:
        if not block.origin:
            for part in self.parts:
                part.blocked(block, evidence)

    async def unblocked(self, target: str, now: float) -> list[str]:
        """An admin's unblock, to every part; what each says of it (for the answer)."""
        for part in self.parts:
            part.unblocked(target, now)
        verdicts = await asyncio.gather(*(part.unblock_verdict(target) for part in self.parts))
        return [verdict for verdict in verdicts if verdict]

    def status(self) -> dict[str, Any]:
        if not self.parts:
            return {}
        return {"gate": asdict(self.gate.counters),
                **{part.name: part.status() for part in self.parts}}
