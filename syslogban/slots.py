"""TCP slots: who may hold a connection to the listeners, and who gives one up.

Rules of this file:
* Pure: the time is an argument, closing a connection is the caller's
  callback. sources.py owns the sockets.
* No sender can starve another. A sender holds at most `per_sender` slots;
  when the table is full, a newcomer takes a slot from the sender holding
  the most, as long as that sender would still hold more than the newcomer.
  A sender at its own limit gives up its own slot instead: a relay that
  reconnects always gets in, whatever else that address holds.
* The slot given up is the one that did least for us: one stalled inside a
  frame first, then one that never delivered a whole record, then the one
  whose last whole record is oldest (the oldest first within each). A busy
  relay (whole records, between frames) is the last to go.

Theory of operation: sources.py asks admit() for each new connection and
gets a Slot or None (refused), tells progress() whether a frame is left
incomplete after each read, and release()s the slot when the connection
ends, which admit() may have caused by calling the victim's close().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Slot:
    sender: str
    opened: float
    close: Callable[[], None] = field(repr=False)
    progress: float | None = None       # when it last delivered a whole record; None: never
    partial_since: float | None = None  # when its incomplete frame began; None: between frames


class Slots:
    __slots__ = ("total", "per_sender", "evicted", "_by_sender", "_count")

    def __init__(self, total: int, per_sender: int) -> None:
        self.total = total
        self.per_sender = per_sender
        self.evicted = 0
        self._by_sender: dict[str, list[Slot]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def held(self, sender: str) -> int:
        return len(self._by_sender.get(sender, ()))

    def admit(self, sender: str, now: float, close: Callable[[], None]) -> Slot | None:
        """A slot for a new connection from `sender`, or None when it is refused."""
        own = self.held(sender)
        if own >= self.per_sender:
            self._evict(sender)
        elif self._count >= self.total:
            greediest = max(self._by_sender, key=lambda s: len(self._by_sender[s]))
            if len(self._by_sender[greediest]) <= own + 1:
                return None  # the newcomer already holds its fair share
            self._evict(greediest)
        slot = Slot(sender, now, close)
        self._by_sender.setdefault(sender, []).append(slot)
        self._count += 1
        return slot

    def progress(self, slot: Slot, now: float, whole: bool, pending: bool) -> None:
        """After a read: `whole` records came, `pending` bytes of a frame wait."""
        if whole:
            slot.progress = now
        if not pending:
            slot.partial_since = None
        elif slot.partial_since is None or whole:
            slot.partial_since = now

    def release(self, slot: Slot) -> None:
        """The connection ended (its own end, a timeout, or an eviction); idempotent."""
        held = self._by_sender.get(slot.sender)
        if held is None or slot not in held:
            return
        held.remove(slot)
        self._count -= 1
        if not held:
            del self._by_sender[slot.sender]

    def _evict(self, sender: str) -> None:
        victim = min(self._by_sender[sender], key=_worth)
        self.release(victim)
        self.evicted += 1
        victim.close()


def _worth(slot: Slot) -> tuple[bool, bool, float]:
    """What a slot did for us, least first: stalled in a frame, never delivered, idle."""
    if slot.partial_since is not None:
        return (False, False, slot.partial_since)
    if slot.progress is None:
        return (True, False, slot.opened)
    return (True, True, slot.progress)
