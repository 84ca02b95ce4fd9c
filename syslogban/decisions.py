"""Decisions: detections and an admin's commands in, blocks and unblocks out.

Rules of this file:
* It holds the blocker (the pure policy) and the evidence behind each
  address, and nothing that does I/O: what it decides is handed back to the
  caller, which commits and enforces it (enforcer.py). It never sees the
  state file, the firewall or a socket.
* Evidence is bounded: the last EVIDENCE_LINES lines of the most recent
  EVIDENCE_ADDRESSES addresses, each with the attempt it reports (`why`
  groups them); a block carries a copy of its own. It is bounded in
  characters too: a line keeps its first EVIDENCE_WIDTH, and all lines
  together at most EVIDENCE_CHARACTERS (the least recent addresses go
  first): records of 8 KiB, which any local user can write, made the
  bound by count alone 5 GiB.
* The blocker scores attempts, not lines (attempts.py): a line adds what its
  detection counted.
* A reload replaces the blocker with one of the new policy: active blocks,
  offender history, counters and the scores in the window carry over.

A second source of decisions (another host, a bridge) adds its blocks here
too, after the local bounds (bounds.py), so that `list`, `why`, expiry and the
firewall check know them like the blocker's own.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import NamedTuple

from .blocker import Block, Blocker, BlockerConfig, normal_target
from .display import because
from .durations import PERMANENT, format_duration, parse_duration
from .pipeline import Detection


class Evidence(NamedTuple):
    """One line behind an address's score, and the attempt it reports."""

    attempt: int  # the attempt's reference (its first line), see attempts.py
    service: str
    message: str

EVIDENCE_LINES = 10         # kept per address, shown by `why` (a few attempts' lines)
_new = tuple.__new__        # _new(Evidence, fields): without its keyword handling
EVIDENCE_ADDRESSES = 65536  # addresses with evidence kept (the most recent)
EVIDENCE_WIDTH = 1024       # characters of a line kept (mail logs' lines are shorter)
EVIDENCE_CHARACTERS = 64 << 20  # of all lines kept together


class Decisions:
    def __init__(self, config: BlockerConfig) -> None:
        self.blocker = Blocker(config)
        self.evidence: OrderedDict[str, tuple[Evidence, ...]] = OrderedDict()
        self._characters = 0  # of the evidence kept

    def decide(self, detection: Detection, now: float) -> tuple[Block, list[str]] | None:
        """Keeps the record as evidence and scores what its attempt adds: a block, or None."""
        attack = detection.attack
        address = attack.address
        message = detection.record.message
        if len(message) > EVIDENCE_WIDTH:
            message = message[:EVIDENCE_WIDTH - 3] + "..."
        line = _new(Evidence, (detection.counted.attempt, attack.service, message))
        evidence = self.evidence
        lines = evidence.get(address)
        if lines is None:  # tuples: one line (most addresses) costs no list
            evidence[address] = (line,)
        else:
            evidence.move_to_end(address)
            if len(lines) >= EVIDENCE_LINES:  # the oldest make way
                gone = len(lines) - EVIDENCE_LINES + 1
                self._characters -= sum(len(e.message) for e in lines[:gone])
                lines = lines[gone:]
            evidence[address] = (*lines, line)
        self._characters += len(message)
        while len(evidence) > EVIDENCE_ADDRESSES or (
                self._characters > EVIDENCE_CHARACTERS and len(evidence) > 1):
            _, forgotten = evidence.popitem(last=False)
            self._characters -= sum(len(e.message) for e in forgotten)
        block = self.blocker.observe(attack, now, detection.counted)
        return None if block is None else (block, [e.message for e in evidence[address]])

    def block(self, target: str, duration: str, now: float,
              replace: bool = False) -> tuple[Block, Block | None]:
        """An admin's block for a duration text ("1h", "permanent"), and the block it
        replaces. A block in force that lasts longer is replaced only on `replace`."""
        seconds = parse_duration(duration)
        until = now + seconds if seconds != PERMANENT else PERMANENT
        current = self.blocker.active.get(normal_target(target))
        if current is not None and current.until <= now:
            current = None
        if current is not None and current.until > until and not replace:
            left = ("for good" if current.permanent else "until " + datetime.fromtimestamp(
                current.until).strftime("%Y-%m-%d %H:%M:%S"))
            why = because(current.reason, current.score, (), current.lifetime, current.origin)
            raise ValueError(f"{current.target} is already blocked {left} (a "
                             f"{format_duration(current.until - current.since)} block: {why}): "
                             f"say --replace to replace it by a block for "
                             f"{format_duration(seconds)}")
        block = self.blocker.block(target, until, now)
        return block, current

    def unblock(self, text: str, now: float) -> Block:
        """An admin's unblock: the target's block, or the prefix block that covers
        it (the answer names it); ValueError says why there is nothing to lift."""
        target = normal_target(text)
        covering = self.blocker.covering(target, now)
        block = self.blocker.unblock(covering.target if covering else target)
        if block is None:
            allowed = "/" not in target and self.blocker.allows(target)
            reason = "it is allow-listed and never blocked" if allowed else "it is not blocked"
            raise ValueError(f"{target}: {reason}")
        return block

    def reconfigure(self, config: BlockerConfig) -> None:
        """A new policy (reload): everything the blocker knew carries over,
        scores in progress included (Blocker.take_over)."""
        fresh = Blocker(config)
        fresh.take_over(self.blocker)
        self.blocker = fresh
