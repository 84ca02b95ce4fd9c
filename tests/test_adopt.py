"""Remote decisions through the bounds into the blocker: who wins, what is lifted."""

from __future__ import annotations

import ipaddress

from syslogban.adopt import adopt
from syslogban.blocker import Blocker, BlockerConfig, Policy
from syslogban.bounds import Bounds, Gate
from syslogban.matcher import Attack
from syslogban.remote import RemoteDecision

NOW = 1_800_000_000.0
ALLOW = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("192.0.2.0/28"))


def setup() -> tuple[Blocker, Gate]:
    blocker = Blocker(BlockerConfig(policy=Policy(threshold=30, block_time=120), allow=ALLOW))
    return blocker, Gate(Bounds(max_duration=3600), ALLOW)


def remote(target: str, until: float = NOW + 600, revoked: bool = False, nth: int = 1,
           origin: str = "fleet:mx2") -> RemoteDecision:
    return RemoteDecision(target, NOW, until, origin, "score", revoked, 30, ("postfix.sasl",),
                          nth, 30, ("2026-11-21T10:00:00+00:00 mx2: postfix.sasl (danger 10)",))


def test_a_remote_block_is_in_force_with_its_origin_and_evidence() -> None:
    blocker, gate = setup()
    result = adopt(blocker, gate, "fleet", [remote("198.51.100.7")], False, NOW)
    (block, lines), = result.blocks
    assert block.origin == "fleet:mx2" and blocker.active["198.51.100.7"] is block
    assert lines == ["fleet:mx2: 2026-11-21T10:00:00+00:00 mx2: postfix.sasl (danger 10)"]


def test_the_fleets_history_escalates_the_next_local_block() -> None:
    blocker, gate = setup()
    adopt(blocker, gate, "fleet", [remote("198.51.100.7", nth=3)], False, NOW)
    blocker.unblock("198.51.100.7")
    for n in range(3):
        block = blocker.observe(Attack("198.51.100.7", "postfix.sasl", "postfix", 10), NOW + n)
    assert block is not None and block.nth == 4 and block.until == NOW + 2 + 120 * 8


def test_the_allow_list_wins_and_is_reported() -> None:
    blocker, gate = setup()
    result = adopt(blocker, gate, "fleet", [remote("192.0.2.5")], False, NOW)
    assert not result.blocks and not blocker.active
    assert result.refusals == ["fleet:mx2: 192.0.2.5 is allow-listed here: the local "
                               "allow-list wins"]
    assert gate.counters.allow_listed == 1


def test_an_own_block_coming_back_changes_nothing() -> None:
    blocker, gate = setup()
    for n in range(3):
        own = blocker.observe(Attack("198.51.100.7", "postfix.sasl", "postfix", 10), NOW)
    assert own is not None
    echo = remote("198.51.100.7", until=own.until, origin="fleet:mx1")
    assert adopt(blocker, gate, "fleet", [echo], False, NOW).blocks == []
    assert blocker.active["198.51.100.7"] is own


def test_a_revocation_lifts_any_block() -> None:
    blocker, gate = setup()
    blocker.block("198.51.100.7", NOW + 600, NOW)
    result = adopt(blocker, gate, "fleet", [remote("198.51.100.7", revoked=True)], False, NOW)
    assert [b.target for b in result.unblocks] == ["198.51.100.7"] and not blocker.active


def test_a_full_sync_lifts_this_origins_blocks_no_longer_listed() -> None:
    blocker, gate = setup()
    adopt(blocker, gate, "fleet", [remote("198.51.100.7"), remote("198.51.100.8")], False, NOW)
    adopt(blocker, gate, "crowdsec", [remote("198.51.100.9", origin="crowdsec:cscli")], False,
          NOW)
    blocker.block("198.51.100.10", NOW + 600, NOW)  # this host's own
    result = adopt(blocker, gate, "fleet", [remote("198.51.100.8")], True, NOW)
    assert [b.target for b in result.unblocks] == ["198.51.100.7"]
    assert set(blocker.active) == {"198.51.100.8", "198.51.100.9", "198.51.100.10"}
