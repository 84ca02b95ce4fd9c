"""Correlation: session or queue ids bound to the address of their client.

Rules of this file:
* Pure: the time is an argument; nothing is read or written.
* Memory is bounded: at most `size` bindings, the least recently bound one
  evicted first; a binding older than `ttl` seconds is no longer used. Both
  are counted. Only binding moves an id to the young end, so the state after
  a stretch of log depends on its binding records alone (which is what lets
  `check` rebuild it when it starts in the middle of a file).
* A failure whose id was never bound (or was evicted, or expired) resolves to
  nothing and is counted: an address is never guessed.

Some daemons name the client on one line and the failure on another
(OpenSMTPD's session ids, Sendmail's queue ids). A binding signature records
id -> address; a resolving signature finds the address by its id. Keys carry
the service and the sending host, so that ids of different services or hosts
never meet.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

Key = tuple[str, str | None, str]  # service, hostname, id

DEFAULT_SIZE = 65536
DEFAULT_TTL = 3600.0


@dataclass(slots=True)
class CorrelationCounters:
    bound: int = 0
    resolved: int = 0
    unresolved: int = 0  # an id never seen, evicted or expired
    evicted: int = 0
    expired: int = 0


@dataclass(slots=True)
class Correlator:
    size: int = DEFAULT_SIZE
    ttl: float = DEFAULT_TTL
    counters: CorrelationCounters = field(default_factory=CorrelationCounters)
    _bindings: OrderedDict[Key, tuple[str, float]] = field(default_factory=OrderedDict)

    def bind(self, key: Key, address: str, now: float) -> None:
        self._bindings[key] = (address, now)
        self._bindings.move_to_end(key)
        self.counters.bound += 1
        while len(self._bindings) > self.size:
            self._bindings.popitem(last=False)
            self.counters.evicted += 1

    def resolve(self, key: Key, now: float) -> str | None:
        found = self._bindings.get(key)
        if found is not None and now - found[1] > self.ttl:
            self.counters.expired += 1
            found = None
        if found is None:
            self.counters.unresolved += 1
            return None
        self.counters.resolved += 1
        return found[0]

    def __len__(self) -> int:
        return len(self._bindings)

    def addresses(self) -> list[str]:
        """The bound addresses, least recently bound first (for examples and tests)."""
        return [address for address, _ in self._bindings.values()]

    def absorb(self, earlier: Correlator) -> None:
        """Takes the bindings of an earlier stretch of log as if bound before ours."""
        mine = self._bindings
        self._bindings = OrderedDict(earlier._bindings)
        for key, value in mine.items():
            self._bindings[key] = value
            self._bindings.move_to_end(key)
        while len(self._bindings) > self.size:
            self._bindings.popitem(last=False)
