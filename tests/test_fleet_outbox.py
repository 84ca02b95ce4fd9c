"""The outbox keeps what the fleet is owed, across restarts, bounded."""

from __future__ import annotations

from pathlib import Path

from syslogban.fleet.outbox import BLOCK, EVENT, STEP, Outbox, event_fields, event_line


def event(address: str, at: float = 1.0, danger: int = 10, attempts: int = 1) -> tuple[str, str]:
    return EVENT, event_line(address, "postfix.sasl", "postfix", danger, attempts, at)


def test_rows_survive_a_restart_until_removed(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "state.db", limit=1000)
    box.append([event("192.0.2.1"), (BLOCK, {"target": "192.0.2.1"})])
    box.close()
    again = Outbox(tmp_path / "state.db", limit=1000)
    rows = again.peek(10)
    assert [(kind, body) for _, kind, body in rows] == [
        (EVENT, "192.0.2.1\tpostfix.sasl\tpostfix\t10\t1.0\t1"),
        (BLOCK, {"target": "192.0.2.1"})]
    again.remove(rows[0][0])
    assert len(again) == 1 and again.counters.sent == 1


def test_sequences_are_never_reused(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "state.db", limit=1000)
    box.append([event("192.0.2.1")])
    first = box.peek(1)[0][0]
    box.remove(first)
    box.append([event("192.0.2.2")])
    assert box.peek(1)[0][0] == first + 1
    box.floor(500)
    box.append([event("192.0.2.3")])
    assert box.peek(2)[-1][0] == 501
    fresh = Outbox(tmp_path / "other.db", limit=1000)
    fresh.floor(77)  # a state file that never sent anything, told by the database
    fresh.append([event("192.0.2.4")])
    assert fresh.peek(1)[0][0] == 78


def test_a_full_outbox_summarises_the_oldest_events_and_keeps_their_danger(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "state.db", limit=1000)
    box.append([(BLOCK, {"target": "203.0.113.1"})])
    box.append([event(f"192.0.2.{n % 3}", at=float(n), attempts=n % 2) for n in range(1200)])
    assert len(box) == 1201 and box.full  # append never summarises: the sender does, in steps
    while box.full and box.summarise():
        pass
    assert len(box) <= 900
    rows = box.peek(2000)
    assert len(rows) == len(box)
    assert rows[0][1] == BLOCK  # never summarised
    fields = [event_fields(body) for _, kind, body in rows if kind == EVENT]
    assert sum(f[3] for f in fields) == 1200 * 10  # nothing lost, only folded
    assert sum(f[5] for f in fields) == 600
    assert box.counters.summarised == 1200 + 1 - len(box) and box.counters.dropped == 0


def test_summarising_goes_in_short_steps(tmp_path: Path) -> None:
    """Each step is one short transaction over at most STEP rows: the sender
    yields to the loop between steps, and no step holds the state file long.
    One address's many events fold into rows of at most STEP events each."""
    box = Outbox(tmp_path / "state.db", limit=1000)
    box.append([event(f"192.0.2.{n % 5}", at=float(n)) for n in range(5 * STEP)]
               + [event("198.51.100.1", at=float(n)) for n in range(3 * STEP)])
    steps = []
    while box.full:
        steps.append(box.summarise())
    assert len(steps) >= 8 and all(0 < touched <= STEP for touched in steps)
    assert len(box) <= 900 and box.counters.dropped == 0
    fields = [event_fields(body) for _, _, body in box.peek(2000)]
    assert sum(f[5] for f in fields) == 8 * STEP  # every attempt kept


def test_events_alone_for_their_address_are_dropped_and_counted(tmp_path: Path) -> None:
    """A pass over the oldest STEP events: the ten of one address fold into one
    row, kept; folding cannot shrink the 490 events of 490 addresses around
    them, so they are dropped (counted, logged)."""
    box = Outbox(tmp_path / "state.db", limit=1000)
    box.append([event("192.0.2.1", at=float(n)) for n in range(10)]
               + [event(f"10.0.{n // 250}.{n % 250}") for n in range(1100)])
    while box.full and box.summarise():
        pass
    rows = [event_fields(body) for _, _, body in box.peek(2000)]
    assert len(rows) == len(box) == 1110 - 9 - 490
    assert ("192.0.2.1", "postfix.sasl", "postfix", 100, 9.0, 10) in rows
    assert (box.counters.dropped, box.counters.summarised) == (490, 9)


def test_tabs_and_newlines_cannot_split_an_event() -> None:
    line = event_line("192.0.2.1", "evil\tsig\nx", "svc", 10, 1, 2.5)
    assert line.split("\t") == ["192.0.2.1", "evil sig x", "svc", "10", "2.5", "1"]


def test_an_event_line_of_an_older_outbox_is_one_attempt() -> None:
    assert event_fields("192.0.2.1\tpostfix.sasl\tpostfix\t10\t2.5") == (
        "192.0.2.1", "postfix.sasl", "postfix", 10, 2.5, 1)


def test_cursors_per_remote(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "state.db", limit=1000)
    assert box.cursor("fleet") == ""
    box.set_cursor("fleet", "742:745:743")  # the fleet's: a snapshot
    box.set_cursor("fleet", "750:750:")
    assert Outbox(tmp_path / "state.db", limit=1000).cursor("fleet") == "750:750:"
