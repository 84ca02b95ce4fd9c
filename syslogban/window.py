"""The window: the attacks the blocker still counts, per scoring key, kept compact.

Rules of this file:
* Pure storage: it keeps each key's events (time, points, attempts, policy
  group, signature) as the blocker hands them over, and forgets what the
  blocker drops or `prune` finds stale. What an event counts for is
  blocker.py's.
* It answers exactly as a dict of lists would: the compact form loses
  nothing (times are kept as floats, other fields only when they fit).

Theory of operation. Most attacking addresses are seen once or twice and then
wait in the window until it forgets them; a distributed brute force brings a
million of them. A dict of lists costs about 230 bytes per address; here a
key with one event, an IPv4 address whose fields fit, takes one slot of an
open-addressing table held in three arrays (16 bytes a slot, at most 2/3
full). Everything else, keys with several events, IPv6 addresses, prefixes,
lives in a plain dict. A key is in one of the two, never both.
"""

from __future__ import annotations

import socket
from array import array
from collections.abc import Iterator

# A free slot, and one whose key was removed (probing goes on past it): the
# addresses 0.0.0.0 and 0.0.0.1 (never blocked anyway) stay out of the table.
_EMPTY, _GONE = 0, 1
_MULTIPLIER = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads neighbouring addresses
_FIELD_LIMITS = (1 << 12, 1 << 4, 1 << 4, 1 << 12)  # points, attempts, group, signature
_SIGNATURE_LIMIT = _FIELD_LIMITS[3]
_PART_BITS = 4
_PART_SHIFT = 64 - _PART_BITS  # a table part's slot bits come from below its own


class Window:
    """A mapping key -> flat event list [t, points, attempts, group, signature, ...]."""

    __slots__ = ("_lists", "_tables", "_signatures", "_signature_ids")

    STRIDE = 5  # fields of one event

    def __init__(self) -> None:
        self._lists: dict[str, list[object]] = {}
        # The table in 16 parts, each grown on its own: growing copies one part,
        # not a table of a million slots next to its successor.
        self._tables = [_Table() for _ in range(1 << _PART_BITS)]
        self._signatures: list[str] = []          # signature ids by number
        self._signature_ids: dict[str, int] = {}

    # ------------------------------------------------------------ the mapping

    def take(self, key: str) -> list[object]:
        """The key's events to work on (a new empty list for a new key); the
        caller hands them back with `put`, or the key is forgotten."""
        events = self._lists.pop(key, None)
        if events is not None:
            return events
        number = _number(key)
        if number is not None:
            hashed = _hash(number)
            found = self._tables[hashed >> _PART_SHIFT].remove(number, hashed)
            if found is not None:
                return self._events(*found)
        return []

    def put(self, key: str, events: list[object]) -> None:
        """Keeps the key's events (an empty list forgets the key); after take()."""
        if not events:
            return
        if len(events) == self.STRIDE:
            number = _number(key)
            info = self._pack(events) if number is not None else None
            if info is not None:
                self._lists.pop(key, None)
                hashed = _hash(number)  # type: ignore[arg-type]
                self._tables[hashed >> _PART_SHIFT].add(number, hashed,  # type: ignore[arg-type]
                                                        events[0], info)  # type: ignore[arg-type]
                return
        self._lists[key] = events

    def get(self, key: str) -> list[object] | None:
        """The key's events, read only (None for an unknown key)."""
        events = self._lists.get(key)
        if events is not None:
            return events
        number = _number(key)
        if number is None:
            return None
        hashed = _hash(number)
        found = self._tables[hashed >> _PART_SHIFT].get(number, hashed)
        return None if found is None else self._events(*found)

    def drop(self, key: str) -> None:
        if self._lists.pop(key, None) is None:
            self.take(key)

    def __len__(self) -> int:
        return len(self._lists) + sum(table.used for table in self._tables)

    def items(self) -> Iterator[tuple[str, list[object]]]:
        """Every key and its events, the table's unpacked (a reload carries them)."""
        yield from self._lists.items()
        for table in self._tables:
            for number, stamp, info in table.entries():
                yield socket.inet_ntoa(number.to_bytes(4, "big")), self._events(stamp, info)

    def prune(self, horizon: float) -> int:
        """Forgets the keys whose last event is at or before `horizon`; how many."""
        stale = [key for key, events in self._lists.items()
                 if not events or events[-self.STRIDE] <= horizon]  # type: ignore[operator]
        for key in stale:
            del self._lists[key]
        return len(stale) + sum(table.prune(horizon) for table in self._tables)

    # --------------------------------------------------------- one event's form

    def _events(self, stamp: float, info: int) -> list[object]:
        return [stamp, info >> 20, info >> 16 & 0xF, info >> 12 & 0xF,
                self._signatures[info & 0xFFF]]

    def _pack(self, events: list[object]) -> int | None:
        """One event's points, attempts, group and signature in 32 bits, if they fit."""
        _, points, attempts, group, signature = events
        number = self._signature_ids.get(signature)  # type: ignore[arg-type]
        if number is None:
            if len(self._signatures) >= _SIGNATURE_LIMIT:
                return None
            number = self._signature_ids[signature] = len(self._signatures)  # type: ignore[index]
            self._signatures.append(signature)  # type: ignore[arg-type]
        fields = (points, attempts, group, number)
        if any(not 0 <= f < limit for f, limit in zip(fields, _FIELD_LIMITS)):  # type: ignore[operator]
            return None
        return points << 20 | attempts << 16 | group << 12 | number  # type: ignore[operator]


