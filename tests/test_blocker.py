"""The blocker with an injected clock: score, window, escalation, cap."""

from __future__ import annotations

from syslogban.blocker import Blocker, BlockerConfig, Policy
from syslogban.matcher import Attack

A = Attack("192.0.2.1", "postfix.sasl", "postfix", 10)


def test_three_attacks_within_window_block() -> None:
    b = Blocker()
    assert b.observe(A, 0) is None
    assert b.observe(A, 60) is None
    block = b.observe(A, 120)
    assert block is not None
    assert (block.target, block.since, block.until, block.score, block.nth) == (
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
    b = Blocker(BlockerConfig(Policy(block_time=100, multiplier=3, max_block_time=1000)))
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
    b = Blocker(BlockerConfig(Policy(threshold=25)))
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


# -------------------------------------------------------------- the rest of the policy

import ipaddress  # noqa: E402

import pytest  # noqa: E402

from syslogban.blocker import Aggregation, Block, History, normal_target  # noqa: E402
from syslogban.durations import PERMANENT  # noqa: E402


def attack(address: str = "192.0.2.1", service: str = "postfix", danger: int = 10,
           signature: str = "postfix.sasl") -> Attack:
    return Attack(address, signature, service, danger)


def hammer(b: Blocker, a: Attack, start: float, times: int = 3) -> Block | None:
    block = None
    for n in range(times):
        block = b.observe(a, start + n) or block
    return block


def test_loopback_and_configured_networks_are_never_blocked_but_counted() -> None:
    b = Blocker(BlockerConfig(allow=(*BlockerConfig().allow,
                                     ipaddress.ip_network("198.51.100.0/24"),
                                     ipaddress.ip_network("2001:db8::/32"))))
    for address in ("127.0.0.1", "127.255.0.9", "::1", "198.51.100.77", "2001:db8::5"):
        assert hammer(b, attack(address), 0, times=20) is None, address
    assert b.counters.allowed == 100 and b.counters.blocks == 0
    assert hammer(b, attack("198.51.101.1"), 0) is not None
    assert hammer(b, attack("2001:db9::1"), 0) is not None


def test_manual_block_of_an_allow_listed_address_is_refused() -> None:
    b = Blocker()
    with pytest.raises(ValueError, match="allow-listed"):
        b.block("127.0.0.2", 100, 0)
    with pytest.raises(ValueError, match="allow-listed"):
        b.block("126.0.0.0/7", 100, 0)  # overlaps 127/8


def test_blacklist_blocks_for_good_once_lifetime_danger_reaches_it() -> None:
    b = Blocker(BlockerConfig(Policy(block_time=10, multiplier=1), blacklist=70))
    first = hammer(b, attack(), 0)
    assert first.until == 12 and first.reason == "score"
    assert b.expire(50) == [first]
    second = hammer(b, attack(), 100)
    assert second.reason == "score"
    assert b.expire(150) == [second]
    third = b.observe(attack(), 200)  # lifetime 70 >= 70
    assert third is not None and third.reason == "blacklist" and third.permanent
    assert third.lifetime == 70
    assert b.expire(10**12) == [] and b.active == {"192.0.2.1": third}


def test_per_service_policy_scores_apart() -> None:
    strict = Policy(threshold=2, window=86400, block_time=86400, count_attempts=True)
    b = Blocker(BlockerConfig(services={"sshd": strict}))
    ssh = attack(service="sshd", signature="sshd.invalid-user", danger=1)
    assert b.observe(ssh, 0) is None
    assert b.observe(attack(), 10) is None  # postfix: default policy, own score
    block = b.observe(ssh, 3600)            # 2 attempts within 24 h
    assert block is not None and block.until - block.since == 86400
    assert block.signatures == ("sshd.invalid-user",) and block.score == 2


def test_attempt_counting_ignores_danger() -> None:
    b = Blocker(BlockerConfig(Policy(threshold=3, count_attempts=True)))
    weak = attack(danger=1)
    assert [b.observe(weak, t) for t in (0, 1)] == [None, None]
    assert b.observe(weak, 2).score == 3


def test_aggregation_blocks_the_prefix() -> None:
    b = Blocker(BlockerConfig(aggregation=Aggregation(ipv4=24, ipv6=64)))
    block = hammer(b, attack("192.0.2.77"), 0)
    assert block.target == "192.0.2.0/24"
    assert b.observe(attack("192.0.2.200"), 5) is None  # covered by the prefix
    assert b.counters.while_blocked == 1
    assert hammer(b, attack("2001:db8:1:2:3::4"), 0).target == "2001:db8:1:2::/64"


def test_score_by_prefix_adds_up_hosts_of_one_prefix() -> None:
    b = Blocker(BlockerConfig(aggregation=Aggregation(ipv4=24, score_by_prefix=True)))
    assert b.observe(attack("192.0.2.1"), 0) is None
    assert b.observe(attack("192.0.2.2"), 1) is None
    assert b.observe(attack("192.0.2.3"), 2).target == "192.0.2.0/24"


def test_adaptive_prefix_after_k_blocked_hosts_within_the_window() -> None:
    b = Blocker(BlockerConfig(aggregation=Aggregation(adaptive=3)))
    assert hammer(b, attack("192.0.2.1"), 0).target == "192.0.2.1"
    assert hammer(b, attack("192.0.2.2"), 10).target == "192.0.2.2"
    block = hammer(b, attack("192.0.2.3"), 20)
    assert (block.target, block.reason, block.score) == ("192.0.2.0/24", "adaptive", 3)
    assert block.signatures == ("192.0.2.1", "192.0.2.2", "192.0.2.3")
    assert b.observe(attack("192.0.2.99"), 30) is None  # covered
    late = Blocker(BlockerConfig(aggregation=Aggregation(adaptive=2)))
    hammer(late, attack("198.51.100.1"), 0)
    assert hammer(late, attack("198.51.100.2"), 4000).target == "198.51.100.2"  # window passed


def test_expire_returns_ended_blocks_once_and_in_order() -> None:
    b = Blocker()
    one = hammer(b, attack("192.0.2.1"), 0)
    two = hammer(b, attack("192.0.2.2"), 50)
    assert b.next_expiry() == one.until
    assert b.expire(one.until - 1) == []
    assert b.expire(10**9) == [one, two]
    assert b.expire(10**9) == [] and b.active == {}


def test_block_escalation_survives_a_restart() -> None:
    b = Blocker()
    first = hammer(b, attack(), 0)
    restarted = Blocker()
    restarted.restore(list(b.active.values()), b.history)
    assert restarted.observe(attack(), 10) is None  # still blocked
    second = hammer(restarted, attack(), 1000)
    assert (second.nth, second.until - second.since) == (2, 240)
    assert first.nth == 1


def test_manual_block_and_unblock() -> None:
    b = Blocker()
    block = b.block("::ffff:192.0.2.9", PERMANENT, 5)
    assert (block.target, block.reason, block.permanent) == ("192.0.2.9", "manual", True)
    assert b.observe(attack("192.0.2.9"), 6) is None
    assert b.unblock("192.0.2.9") == block and b.unblock("192.0.2.9") is None
    prefix = b.block("192.0.2.0/24", 100, 0)
    assert prefix.target == "192.0.2.0/24" and b.observe(attack("192.0.2.200"), 1) is None
    assert b.expire(100) == [prefix]


def test_normal_target() -> None:
    assert normal_target("::ffff:192.0.2.1") == "192.0.2.1"
    assert normal_target("192.0.2.77/24") == "192.0.2.0/24"
    assert normal_target("2001:DB8::1/128") == "2001:db8::1"
    for bad in ("host.example", "192.0.2.0/33", ""):
        with pytest.raises(ValueError):
            normal_target(bad)


def test_prune_forgets_scores_outside_every_window() -> None:
    b = Blocker()
    b.observe(attack("192.0.2.1"), 0)
    b.observe(attack("192.0.2.2"), 1000)
    assert b.tracked() == 2
    assert b.prune(2500) == 1 and b.tracked() == 1
    assert b.history == {}  # never blocked, no blacklist: nothing to remember


def test_history_restored_feeds_the_blacklist() -> None:
    b = Blocker(BlockerConfig(blacklist=100))
    b.restore([], {"192.0.2.1": History(blocks=3, lifetime=95)})
    block = b.observe(attack(), 0)
    assert block is not None and block.reason == "blacklist" and block.nth == 4


# ------------------------------------------- allow-list guarantees, whatever arrives

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

RELAYS = (ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8:aa::/48"))
PROTECTED = st.one_of(
    st.ip_addresses(network="127.0.0.0/8"), st.just(ipaddress.ip_address("::1")),
    st.ip_addresses(network="198.51.100.0/24"), st.ip_addresses(network="2001:db8:aa::/48"))


@settings(max_examples=300, deadline=None)
@given(protected=st.lists(PROTECTED, min_size=1, max_size=20),
       others=st.lists(st.one_of(st.ip_addresses(v=4, network="203.0.113.0/24"),
                                 st.ip_addresses(v=4, network="198.51.0.0/16"),
                                 st.ip_addresses(v=6, network="2001:db8::/32")), max_size=20),
       danger=st.integers(1, 1000), aggregate=st.sampled_from([32, 24, 16]),
       adaptive=st.sampled_from([0, 2]))
def test_allow_listed_addresses_are_never_blocked(protected: list, others: list, danger: int,
                                                  aggregate: int, adaptive: int) -> None:
    config = BlockerConfig(Policy(threshold=1), blacklist=1, allow=(*BlockerConfig().allow,
                                                                     *RELAYS),
                           aggregation=Aggregation(ipv4=aggregate, adaptive=adaptive))
    b = Blocker(config)
    blocks = []
    for t, address in enumerate(protected * 3 + others):
        text = str(address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            text = str(address.ipv4_mapped)
        block = b.observe(attack(text, danger=danger), float(t))
        if block is not None:
            blocks.append(block)
    for block in blocks:
        network = ipaddress.ip_network(block.target)
        assert not any(network.overlaps(n) for n in (*RELAYS, *BlockerConfig().allow)), block
    assert b.counters.allowed >= len(protected) * 3  # others may fall in a relay network too


# -------------------------------------------------------------- attempts, not lines

from syslogban.attempts import Counted  # noqa: E402


def test_lines_of_an_attempt_already_counted_add_nothing() -> None:
    b = Blocker()
    for t in range(10):  # ten lines reporting one attempt
        assert b.observe(A, t, Counted(1, 0, 0)) is None
    assert b.observe(A, 10, Counted(11, 1, 10)) is None
    assert b.observe(A, 11, Counted(12, 1, 10)) is None
    assert b.observe(A, 12, Counted(13, 1, 10)) is not None  # the third attempt


def test_a_summary_of_three_attempts_blocks_by_attempts_and_by_score() -> None:
    summary = Counted(1, 3, 30)
    assert Blocker().observe(A, 0, summary) is not None
    counting = BlockerConfig(Policy(threshold=3, count_attempts=True))
    assert Blocker(counting).observe(A, 0, summary) is not None
    assert Blocker(counting).observe(A, 0, Counted(1, 2, 20)) is None


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_attempts_n_blocks_at_the_nth_failed_login(n: int) -> None:
    b = Blocker(BlockerConfig(Policy(threshold=n, count_attempts=True)))
    for i in range(1, n):
        assert b.observe(A, i, Counted(i, 1, 10)) is None
        assert b.observe(A, i, Counted(i, 0, 0)) is None  # its other lines
    assert b.observe(A, n, Counted(n, 1, 10)) is not None


def test_permanent_block_time_is_permanent_whatever_the_cap() -> None:
    policy = Policy(block_time=PERMANENT, max_block_time=86400)
    assert policy.duration(0) == PERMANENT and policy.duration(5) == PERMANENT
    b = Blocker(BlockerConfig(services={"dovecot": policy}))
    dovecot = Attack("192.0.2.5", "dovecot.auth-failed", "dovecot", 10)
    block = [b.observe(dovecot, t) for t in range(3)][-1]
    assert block is not None and block.permanent


def test_attempts_per_service_within_the_window() -> None:
    b = Blocker()
    b.observe(A, 0, Counted(1, 1, 10))
    b.observe(Attack("192.0.2.1", "dovecot.auth-failed", "dovecot", 5), 1, Counted(2, 2, 10))
    assert b.attempts("192.0.2.1", 2) == {"postfix": 1, "dovecot": 2}
    assert b.attempts("192.0.2.1", 5000) == {}


def test_covering_finds_the_block_of_a_prefix() -> None:
    b = Blocker()
    assert b.covering("192.0.2.7", 0) is None
    b.block("192.0.2.0/24", 100, 0)
    assert b.covering("192.0.2.7", 1).target == "192.0.2.0/24"
    assert b.covering("192.0.2.0/25", 1).target == "192.0.2.0/24"
    assert b.covering("192.0.3.7", 1) is None
    b.block("192.0.2.7", 50, 0)
    assert b.covering("192.0.2.7", 1).target == "192.0.2.7"  # its own first
    assert b.covering("192.0.2.7", 60).target == "192.0.2.0/24"  # its own ended
    b.block("2001:db8::/48", PERMANENT, 0)
    assert b.covering("2001:db8::1", 1e12).target == "2001:db8::/48"


@pytest.mark.parametrize("target, message", [
    ("0.0.0.0", "is an unspecified address"), ("255.255.255.255", "is a broadcast address"),
    ("224.0.0.1", "is a multicast address"), ("ff02::1", "is a multicast address"),
    ("::", "is an unspecified address"), ("fe80::1", "is a link-local address"),
    ("0.0.0.0/0", "covers the unspecified range"), ("::/0", "covers the unspecified range"),
    ("128.0.0.0/1", "covers the link-local range"), ("169.254.0.0/16", "link-local range"),
    ("32.0.0.0/3", "is wider than /8"), ("2001::/15", "is wider than /16"),
])
def test_manual_block_refuses_addresses_never_blocked_and_huge_prefixes(
        target: str, message: str) -> None:
    b = Blocker()
    with pytest.raises(ValueError, match=message):
        b.block(target, 100, 0)
    assert b.active == {} and b.history == {}
    for documentation in ("192.0.2.1", "198.51.100.0/24", "203.0.113.7", "2001:db8::/32",
                          "10.0.0.0/8"):
        assert b.block(documentation, 100, 0).target == documentation


def test_aggregation_never_makes_a_prefix_that_touches_them() -> None:
    """An attacker whose aggregate would cover a never-blocked range is
    blocked alone, as one next to an allow-listed network is."""
    b = Blocker(BlockerConfig(aggregation=Aggregation(ipv4=8, ipv6=16)))
    targets = {address: hammer(b, attack(address), 0) for address in
               ("1.2.3.4", "169.1.2.3", "2001:db8::1", "::2")}
    assert {a: block.target for a, block in targets.items() if block} == {
        "1.2.3.4": "1.0.0.0/8", "169.1.2.3": "169.1.2.3",   # 169.0.0.0/8 holds 169.254/16
        "2001:db8::1": "2001::/16", "::2": "::2"}           # ::/16 holds ::


# -------------------------------------------------------------- reload

from syslogban.decisions import Decisions  # noqa: E402


def reloaded(b: Blocker, config: BlockerConfig) -> Blocker:
    fresh = Blocker(config)
    fresh.take_over(b)
    return fresh


@pytest.mark.parametrize("address", ["192.0.2.1", "2001:db8::1"])  # the table, and a list
def test_a_reload_keeps_the_scores_in_progress(address: str) -> None:
    """2 attacks, reload, 1 attack: blocked (the new blocker started at 0)."""
    decisions = Decisions(BlockerConfig())
    b = decisions.blocker
    assert [b.observe(attack(address), t) for t in (0, 1)] == [None, None]
    decisions.reconfigure(BlockerConfig())
    block = decisions.blocker.observe(attack(address), 2)
    assert block is not None and block.score == 30 and block.since == 2


def test_carried_scores_count_under_the_new_policy() -> None:
    b = Blocker()
    b.observe(attack(), 0)
    b.observe(attack(), 100)
    b = reloaded(b, BlockerConfig(Policy(threshold=20)))
    assert b.active == {} and b.tracked() == 1
    b = reloaded(b, BlockerConfig(Policy(window=50)))  # the attack at 0 is too old now
    assert b.observe(attack(), 101) is None
    assert b.observe(attack(), 102).score == 30


def test_a_service_given_its_own_policy_on_reload_takes_its_attacks_along() -> None:
    b = Blocker()
    ssh = attack(service="sshd", signature="sshd.invalid-user", danger=1)
    assert b.observe(ssh, 0) is None and b.observe(attack(), 1) is None
    strict = Policy(threshold=2, window=86400, count_attempts=True)
    b = reloaded(b, BlockerConfig(services={"sshd": strict}))
    block = b.observe(ssh, 2)  # the sshd attempt before the reload counts
    assert block is not None and block.score == 2 and block.signatures == ("sshd.invalid-user",)
    assert b.observe(ssh._replace(address="192.0.2.2", danger=10), 3) is None
    b = reloaded(b, BlockerConfig())  # sshd back in the default group, its attempt too
    assert b.observe(attack("192.0.2.2"), 4) is None
    assert b.observe(attack("192.0.2.2"), 5).score == 30


def test_scoring_by_prefix_after_a_reload_adds_up_the_hosts_scores() -> None:
    b = Blocker()
    b.observe(attack("192.0.2.1"), 0)
    b.observe(attack("192.0.2.2"), 1)
    b.observe(attack("198.51.100.1"), 2)
    by_prefix = BlockerConfig(aggregation=Aggregation(ipv4=24, score_by_prefix=True))
    b = reloaded(b, by_prefix)
    assert b.tracked() == 2
    block = b.observe(attack("192.0.2.3"), 3)
    assert block is not None and block.target == "192.0.2.0/24" and block.score == 30
    b.observe(attack("203.0.113.1"), 4)
    assert b.attempts("198.51.100.0/24", 4) == {"postfix": 1}
    b = reloaded(b, BlockerConfig())  # a prefix's score has no hosts to go back to
    assert b.tracked() == 0


def test_a_reload_keeps_blocks_history_counters_and_adaptive_progress() -> None:
    adaptive = BlockerConfig(aggregation=Aggregation(adaptive=2))
    b = Blocker(adaptive)
    first = hammer(b, attack("192.0.2.1"), 0)
    b = reloaded(b, adaptive)
    assert b.active == {"192.0.2.1": first} and b.history["192.0.2.1"].blocks == 1
    assert b.counters.blocks == 1 and b.next_expiry() == first.until
    assert hammer(b, attack("192.0.2.2"), 10).target == "192.0.2.0/24"
