"""Status: what `syslogban status` shows and the metrics file counts.

Rules of this file:
* It reads the rooms and renders one JSON-able dictionary; it changes
  nothing and does no I/O (the metrics file is metrics.py's, the socket is
  control.py's).
* Every counter a room keeps appears here, under the name the admin sees in
  `syslogban status --json`; renaming one breaks scripts and dashboards.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from . import __version__
from .decisions import Decisions
from .enforcer import Enforcer
from .engine import Engine
from .inputs import Inputs


def render(engine: Engine, decisions: Decisions, enforcer: Enforcer, inputs: Inputs,
           remote: dict[str, Any], started: float, now: float) -> dict[str, Any]:
    c = engine.pipeline.counters
    matcher = engine.pipeline.matcher
    blocker = decisions.blocker
    return {
        "version": __version__,
        "uptime": round(now - started),
        "config": engine.config.effective(),
        "backend": enforcer.backend.name,
        "signatures": len(engine.signatures),
        "rule_files": sorted({s.source for s in engine.signatures}),
        "allow": engine.allow,
        "counters": {
            "records_read": c.lines, "records_parsed": c.parsed,
            "records_rejected": dict(c.rejected), "records_filtered": c.filtered,
            "records_untagged": c.untagged, "untagged_sample": c.untagged_sample,
            "attacks": dict(c.attacks), "invalid_addresses": matcher.invalid_addresses,
            "sessions": asdict(matcher.correlator.counters),
            "attempts": asdict(engine.pipeline.accountant.counters),
            "blocker": asdict(blocker.counters),
            "blocks_active": len(blocker.active),
            "restore_skipped": enforcer.state.skipped,
            "inputs": asdict(inputs.counters),
            "addresses_tracked": blocker.tracked(),
            **asdict(enforcer.counters),
        },
        "remote": remote,  # the bounds' counters and each remote part's (empty: none)
    }
