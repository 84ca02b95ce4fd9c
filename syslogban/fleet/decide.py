"""The fleet-wide decision: the fleet's events for an address in, a block out.

Rules of this file:
* Pure, and not a second scoring: the blocker (blocker.py) decides, over the
  events of every host, at their own times, from the fleet's history of the
  address (earlier blocks for escalation, lifetime danger for the blacklist).
  store.py fetches the events and writes the decision; nothing here knows SQL.
* Only events after the address's last decision (a block or an unblock)
  count: a block starts a fresh score, fleet-wide as on one host.
* A block already over when the events arrive (an outbox replayed after an
  outage) is no decision: the hosts that saw those attacks blocked them then.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from ..blocker import Block, Blocker, BlockerConfig, History
from ..matcher import Attack


@dataclass(frozen=True, slots=True)
class Event:
    host: str
    seq: int
    address: str
    signature: str
    service: str
    danger: int
    at: float


def decide(config: BlockerConfig, address: str, events: Iterable[Event], history: History,
           now: float) -> Block | None:
    """The block the fleet's events for `address` cause now, if any."""
    blocker = Blocker(config)
    blocker.restore((), {address: History(history.blocks, history.lifetime)})
    block = None
    for event in sorted(events, key=lambda e: (e.at, e.host, e.seq)):
        found = blocker.observe(Attack(event.address, event.signature, event.service,
                                       event.danger), event.at)
        block = found or block
    if block is None or block.until <= now:
        return None
    return block


def evidence(events: Iterable[Event], limit: int = 20) -> list[str]:
    """What `why` shows on every host: which host saw what, when (the last ones)."""
    ordered = sorted(events, key=lambda e: (e.at, e.host, e.seq))[-limit:]
    return [f"{datetime.fromtimestamp(e.at, timezone.utc).isoformat(timespec='seconds')} "
            f"{e.host}: {e.signature} (danger {e.danger})" for e in ordered]
