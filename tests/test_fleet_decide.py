"""The fleet-wide decision is the blocker's, over every host's events."""

from __future__ import annotations

from syslogban.blocker import BlockerConfig, History, Policy
from syslogban.fleet.decide import Event, decide, evidence

NOW = 1_800_000_000.0
CONFIG = BlockerConfig(policy=Policy(threshold=30, window=3600, block_time=120))


def spray(*hosts_and_ages: tuple[str, float], address: str = "198.51.100.7") -> list[Event]:
    return [Event(host, n, address, "postfix.sasl", "postfix", 10, NOW - age)
            for n, (host, age) in enumerate(hosts_and_ages)]


def test_one_attempt_on_each_of_three_hosts_blocks() -> None:
    block = decide(CONFIG, "198.51.100.7", spray(("mx1", 3000), ("mx2", 1500), ("mx3", 1)),
                   History(), NOW)
    assert block is not None
    assert (block.target, block.reason, block.score, block.nth) == ("198.51.100.7", "score", 30, 1)
    assert block.until == NOW - 1 + 120


def test_two_hosts_stay_below_and_old_events_left_the_window() -> None:
    assert decide(CONFIG, "198.51.100.7", spray(("mx1", 10), ("mx2", 5)), History(), NOW) is None
    assert decide(CONFIG, "198.51.100.7", spray(("mx1", 4000), ("mx2", 10), ("mx3", 5)),
                  History(), NOW) is None


def test_the_fleets_history_escalates_and_blacklists() -> None:
    events = spray(("mx1", 3), ("mx2", 2), ("mx3", 1))
    block = decide(CONFIG, "198.51.100.7", events, History(blocks=2, lifetime=60), NOW)
    assert block is not None and (block.nth, block.until) == (3, NOW - 1 + 480)
    blacklisting = BlockerConfig(policy=CONFIG.policy, blacklist=100)
    block = decide(blacklisting, "198.51.100.7", events[:1], History(blocks=1, lifetime=95), NOW)
    assert block is not None and block.reason == "blacklist" and block.permanent


def test_a_block_over_before_the_events_arrived_is_no_decision() -> None:
    late = spray(("mx1", 900), ("mx1", 899), ("mx1", 898))
    assert decide(CONFIG, "198.51.100.7", late, History(), NOW) is None


def test_the_allow_list_of_the_deciding_host_holds() -> None:
    events = spray(("mx1", 3), ("mx2", 2), ("mx3", 1), address="127.0.0.9")
    assert decide(CONFIG, "127.0.0.9", events, History(), NOW) is None


def test_evidence_names_every_host() -> None:
    lines = evidence(spray(("mx2", 2), ("mx1", 3)))
    assert [line.split(" ", 2)[1] for line in lines] == ["mx1:", "mx2:"]
    assert lines[0].endswith("postfix.sasl (danger 10)")
