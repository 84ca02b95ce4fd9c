"""Decisions: detections and an admin's commands in, blocks and unblocks out.

Rules of this file:
* It holds the blocker (the pure policy) and the evidence behind each
  address, and nothing that does I/O: what it decides is handed back to the
  caller, which commits and enforces it (enforcer.py). It never sees the
  state file, the firewall or a socket.
* Evidence is bounded: the last EVIDENCE_LINES lines of the most recent
  EVIDENCE_ADDRESSES addresses; a block carries a copy of its own.
* A reload replaces the blocker with one of the new policy: active blocks,
  offender history and counters carry over; scores in the window do not.

A second source of decisions (another host, a bridge) adds its blocks here
too, after the local bounds (bounds.py), so that `list`, `why`, expiry and the
firewall check know them like the blocker's own.
"""

from __future__ import annotations

from collections import OrderedDict

from .blocker import Block, Blocker, BlockerConfig, normal_target
from .durations import PERMANENT, parse_duration
from .pipeline import Detection

EVIDENCE_LINES = 5          # kept per address, shown by `why`
EVIDENCE_ADDRESSES = 65536  # addresses with evidence kept (the most recent)


class Decisions:
    def __init__(self, config: BlockerConfig) -> None:
        self.blocker = Blocker(config)
        self.evidence: OrderedDict[str, list[str]] = OrderedDict()

    def decide(self, detection: Detection, now: float) -> tuple[Block, list[str]] | None:
        """Keeps the record as evidence and scores its attack: a block, or None."""
        address = detection.attack.address
        lines = self.evidence.get(address)
        if lines is None:  # plain lists: a deque costs 600 bytes per address
            lines = self.evidence[address] = []
            if len(self.evidence) > EVIDENCE_ADDRESSES:
                self.evidence.popitem(last=False)
        else:
            self.evidence.move_to_end(address)
            if len(lines) >= EVIDENCE_LINES:
                del lines[0]
        lines.append(detection.record.message)
        block = self.blocker.observe(detection.attack, now)
        return None if block is None else (block, list(lines))

    def block(self, target: str, duration: str, now: float) -> Block:
        """An admin's block for a duration text ("1h", "permanent")."""
        seconds = parse_duration(duration)
        return self.blocker.block(target, now + seconds if seconds != PERMANENT else PERMANENT,
                                  now)

    def unblock(self, text: str) -> Block:
        """An admin's unblock; ValueError says why there is nothing to lift."""
        target = normal_target(text)
        block = self.blocker.unblock(target)
        if block is None:
            allowed = "/" not in target and self.blocker.allows(target)
            reason = "it is allow-listed and never blocked" if allowed else "it is not blocked"
            raise ValueError(f"{target}: {reason}")
        return block

    def reconfigure(self, config: BlockerConfig) -> None:
        """A new policy (reload): active blocks, history and counters carry over."""
        fresh = Blocker(config)
        fresh.restore(self.blocker.active.values(), self.blocker.history)
        fresh.counters = self.blocker.counters
        self.blocker = fresh
