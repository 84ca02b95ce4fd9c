"""TCP slots: per-sender limits and a fair choice of whom to close when full."""

from __future__ import annotations

from syslogban.framing import OctetFramer
from syslogban.slots import Slot, Slots


class Closed(list[str]):
    """Records which connection was closed, as the listener's abort would."""

    def closer(self, name: str):  # type: ignore[no-untyped-def]
        return lambda: self.append(name)


def test_a_sender_at_its_limit_gives_up_its_own_stalest_slot_stalled_frames_first() -> None:
    slots, closed = Slots(total=100, per_sender=3), Closed()
    relay = slots.admit("127.0.0.1", 0.0, closed.closer("relay"))
    assert relay is not None
    slots.progress(relay, 5.0, whole=True, pending=False)   # busy, between frames
    halves = [slots.admit("127.0.0.1", 1.0 + n, closed.closer(f"half{n}")) for n in range(2)]
    for n, half in enumerate(halves):
        assert half is not None
        slots.progress(half, 1.0 + n, whole=False, pending=True)
    for n in range(2, 6):  # a local process keeps opening connections
        assert slots.admit("127.0.0.1", 10.0 + n, closed.closer(f"half{n}")) is not None
    assert "relay" not in closed and closed[:2] == ["half0", "half1"]
    assert slots.held("127.0.0.1") == 3 and slots.evicted == 4


def test_when_full_the_greediest_sender_pays_and_a_fair_share_is_kept() -> None:
    slots, closed = Slots(total=10, per_sender=8), Closed()
    for n in range(8):
        slots.admit("203.0.113.1", float(n), closed.closer(f"greedy{n}"))
    for n in range(2):
        slots.admit("203.0.113.2", 10.0 + n, closed.closer(f"other{n}"))
    assert len(slots) == 10
    assert slots.admit("192.0.2.7", 20.0, closed.closer("relay")) is not None
    assert closed == ["greedy0"] and slots.held("203.0.113.1") == 7
    # Shares level out: a sender never takes a slot from one that holds no more than it.
    for n in range(5):
        slots.admit("192.0.2.7", 21.0 + n, closed.closer(f"relay{n}"))
    assert slots.held("192.0.2.7") == 4 and slots.held("203.0.113.1") == 4
    assert slots.admit("192.0.2.7", 30.0, closed.closer("more")) is None
    assert len(slots) == 10


def test_release_is_idempotent_and_progress_keeps_the_first_incomplete_moment() -> None:
    slots = Slots(total=2, per_sender=2)
    slot = slots.admit("a", 0.0, lambda: None)
    assert isinstance(slot, Slot)
    slots.progress(slot, 1.0, whole=False, pending=True)
    slots.progress(slot, 2.0, whole=False, pending=True)  # trickling does not extend it
    assert slot.partial_since == 1.0
    slots.progress(slot, 3.0, whole=True, pending=True)   # a new frame began
    assert slot.partial_since == 3.0 and slot.progress == 3.0
    slots.progress(slot, 4.0, whole=True, pending=False)
    assert slot.partial_since is None
    slots.release(slot)
    slots.release(slot)
    assert len(slots) == 0 and slots.held("a") == 0


def test_the_framer_says_when_a_frame_is_incomplete() -> None:
    f = OctetFramer(100)
    assert not f.pending
    f.feed(b"10 half")
    assert f.pending
    assert f.feed(b"abcdef") == [b"halfabcdef"]
    assert not f.pending
    f.feed(b"a line without its end")
    assert f.pending
    f.feed(b"\n500 " + b"x" * 110)   # an overlong frame: its rest is still to skip
    assert f.pending
