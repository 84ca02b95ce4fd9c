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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from ..attempts import Counted
from ..blocker import Block, Blocker, BlockerConfig, History
from ..matcher import Attack


@dataclass(frozen=True, slots=True)
class Event:
    host: str
    seq: int
    address: str
    signature: str
    service: str
    danger: int    # what it adds to the score
    at: float
    attempts: int = 1  # the failed logins it adds (0: it raised an attempt's danger)


def decide(config: BlockerConfig, events: Iterable[Event], history: Mapping[str, History],
           now: float) -> dict[str, Block]:
    """The blocks the fleet's events cause now, by address (or prefix).

    One blocker for a whole batch of addresses: the events of each go in at
    their own times, and addresses that share nothing decide apart, as on one
    host; only blocks still in force now are returned."""
    blocker = Blocker(config)
    blocker.restore((), {key: History(h.blocks, h.lifetime) for key, h in history.items()})
    found: dict[str, Block] = {}
    for event in sorted(events, key=lambda e: (e.at, e.host, e.seq)):
        block = blocker.observe(Attack(event.address, event.signature, event.service,
                                       event.danger), event.at,
                                Counted(0, event.attempts, event.danger))
        if block is not None:
            found[block.target] = block
    return {target: block for target, block in found.items() if block.until > now}


def evidence(events: Iterable[Event], limit: int = 20) -> list[str]:
    """What `why` shows on every host: which host saw what, when (the last ones)."""
    ordered = sorted(events, key=lambda e: (e.at, e.host, e.seq))[-limit:]
    return [f"{datetime.fromtimestamp(e.at, timezone.utc).isoformat(timespec='seconds')} "
            f"{e.host}: {e.signature} (danger {e.danger})" for e in ordered]
