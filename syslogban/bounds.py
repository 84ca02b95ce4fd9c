"""Bounds on remote decisions: what this host takes from the fleet or CrowdSec.

Rules of this file:
* Pure: a decision and the time in, the decision to enforce (or the reason
  it is refused) out. The daemon logs the refusals; the counters say how many.
* The host's own allow-list always wins: a remote block that touches an
  allow-listed address or network is refused, whoever sent it.
* A remote block is no wider than what this host would block itself (its
  aggregation), no longer than max_duration (longer ones, permanent ones
  included, are shortened to it) and no more frequent than `rate`: a
  compromised database or API cannot cut a host off from its users.
* Revocations only lift blocks; they always pass.
* The numbers a remote part writes are bounded too (a peer's database may
  hold any bigint, any timestamp): its count of blocks at MAX_NTH, its score
  and lifetime danger at MAX_DANGER (the highest blacklist a configuration
  may name), its start no later than now and no earlier than the longest
  block allows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .address import unblockable
from .blocker import Aggregation, Network, normal_target
from .durations import MAX_DURATION
from .remote import RemoteDecision


MAX_NTH = 1000           # escalation stops doubling after 64 blocks anyway
MAX_DANGER = 10**9       # the highest blacklist threshold (config.py)


@dataclass(frozen=True, slots=True)
class Bounds:
    widest_ipv4: int = 32        # shortest prefix length taken (IPv4)
    widest_ipv6: int = 128
    max_duration: float = 86400.0
    rate: float = 200.0          # new remote blocks a second, in bursts of a minute's worth

    @classmethod
    def for_aggregation(cls, aggregation: Aggregation, max_duration: float,
                        rate: float) -> Bounds:
        """As wide as this host's own blocks may be: its aggregation, or its
        adaptive prefixes when those are on."""
        ipv4, ipv6 = aggregation.ipv4, aggregation.ipv6
        if aggregation.adaptive:
            ipv4, ipv6 = min(ipv4, aggregation.adaptive_ipv4), min(ipv6, aggregation.adaptive_ipv6)
        return cls(ipv4, ipv6, max_duration, rate)


@dataclass(slots=True)
class GateCounters:
    admitted: int = 0
    revocations: int = 0
    shortened: int = 0      # admitted with a duration cut to max_duration
    allow_listed: int = 0   # refused: the local allow-list wins
    too_wide: int = 0
    rate_limited: int = 0
    expired: int = 0        # already over when it arrived
    invalid: int = 0        # not an address or prefix


@dataclass(frozen=True, slots=True)
class Admission:
    decision: RemoteDecision | None  # what to enforce; None: refused
    refusal: str = ""                # why, in words for the log


class Gate:
    def __init__(self, bounds: Bounds, allow: Iterable[Network]) -> None:
        self.bounds = bounds
        self.allow = tuple(allow)
        self.counters = GateCounters()
        self._tokens = bounds.rate * 60
        self._last: float | None = None

    def admit(self, decision: RemoteDecision, now: float) -> Admission:
        try:
            target = normal_target(decision.target)
        except ValueError as exc:
            self.counters.invalid += 1
            return Admission(None, str(exc))
        if decision.revoked:
            self.counters.revocations += 1
            return Admission(replace(decision, target=target))
        network = ipaddress.ip_network(target)
        if any(network.overlaps(allowed) for allowed in self.allow):
            self.counters.allow_listed += 1
            return Admission(None, f"{target} is allow-listed here: the local allow-list wins")
        never = unblockable(network)
        if never:
            self.counters.invalid += 1
            return Admission(None, f"{target} {never}")
        widest = self.bounds.widest_ipv4 if network.version == 4 else self.bounds.widest_ipv6
        if network.prefixlen < widest:
            self.counters.too_wide += 1
            return Admission(None, f"{target} is wider than /{widest}, the widest block "
                                   "this host makes itself")
        if not decision.until > now:  # NaN too: no end is no block
            self.counters.expired += 1
            return Admission(None, f"{target}: the block is already over")
        if not self._take(now):
            self.counters.rate_limited += 1
            return Admission(None, f"{target}: more than {self.bounds.rate:g} remote blocks "
                                   "a second; refused until the rate falls")
        until = min(decision.until, now + self.bounds.max_duration)
        if until < decision.until:
            self.counters.shortened += 1
        self.counters.admitted += 1
        since = decision.since if now - MAX_DURATION <= decision.since <= now else now
        return Admission(replace(decision, target=target, until=until, since=since,
                                 nth=min(max(decision.nth, 1), MAX_NTH),
                                 score=min(max(decision.score, 0), MAX_DANGER),
                                 lifetime=min(max(decision.lifetime, 0), MAX_DANGER)))

    def _take(self, now: float) -> bool:
        """A token bucket: `rate` a second, holding at most a minute's worth."""
        capacity = self.bounds.rate * 60
        if self._last is not None:
            self._tokens = min(capacity, self._tokens + (now - self._last) * self.bounds.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
