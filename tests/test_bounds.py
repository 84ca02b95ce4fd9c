"""Bounds on remote decisions: the allow-list wins, width, duration and rate are capped."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from syslogban.blocker import Aggregation
from syslogban.bounds import Bounds, Gate
from syslogban.durations import PERMANENT
from syslogban.remote import NullRemote, RemoteDecision

NOW = 1_800_000_000.0
ALLOW = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "192.0.2.0/28", "2001:db8:1::/48")]


def decision(target: str, until: float = NOW + 600, revoked: bool = False) -> RemoteDecision:
    return RemoteDecision(target, NOW, until, "fleet:mx2", revoked=revoked)


def gate(**bounds: float) -> Gate:
    return Gate(Bounds(**bounds), ALLOW)  # type: ignore[arg-type]


def test_a_plain_block_passes_in_normal_form() -> None:
    g = gate()
    admitted = g.admit(decision("::ffff:198.51.100.7"), NOW)
    assert admitted.decision == decision("198.51.100.7")
    assert g.counters.admitted == 1


@pytest.mark.parametrize("target, refusal, counter", [
    *[(t, "allow-listed", "allow_listed") for t in ("192.0.2.3", "192.0.2.0/24", "127.0.0.1",
                                                    "0.0.0.0/0", "2001:db8:1::5", "2001:db8::/32")],
    # addresses never blocked, and prefixes touching them (address.NEVER_BLOCKED)
    *[(t, "never blocked", "invalid") for t in ("0.0.0.0", "255.255.255.255", "224.0.0.0/4",
                                                "ff02::1", "fe80::/64", "::")]])
def test_the_local_allow_list_always_wins_and_some_addresses_are_never_blocked(
        target: str, refusal: str, counter: str) -> None:
    g = gate(widest_ipv4=0, widest_ipv6=0)
    admitted = g.admit(decision(target), NOW)
    assert admitted.decision is None and refusal in admitted.refusal
    assert getattr(g.counters, counter) == 1 and g.counters.admitted == 0


def test_no_wider_than_the_local_aggregation() -> None:
    g = Gate(Bounds.for_aggregation(Aggregation(ipv4=24, ipv6=64), 3600, 10), ALLOW)
    assert g.admit(decision("198.51.100.0/24"), NOW).decision is not None
    assert g.admit(decision("2001:db8:9::/64"), NOW).decision is not None
    refused = g.admit(decision("198.51.0.0/16"), NOW)
    assert refused.decision is None and "wider than /24" in refused.refusal
    assert g.admit(decision("2001:db8:9::/48"), NOW).decision is None
    assert g.counters.too_wide == 2


def test_adaptive_prefixes_count_as_the_local_width() -> None:
    bounds = Bounds.for_aggregation(Aggregation(adaptive=3, adaptive_ipv4=22), 3600, 10)
    assert (bounds.widest_ipv4, bounds.widest_ipv6) == (22, 64)


def test_long_and_permanent_blocks_are_shortened_to_the_maximum() -> None:
    g = gate(max_duration=3600)
    assert g.admit(decision("198.51.100.7", PERMANENT), NOW).decision.until == NOW + 3600  # type: ignore[union-attr]
    assert g.admit(decision("198.51.100.8", NOW + 60), NOW).decision.until == NOW + 60  # type: ignore[union-attr]
    assert g.counters.shortened == 1 and g.counters.admitted == 2


def test_a_block_already_over_is_not_taken() -> None:
    g = gate()
    assert g.admit(decision("198.51.100.7", NOW - 1), NOW).decision is None
    assert g.counters.expired == 1


def test_the_rate_refuses_a_flood_and_recovers() -> None:
    g = gate(rate=1)  # a minute's worth: 60 at once, then one a second
    taken = [g.admit(decision(f"198.51.100.{n}"), NOW).decision for n in range(70)]
    assert sum(d is not None for d in taken) == 60
    assert g.counters.rate_limited == 10
    assert g.admit(decision("203.0.113.1"), NOW + 0.5).decision is None
    assert g.admit(decision("203.0.113.1"), NOW + 1.5).decision is not None


def test_revocations_always_pass_even_past_the_rate() -> None:
    g = gate(rate=0)
    assert g.admit(decision("198.51.100.7"), NOW).decision is None
    lifted = g.admit(decision("::ffff:198.51.100.7", revoked=True), NOW).decision
    assert lifted is not None and lifted.target == "198.51.100.7" and lifted.revoked
    assert g.counters.revocations == 1


@pytest.mark.parametrize("target", ["mx.example.org", "198.51.100.7; drop", "", "1.2.3.4/33"])
def test_what_is_no_address_is_refused(target: str) -> None:
    g = gate()
    admitted = g.admit(decision(target), NOW)
    assert admitted.decision is None and admitted.refusal
    assert g.counters.invalid == 1


def test_the_null_remote_delivers_nothing() -> None:
    delivered: list[object] = []

    def deliver(decisions: object, complete: bool) -> None:
        delivered.append(decisions)
    remote = NullRemote()

    async def session() -> None:
        await remote.start(deliver)
        remote.unblocked("192.0.2.1", NOW)
        await remote.stop()
    asyncio.run(session())
    assert delivered == [] and remote.status() == {}



def test_a_peers_absurd_numbers_are_bounded() -> None:
    """A database may hold any bigint and any timestamp: what this host takes
    is bounded (a lifetime of 2**63 - 1 overflowed the state file one attack later)."""
    g = gate()
    wild = RemoteDecision("198.51.100.7", float("-inf"), NOW + 600, "fleet:mx2", score=-5,
                          nth=2**31 - 1, lifetime=2**63 - 1)
    admitted = g.admit(wild, NOW).decision
    assert admitted is not None
    assert (admitted.since, admitted.nth, admitted.score, admitted.lifetime) == (
        NOW, 1000, 0, 10**9)
    future = g.admit(RemoteDecision("198.51.100.8", NOW + 86400, NOW + 600, "fleet:mx2",
                                    nth=0), NOW).decision
    assert future is not None and (future.since, future.nth) == (NOW, 1)
    assert g.admit(RemoteDecision("198.51.100.9", NOW, float("nan"), "fleet:mx2"),
                   NOW).decision is None
