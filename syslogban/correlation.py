"""Correlation: session or queue ids bound to the address of their client.

Rules of this file:
* Pure: the time is an argument; nothing is read or written.
* Memory is bounded: at most `size` bindings, the least recently bound one
  evicted first; a binding older than `ttl` seconds is no longer used. Both
  are counted. Only binding moves an id to the young end, so the state after
  a stretch of log depends on its binding records alone (which is what lets
  `check` rebuild it when it starts in the middle of a file).
* A failure whose id was never bound (or was evicted, or expired) resolves to
  nothing and is counted: an address is never guessed. It is held (at most
  `size` of them, none longer than LATE seconds) in case a later record of
  the same session names the address; that record reports it.

Some daemons name the client on one line and the failure on another
(OpenSMTPD's session ids, Sendmail's queue ids). A binding signature records
id -> address; a resolving signature finds the address by its id. Keys carry
the service and the sending host, so that ids of different services or hosts
never meet. Some name it only after the failure: old sshd writes
"Disconnecting: Too many authentication failures" and then "Connection closed
by ADDR [preauth]" from the same process, Sendmail the envelope's relay= after
the recipients it refused. The binding record then hands back the failures
held for its id, and the matcher reports them on that record.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

Key = tuple[str, str | None, str]  # service, hostname, id

DEFAULT_SIZE = 65536
DEFAULT_TTL = 3600.0
# A held failure waits this long for the record that names its address: the
# same connection's next lines (sshd's close, Sendmail's envelope at the end of
# the transaction), not a recycled process id's.
LATE = 300.0


@dataclass(slots=True)
class Held:
    """Failures of one session that came before any record named its address."""

    signature: str  # the id of the first one's signature
    count: int      # how many lines of that signature
    since: float


@dataclass(slots=True)
class CorrelationCounters:
    bound: int = 0
    resolved: int = 0
    unresolved: int = 0  # an id never seen, evicted or expired (and never named later)
    evicted: int = 0
    expired: int = 0
    late: int = 0        # failures resolved by a record that came after them


@dataclass(slots=True)
class Correlator:
    size: int = DEFAULT_SIZE
    ttl: float = DEFAULT_TTL
    counters: CorrelationCounters = field(default_factory=CorrelationCounters)
    _bindings: OrderedDict[Key, tuple[str, float]] = field(default_factory=OrderedDict)
    _held: OrderedDict[Key, Held] = field(default_factory=OrderedDict)

    def bind(self, key: Key, address: str, now: float) -> Held | None:
        """Binds `key`; returns the failures held for it (now resolved), if any."""
        self._bindings[key] = (address, now)
        self._bindings.move_to_end(key)
        self.counters.bound += 1
        while len(self._bindings) > self.size:
            self._bindings.popitem(last=False)
            self.counters.evicted += 1
        held = self._held.pop(key, None) if self._held else None
        if held is None or now - held.since > LATE:
            return None
        self.counters.unresolved -= held.count
        self.counters.resolved += held.count
        self.counters.late += held.count
        return held

    def hold(self, key: Key, signature: str, now: float) -> None:
        """Keeps an unresolved failure (counted as such) for a later binding of `key`."""
        held = self._held.get(key)
        if held is None or now - held.since > LATE:
            self._held[key] = Held(signature, 1, now)
            self._held.move_to_end(key)
            while len(self._held) > self.size:
                self._held.popitem(last=False)
        elif held.signature == signature:
            held.count += 1

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
        """Takes the bindings and held failures of an earlier stretch of log as if
        seen before ours: a failure held there that our stretch binds was
        resolved by that binding, one held here whose key was bound there was
        never held."""
        mine = self._bindings
        self._bindings = OrderedDict(earlier._bindings)
        for key, value in mine.items():
            self._bindings[key] = value
            self._bindings.move_to_end(key)
        while len(self._bindings) > self.size:
            self._bindings.popitem(last=False)
        held = OrderedDict((k, h) for k, h in earlier._held.items() if k not in mine)
        for key, value in self._held.items():
            if key not in earlier._bindings:
                held[key] = value
                held.move_to_end(key)
        while len(held) > self.size:
            held.popitem(last=False)
        self._held = held
