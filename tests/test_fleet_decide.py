"""The fleet-wide decision is the blocker's, over every host's events."""

from __future__ import annotations

from syslogban.blocker import Block, BlockerConfig, History, Policy
from syslogban.fleet.decide import Event, decide, evidence

NOW = 1_800_000_000.0
CONFIG = BlockerConfig(policy=Policy(threshold=30, window=3600, block_time=120))


def spray(*hosts_and_ages: tuple[str, float], address: str = "198.51.100.7") -> list[Event]:
    return [Event(host, n, address, "postfix.sasl", "postfix", 10, NOW - age)
            for n, (host, age) in enumerate(hosts_and_ages)]


def one(events: list[Event], history: History | None = None,
        config: BlockerConfig = CONFIG) -> Block | None:
    blocks = decide(config, events, {events[0].address: history or History()}, NOW)
    assert len(blocks) <= 1
    return next(iter(blocks.values()), None)


def test_one_attempt_on_each_of_three_hosts_blocks() -> None:
    block = one(spray(("mx1", 3000), ("mx2", 1500), ("mx3", 1)))
    assert block is not None
    assert (block.target, block.reason, block.score, block.nth) == ("198.51.100.7", "score", 30, 1)
    assert block.until == NOW - 1 + 120


def test_two_hosts_stay_below_and_old_events_left_the_window() -> None:
    assert one(spray(("mx1", 10), ("mx2", 5))) is None
    assert one(spray(("mx1", 4000), ("mx2", 10), ("mx3", 5))) is None


def test_the_fleets_history_escalates_and_blacklists() -> None:
    events = spray(("mx1", 3), ("mx2", 2), ("mx3", 1))
    block = one(events, History(blocks=2, lifetime=60))
    assert block is not None and (block.nth, block.until) == (3, NOW - 1 + 480)
    blacklisting = BlockerConfig(policy=CONFIG.policy, blacklist=100)
    block = one(events[:1], History(blocks=1, lifetime=95), blacklisting)
    assert block is not None and block.reason == "blacklist" and block.permanent


def test_a_block_over_before_the_events_arrived_is_no_decision() -> None:
    late = spray(("mx1", 900), ("mx1", 899), ("mx1", 898))
    assert one(late) is None


def test_the_allow_list_of_the_deciding_host_holds() -> None:
    events = spray(("mx1", 3), ("mx2", 2), ("mx3", 1), address="127.0.0.9")
    assert one(events) is None


def test_addresses_of_one_batch_decide_apart() -> None:
    events = spray(("mx1", 3), ("mx2", 2), ("mx3", 1)) + spray(("mx1", 2), address="192.0.2.9")
    blocks = decide(CONFIG, events, {"198.51.100.7": History(blocks=1)}, NOW)
    assert list(blocks) == ["198.51.100.7"] and blocks["198.51.100.7"].nth == 2


def test_evidence_names_every_host() -> None:
    lines = evidence(spray(("mx2", 2), ("mx1", 3)))
    assert [line.split(" ", 2)[1] for line in lines] == ["mx1:", "mx2:"]
    assert lines[0].endswith("postfix.sasl (danger 10)")


def test_attempts_not_lines_count_where_the_policy_counts_attempts() -> None:
    """Three lines of one failed login: one event of the attempt, two that add
    nothing (never sent) or only danger; `attempts = 2` blocks at the second login."""
    config = BlockerConfig(policy=Policy(threshold=2, window=3600, count_attempts=True))
    first = [Event("mx1", 1, "198.51.100.7", "postfix.sasl", "postfix", 10, NOW - 9, 1),
             Event("mx1", 2, "198.51.100.7", "postfix.lost", "postfix", 5, NOW - 8, 0)]
    assert one(first, config=config) is None
    second = Event("mx2", 1, "198.51.100.7", "postfix.sasl", "postfix", 10, NOW - 1, 1)
    block = one([*first, second], config=config)
    assert block is not None and block.score == 2
