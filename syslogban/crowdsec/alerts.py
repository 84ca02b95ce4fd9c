"""CrowdSec alerts: one of this host's blocks in, the body of POST /v1/alerts out.

Rules of this file:
* Pure: the block, its evidence count and the time in, a JSON value out.
* One alert per block, carrying its one decision: a `ban` of scope Ip (or
  Range for a prefix), origin "syslogban", scenario "syslogban/<signature>",
  for the time the block has left when the alert leaves. The LAPI then
  serves it to every bouncer, and `cscli decisions list` shows it.
* No log text leaves the host: evidence lines hold user names and the like.
  The alert says how many there were, the score and the signatures.
* A block already over when its alert could leave makes no alert: a
  decision that has ended would be an expired ban, or, without a decision,
  the LAPI's profiles would decide one of their own.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..blocker import Block
from ..display import block_said

ORIGIN = "syslogban"
FOREVER = 10 * 365 * 86400  # what a permanent block asks for (a Go duration has a limit)


def scenario(block: Block) -> str:
    """syslogban/<signature> for a block by score, else syslogban/<reason>."""
    if block.reason in ("score", "blacklist") and block.signatures:
        return f"{ORIGIN}/{block.signatures[0]}"
    return f"{ORIGIN}/{block.reason}"


def scope(target: str) -> str:
    return "Range" if "/" in target else "Ip"


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def alert(block: Block, evidence: int, now: float) -> dict[str, Any] | None:
    """The alert for `block` at time `now`, or None when the block is over."""
    left = FOREVER if block.permanent else math.floor(block.until - now)
    if left < 1:
        return None
    name = scenario(block)
    kind = scope(block.target)
    message = f"syslogban blocked {block_said(block)}"
    source: dict[str, Any] = {"scope": kind, "value": block.target}
    source["range" if kind == "Range" else "ip"] = block.target
    return {
        "scenario": name,
        "scenario_hash": "",
        "scenario_version": __version__,
        "message": message,
        "events_count": max(evidence, 1),
        "start_at": rfc3339(block.since),
        "stop_at": rfc3339(now),
        "capacity": 0,
        "leakspeed": "0",
        "simulated": False,
        "remediation": True,
        "events": [],
        "source": source,
        "decisions": [{"origin": ORIGIN, "type": "ban", "scope": kind, "value": block.target,
                       "duration": f"{left}s", "scenario": name}],
    }