class _Table:
    """Open addressing with linear probing over three arrays, at most 2/3 full."""

    __slots__ = ("bits", "keys", "times", "infos", "used", "gone")

    def __init__(self) -> None:
        self.keys, self.times, self.infos = array("I"), array("d"), array("I")
        self.used = self.gone = 0
        self._resize(3)

    def _resize(self, bits: int) -> None:
        """2**bits slots holding the live entries of the current ones."""
        keys, times, infos = self.keys, self.times, self.infos
        self.bits = bits
        size = 1 << bits
        self.keys = array("I", [_EMPTY]) * size
        self.times = array("d", [0.0]) * size
        self.infos = array("I", [0]) * size
        self.used = self.gone = 0
        for slot in range(len(keys)):
            if keys[slot] > _GONE:
                self._store(keys[slot], _hash(keys[slot]), times[slot], infos[slot])

    def _find(self, number: int, hashed: int) -> int:
        keys = self.keys
        mask = (1 << self.bits) - 1
        slot = hashed >> (_PART_SHIFT - self.bits) & mask
        while True:
            found = keys[slot]
            if found == number:
                return slot
            if found == _EMPTY:
                return -1
            slot = (slot + 1) & mask

    def get(self, number: int, hashed: int) -> tuple[float, int] | None:
        slot = self._find(number, hashed)
        return None if slot < 0 else (self.times[slot], self.infos[slot])

    def remove(self, number: int, hashed: int) -> tuple[float, int] | None:
        slot = self._find(number, hashed)
        if slot < 0:
            return None
        self.keys[slot] = _GONE
        self.used -= 1
        self.gone += 1
        return self.times[slot], self.infos[slot]

    def add(self, number: int, hashed: int, stamp: float, info: int) -> None:
        """Stores a key that is not in the table (remove() took it, or it is new)."""
        size = 1 << self.bits
        if 3 * (self.used + self.gone + 1) > 2 * size:  # full: grow, or clear the removed
            self._resize(self.bits + (1 if 3 * (self.used + 1) > size else 0))
        self._store(number, hashed, stamp, info)

    def _store(self, number: int, hashed: int, stamp: float, info: int) -> None:
        keys = self.keys
        mask = (1 << self.bits) - 1
        slot = hashed >> (_PART_SHIFT - self.bits) & mask
        while keys[slot] > _GONE:
            slot = (slot + 1) & mask
        if keys[slot] == _GONE:
            self.gone -= 1
        keys[slot] = number
        self.times[slot] = stamp
        self.infos[slot] = info
        self.used += 1

    def entries(self) -> Iterator[tuple[int, float, int]]:
        """(number, time, info) of every key held."""
        keys, times, infos = self.keys, self.times, self.infos
        return ((keys[slot], times[slot], infos[slot])
                for slot in range(len(keys)) if keys[slot] > _GONE)

    def prune(self, horizon: float) -> int:
        keys, times = self.keys, self.times
        pruned = 0
        for slot in range(len(keys)):
            if keys[slot] > _GONE and times[slot] <= horizon:
                keys[slot] = _GONE
                pruned += 1
        self.used -= pruned
        self.gone += pruned
        if self.gone > self.used:  # probing past removed slots costs: rebuild
            self._resize(max(3, (3 * self.used // 2).bit_length()))
        return pruned


def _hash(number: int) -> int:
    """64 well-mixed bits (Fibonacci hashing): neighbouring addresses spread out.
    The top _PART_BITS pick the part, the bits below them the slot."""
    return number * _MULTIPLIER & 0xFFFFFFFFFFFFFFFF


def _number(key: str) -> int | None:
    """An IPv4 address as a number; None for anything else (IPv6, a prefix)."""
    if key.count(".") != 3 or "/" in key:  # a dotted quad, as the blocker spells them
        return None
    try:
        number = int.from_bytes(socket.inet_aton(key), "big")
    except OSError:
        return None
    return number if number > _GONE else None
