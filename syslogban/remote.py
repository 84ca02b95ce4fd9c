"""Remote parts: other places that share attacks and decisions with this host.

Rules of this file:
* It is the interface between the daemon and a remote part (the fleet on
  PostgreSQL, the CrowdSec bridge): events up, decisions down. A remote part
  never touches the blocker, the state or the firewall; it hands decisions to
  the daemon, which admits them through the local bounds (bounds.py) and then
  enforces them like its own.
* Sending never waits: `attacked`, `blocked` and `unblocked` hand their value
  over and return. Delivery, retries and the outbox are the part's business;
  the database or API being away must never slow local blocking.
* NullRemote is the part when none is configured (OpenSMTPD's queue_null):
  the daemon calls the interface unconditionally.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .attempts import Counted
from .blocker import Block
from .durations import PERMANENT
from .matcher import Attack


@dataclass(frozen=True, slots=True)
class RemoteDecision:
    """A block (or its end) decided elsewhere, as a remote part reports it."""

    target: str                       # an address or a prefix, as the remote wrote it
    since: float
    until: float                      # PERMANENT for good (bounds.py caps it)
    origin: str                       # who decided: "fleet:mx1", "crowdsec:cscli"
    reason: str = "remote"
    revoked: bool = False             # True: the block was lifted there; lift it here
    score: int = 0
    signatures: tuple[str, ...] = ()
    nth: int = 1                      # the target's how-many-th block, over the remote's history
    lifetime: int = 0                 # the target's danger over the remote's history
    evidence: tuple[str, ...] = ()    # lines the remote shows for it (`why`)

    @property
    def permanent(self) -> bool:
        return self.until == PERMANENT


# deliver(decisions, complete): complete=True when they are all the remote's
# blocks in force (a full sync, after a start or a reconnect): the daemon then
# lifts its blocks of that origin that are not among them.
Deliver = Callable[[Sequence[RemoteDecision], bool], None]


class Remote(ABC):
    """One remote part. The daemon calls `start` once, then the event methods
    from its loop, then `stop`."""

    name: str = "?"

    @abstractmethod
    async def start(self, deliver: Deliver) -> None:
        """Begins receiving; decisions go to `deliver`, called from the loop.
        Their origin starts with the part's name and a colon ("fleet:mx1").

        Must return promptly even when the remote is unreachable (it then
        keeps trying in the background)."""

    def attacked(self, attack: Attack, counted: Counted, now: float) -> None:
        """An attack this host saw and what it adds (attempts.py: a line that only
        reports an attempt already counted adds nothing); allow-listed
        addresses never reach here."""

    def blocked(self, block: Block, evidence: Sequence[str]) -> None:
        """A block this host decided (by score, by an admin, ...)."""

    def unblocked(self, target: str, now: float) -> None:
        """An admin lifted a block on this host."""

    async def unblock_verdict(self, target: str) -> str | None:
        """After `unblocked`: one line for the admin's answer, saying what became
        of the unblock here (lifted everywhere, refused, waiting), or None.
        Returns within a few seconds whatever the remote does."""
        return None

    def status(self) -> dict[str, Any]:
        """Counters and connection state for `syslogban status`."""
        return {}

    @abstractmethod
    async def stop(self) -> None:
        """Sends what it can within a short time, keeps the rest for next start."""


class NullRemote(Remote):
    """No remote part: every event stays local, no decision ever arrives."""

    name = "null"

    async def start(self, deliver: Deliver) -> None:
        return None

    async def stop(self) -> None:
        return None
