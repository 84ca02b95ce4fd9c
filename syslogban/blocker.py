"""The blocker: attacks and the time in, block decisions out.

Rules of this file:
* Pure: the time is an argument, nothing is read or written. The daemon
  persists what it returns; `check --replay` runs it over a log's own times.
* The policy is a handful of numbers (Policy), not code paths.

Theory of operation (sshguard's model): each attack adds its danger to the
address's score; attacks older than the detection window fall out of it. A
score at or over the threshold blocks the address for block_time, multiplied
by `multiplier` for every earlier block of the same address and capped at
max_block_time. A block starts a fresh score. Attacks that arrive while the
address is blocked (connections already open) are counted but do not block
again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .matcher import Attack


@dataclass(frozen=True, slots=True)
class Policy:
    threshold: int = 30
    window: float = 1800.0
    block_time: float = 120.0
    multiplier: float = 2.0
    max_block_time: float = 86400.0

    def duration(self, earlier_blocks: int) -> float:
        return min(self.block_time * self.multiplier ** earlier_blocks, self.max_block_time)


@dataclass(frozen=True, slots=True)
class Block:
    address: str
    since: float
    until: float
    score: int
    signatures: tuple[str, ...]  # behind the score, first seen first
    nth: int                     # 1 for the address's first block


@dataclass(slots=True)
class _Offender:
    events: deque[tuple[float, int, str]] = field(default_factory=deque)
    blocks: int = 0
    blocked_until: float = float("-inf")


class Blocker:
    __slots__ = ("policy", "_offenders")

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self._offenders: dict[str, _Offender] = {}

    def observe(self, attack: Attack, now: float) -> Block | None:
        offender = self._offenders.get(attack.address)
        if offender is None:
            offender = self._offenders[attack.address] = _Offender()
        if now < offender.blocked_until:
            return None
        events = offender.events
        horizon = now - self.policy.window
        while events and events[0][0] <= horizon:
            events.popleft()
        events.append((now, attack.danger, attack.signature))
        score = sum(danger for _, danger, _ in events)
        if score < self.policy.threshold:
            return None
        until = now + self.policy.duration(offender.blocks)
        offender.blocks += 1
        offender.blocked_until = until
        signatures = tuple(dict.fromkeys(sig for _, _, sig in events))
        events.clear()
        return Block(attack.address, now, until, score, signatures, offender.blocks)
