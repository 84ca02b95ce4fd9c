"""The blocker with an injected clock: score, window, escalation, cap."""

from __future__ import annotations

from syslogban.blocker import Blocker, Policy
from syslogban.matcher import Attack

A = Attack("192.0.2.1", "postfix.sasl", "postfix", 10)


def test_three_attacks_within_window_block() -> None:
    b = Blocker()
    assert b.observe(A, 0) is None
    assert b.observe(A, 60) is None
    block = b.observe(A, 120)
    assert block is not None
    assert (block.address, block.since, block.until, block.score, block.nth) == (
        "192.0.2.1", 120, 240, 30, 1)
    assert block.signatures == ("postfix.sasl",)


def test_attacks_outside_window_do_not_add_up() -> None:
    b = Blocker()
    assert b.observe(A, 0) is None
    assert b.observe(A, 1000) is None
    assert b.observe(A, 1800) is None   # the attack at 0 has left the window
    assert b.observe(A, 1801) is not None


def test_attacks_while_blocked_do_not_block_again() -> None:
    b = Blocker()
    for t in (0, 1, 2):
        b.observe(A, t)
    assert all(b.observe(A, t) is None for t in range(3, 122))


def test_block_time_escalates_and_is_capped() -> None:
    b = Blocker(Policy(block_time=100, multiplier=3, max_block_time=1000))
    durations = []
    t = 0.0
    for _ in range(5):
        for _ in range(3):
            block = b.observe(A, t)
            t += 1
        assert block is not None
        durations.append(block.until - block.since)
        t = block.until
    assert durations == [100, 300, 900, 1000, 1000]


def test_danger_and_threshold_from_policy_and_signature() -> None:
    b = Blocker(Policy(threshold=25))
    heavy = Attack("192.0.2.2", "x.heavy", "x", 25)
    assert b.observe(heavy, 0).score == 25
    other = Attack("192.0.2.3", "x.mixed", "x", 5)
    assert [b.observe(other, t) for t in range(4)] == [None] * 4
    block = b.observe(A._replace(address="192.0.2.3"), 5)
    assert block.score == 30 and block.signatures == ("x.mixed", "postfix.sasl")


def test_addresses_are_scored_independently() -> None:
    b = Blocker()
    other = A._replace(address="192.0.2.99")
    assert [b.observe(A, 0), b.observe(other, 1), b.observe(A, 2), b.observe(other, 3)] == [None] * 4
