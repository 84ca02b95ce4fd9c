"""The nftables driver against the real kernel, each test in its own namespace.

What the kernel holds is read back with `nft -j` inside the namespace, not
through the driver under test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from netns import netns, nft_json, requires_netns, requires_nft, run_in  # noqa: F401 (fixture)

from syslogban.backends import BackendError, Change, create
from syslogban.durations import PERMANENT

pytestmark = [requires_netns, requires_nft]


def backend(**options: Any) -> Any:
    return create("nftables", **options)


def kernel_elements(ns: str, table: str = "syslogban") -> dict[str, int | None]:
    """target -> timeout in seconds (None: none) of every element of the four sets."""
    found: dict[str, int | None] = {}
    for name in ("hosts4", "hosts6", "nets4", "nets6"):
        for item in nft_json(ns, "list", "set", "inet", table, name)["nftables"]:
            for elem in item.get("set", {}).get("elem", []):
                timeout = None
                if isinstance(elem, dict) and "elem" in elem:
                    timeout = elem["elem"].get("timeout")
                    elem = elem["elem"]["val"]
                if isinstance(elem, dict):
                    elem = f"{elem['prefix']['addr']}/{elem['prefix']['len']}"
                found[elem] = timeout
    return found


def rules(ns: str, table: str = "syslogban") -> list[str]:
    chains = nft_json(ns, "list", "table", "inet", table)["nftables"]
    return [str(item["rule"]["expr"]) for item in chains if "rule" in item]


def start_and_apply(changes: list[tuple[bool, str, float]], **options: Any) -> dict[str, float]:
    b = backend(**options)
    b.start()
    now = time.time()
    b.apply([Change(block, target, now + until if until != PERMANENT else until)
             for block, target, until in changes], now)
    return b.list()


def test_start_twice_keeps_elements_and_rules(netns: str) -> None:
    run_in(netns, start_and_apply, [(True, "192.0.2.1", 600)])
    before = rules(netns)
    run_in(netns, start_and_apply, [])
    assert rules(netns) == before and len(before) == 4
    assert kernel_elements(netns) == {"192.0.2.1": 600}


def test_hosts_and_prefixes_of_both_families(netns: str) -> None:
    held = run_in(netns, start_and_apply, [
        (True, "192.0.2.1", 120), (True, "2001:db8::7", 3600),
        (True, "198.51.100.0/24", 60), (True, "2001:db8:1::/48", PERMANENT)])
    assert kernel_elements(netns) == {"192.0.2.1": 120, "2001:db8::7": 3600,
                                      "198.51.100.0/24": 60, "2001:db8:1::/48": None}
    assert set(held) == {"192.0.2.1", "2001:db8::7", "198.51.100.0/24", "2001:db8:1::/48"}
    assert held["2001:db8:1::/48"] == PERMANENT
    assert 110 < held["192.0.2.1"] - time.time() <= 120
    run_in(netns, start_and_apply, [(False, "192.0.2.1", 0), (False, "2001:db8:1::/48", 0),
                                    (False, "203.0.113.5", 0)])  # never blocked: no error
    assert kernel_elements(netns) == {"2001:db8::7": 3600, "198.51.100.0/24": 60}


def test_blocking_again_refreshes_the_timeout(netns: str) -> None:
    run_in(netns, start_and_apply, [(True, "192.0.2.1", 60)])
    run_in(netns, start_and_apply, [(True, "192.0.2.1", 7200)])
    assert kernel_elements(netns) == {"192.0.2.1": 7200}


def refusal(action: Callable[[], object]) -> str:
    """What the driver said when it refused `action` (run in the namespace)."""
    try:
        action()
    except BackendError as exc:
        return str(exc)
    return "no error"


def failing_batch() -> str:
    b = backend()
    b.start()
    now = time.time()
    b.apply([Change(True, "192.0.2.0/24", now + 60)], now)
    # an interval that overlaps one in the set: the kernel refuses
    return refusal(lambda: b.apply([Change(True, "203.0.113.1", now + 60),
                                    Change(True, "192.0.2.128/25", now + 60),
                                    Change(False, "192.0.2.0/24", 0)], now))


def test_a_batch_with_one_failing_change_changes_nothing(netns: str) -> None:
    message = run_in(netns, failing_batch)
    assert message.startswith("nftables: a batch of 3 changes refused")
    assert kernel_elements(netns) == {"192.0.2.0/24": 60}


def start_without_rights() -> str:
    os.setgroups([])
    os.setgid(65534)  # nobody: no CAP_NET_ADMIN
    os.setuid(65534)
    return refusal(lambda: backend().start())


def test_a_refusal_for_want_of_rights_says_what_it_needs(netns: str) -> None:
    message = run_in(netns, start_without_rights)
    assert message.startswith("nftables: creating the table, sets and chains refused: ")
    assert message.endswith("Operation not permitted (needs root or CAP_NET_ADMIN)")
    assert nft_json(netns, "list", "tables")["nftables"][1:] == []  # nothing made


def test_the_kernel_ends_blocks_on_time(netns: str) -> None:
    run_in(netns, start_and_apply, [(True, "192.0.2.1", 2), (True, "192.0.2.2", PERMANENT)])
    assert set(kernel_elements(netns)) == {"192.0.2.1", "192.0.2.2"}
    time.sleep(3.2)
    assert kernel_elements(netns) == {"192.0.2.2": None}


def resync(active: dict[str, float]) -> dict[str, float]:
    b = backend()
    b.start()  # after `nft flush ruleset` the table is gone: start makes it again
    now = time.time()
    b.sync({t: now + d if d != PERMANENT else d for t, d in active.items()}, now)
    return b.list()


def test_sync_repairs_an_external_flush(netns: str) -> None:
    run_in(netns, start_and_apply, [(True, "192.0.2.1", 600), (True, "192.0.2.9", 600)])
    import subprocess
    subprocess.run(["ip", "netns", "exec", netns, "nft", "flush", "ruleset"], check=True)
    with pytest.raises(subprocess.CalledProcessError):
        kernel_elements(netns)  # gone, table and all
    held = run_in(netns, resync, {"192.0.2.1": 600, "2001:db8::/64": PERMANENT})
    assert set(held) == {"192.0.2.1", "2001:db8::/64"}
    assert kernel_elements(netns) == {"192.0.2.1": 600, "2001:db8::/64": None}
    assert len(rules(netns)) == 4


def test_sync_replaces_exactly(netns: str) -> None:
    run_in(netns, start_and_apply, [(True, "192.0.2.1", 600), (True, "198.51.100.0/24", 600)])
    run_in(netns, resync, {"192.0.2.2": 300})
    assert kernel_elements(netns) == {"192.0.2.2": 300}


def stop(flush: bool) -> None:
    backend().stop(flush=flush)


def test_stop_keeps_blocks_unless_asked_to_flush(netns: str) -> None:
    run_in(netns, start_and_apply, [(True, "192.0.2.1", 600)])
    run_in(netns, stop, False)
    assert kernel_elements(netns) == {"192.0.2.1": 600}
    run_in(netns, stop, True)
    assert "syslogban" not in str(nft_json(netns, "list", "tables"))


def test_reject_forward_and_no_chain(netns: str) -> None:
    run_in(netns, partial(start_and_apply, table="gw", hooks=["input", "forward"],
                          action="reject", ports="25,465"), [])
    table = nft_json(netns, "list", "table", "inet", "gw")["nftables"]
    hooks = {item["chain"]["hook"] for item in table if "chain" in item}
    assert hooks == {"input", "forward"}
    text = " ".join(rules(netns, "gw"))
    assert "reject" in text and "tcp reset" in text and "465" in text
    run_in(netns, partial(start_and_apply, table="own", hooks=[]), [(True, "192.0.2.1", 60)])
    own = nft_json(netns, "list", "table", "inet", "own")["nftables"]
    assert not [item for item in own if "chain" in item]
    assert kernel_elements(netns, "own") == {"192.0.2.1": 60}


@pytest.mark.parametrize(("options", "message"), [
    ({"table": "no spaces"}, "table name"), ({"hooks": ["output"]}, "hooks"),
    ({"action": "tarpit"}, "action"), ({"ports": ["25; flush ruleset"]}, "ports")])
def test_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(BackendError, match=message):
        backend(**options)


def test_the_contrib_ruleset_and_mode_2(netns: str) -> None:
    """contrib/nftables: the admin's own table holds syslogban's sets, no chain of ours."""
    import subprocess
    from pathlib import Path
    snippet = Path(__file__).resolve().parent.parent / "contrib" / "nftables" / \
        "filter-with-syslogban-sets.nft"
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", str(snippet)], check=True)
    before = nft_json(netns, "list", "chain", "inet", "filter", "input")
    run_in(netns, partial(start_and_apply, table="filter", hooks=[]),
           [(True, "192.0.2.1", 60), (True, "2001:db8::/64", 60)])
    assert kernel_elements(netns, "filter") == {"192.0.2.1": 60, "2001:db8::/64": 60}
    assert nft_json(netns, "list", "chain", "inet", "filter", "input") == before
