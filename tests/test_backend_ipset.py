"""The ipset backend against the real kernel, each test in a network namespace of its own.

The backend is always built inside the namespace, in a forked child (netlink
sockets belong to the namespace they were opened in): `session` is one
daemon's lifetime there, and a restart is a second session on the same
namespace. The kernel's view is read back with the ipset command
(`ipset -o xml list`), independently of the backend's own parsing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from netns import netns, requires_netns, run_in  # noqa: F401 (fixture)
from system import requires

from syslogban.backends import BackendError, Change, create
from syslogban.backends.base import PERMANENT
from syslogban.backends.ipset import MAX_TIMEOUT, IpsetBackend

CONTRIB = Path(__file__).resolve().parent.parent / "contrib" / "ipset"
RULES = {"iptables": CONTRIB / "iptables.rules", "ip6tables": CONTRIB / "ip6tables.rules"}

requires_ipset = requires(shutil.which("ipset") is not None,
                          "needs the ipset command (Debian package ipset) to read the kernel's view")
requires_iptables = requires(
    all(shutil.which(f"{tool}-restore") for tool in RULES),
    "needs iptables-restore and ip6tables-restore (Debian package iptables)")

HOSTS_AND_PREFIXES = ["192.0.2.1", "198.51.100.0/24", "2001:db8::1", "2001:db8:1::/48"]


class Refused(NamedTuple):
    """A call that raised BackendError, with its message."""
    message: str


def session(calls: list[tuple[Any, ...]], options: dict[str, Any] | None = None) -> list[Any]:
    """In the namespace: a new backend (with `options`) makes `calls` (method name,
    arguments...) and stops without flushing; the result of each call, or Refused."""
    backend = IpsetBackend(**(options or {}))
    results: list[Any] = []
    try:
        for method, *args in calls:
            try:
                results.append(getattr(backend, method)(*args))
            except BackendError as exc:
                results.append(Refused(str(exc)))
    finally:
        backend.stop()
    return results


def in_ns(netns: str, *command: str, stdin: str | None = None) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, *command], input=stdin,
                          check=True, capture_output=True, text=True).stdout


def kernel(netns: str) -> dict[str, dict[str, Any]]:
    """Every set in the namespace: name -> its header fields, and "members":
    element -> timeout (0: permanent), as the ipset command shows them."""
    sets = {}
    for node in ET.fromstring(in_ns(netns, "ipset", "-o", "xml", "list")).iter("ipset"):
        header = {field.tag: field.text for field in node.iterfind("header/*")}
        sets[node.get("name", "")] = {
            "type": node.findtext("type"), **header,
            "members": {member.findtext("elem"): int(member.findtext("timeout") or 0)
                        for member in node.iter("member")}}
    return sets


def references(netns: str) -> list[str]:
    """How many rules use syslogban4 and syslogban6."""
    sets = kernel(netns)
    return [sets[name]["references"] for name in ("syslogban4", "syslogban6")]


def members(netns: str) -> dict[str, int]:
    """The elements of syslogban4 and syslogban6 with their timeouts."""
    sets = kernel(netns)
    return {**sets["syslogban4"]["members"], **sets["syslogban6"]["members"]}


def near(actual: Mapping[str, float], expected: Mapping[str, float], slack: float = 3.0) -> bool:
    """The same targets, each ending within `slack` seconds of the other."""
    return actual.keys() == expected.keys() and all(
        actual[t] == expected[t] or abs(actual[t] - expected[t]) <= slack for t in actual)


def restore(netns: str, tool: str, rules: str) -> None:
    """`iptables-restore --noflush` (or ip6tables-restore) of `rules` in the namespace."""
    in_ns(netns, f"{tool}-restore", "--noflush", stdin=rules)


def load_contrib_rules(netns: str) -> None:
    for tool, path in RULES.items():
        restore(netns, tool, path.read_text())


# ------------------------------------------------------------ without a kernel


def test_options_are_checked() -> None:
    for options in ({"set_name": "9lives"}, {"set_name": "a" * 26}, {"set_name": "a b"},
                    {"maxelem": "lots"}, {"maxelem": 0}):
        with pytest.raises(BackendError, match=r"^ipset: "):
            IpsetBackend(**options)
    backend = create("ipset", set_name="mail", maxelem="5000")  # flags give strings
    assert isinstance(backend, IpsetBackend) and backend.kernel_expiry
    assert (backend.sets, backend.maxelem) == ({4: "mail4", 6: "mail6"}, 5000)
    backend.stop()
    backend.stop()
    with pytest.raises(BackendError, match="stopped"):
        backend.list()


# ------------------------------------------------------------ in the kernel


@requires_netns
@requires_ipset
def test_start_creates_the_sets_and_starting_again_keeps_their_elements(netns: str) -> None:
    now = time.time()
    changes = [Change(True, target, now + 600) for target in HOSTS_AND_PREFIXES]
    run_in(netns, session, [("start",), ("apply", changes, now), ("start",)], {"maxelem": 5000})
    run_in(netns, session, [("start",)], {"maxelem": 5000})
    sets = kernel(netns)
    assert sets.keys() == {"syslogban4", "syslogban6"}
    for name, family in (("syslogban4", "inet"), ("syslogban6", "inet6")):
        assert (sets[name]["type"], sets[name]["family"]) == ("hash:net", family)
        assert (sets[name]["timeout"], sets[name]["maxelem"]) == ("0", "5000")
    assert members(netns).keys() == set(HOSTS_AND_PREFIXES)


@requires_netns
@requires_ipset
def test_blocks_and_unblocks_hosts_and_prefixes_of_both_families(netns: str) -> None:
    now = time.time()
    blocks = {target: now + 600 + i for i, target in enumerate(HOSTS_AND_PREFIXES)}
    unblocks = ["198.51.100.0/24", "2001:db8::1", "203.0.113.9"]   # the last never blocked
    _, _, listed, _, after = run_in(netns, session, [
        ("start",), ("apply", [Change(True, t, u) for t, u in blocks.items()], now),
        ("list",), ("apply", [Change(False, t, 0.0) for t in unblocks], now), ("list",)])
    assert near(listed, blocks)
    assert near(after, {"192.0.2.1": now + 600, "2001:db8:1::/48": now + 603})
    assert members(netns).keys() == {"192.0.2.1", "2001:db8:1::/48"}
    assert abs(members(netns)["2001:db8:1::/48"] - 603) <= 2


@requires_netns
@requires_ipset
def test_blocking_again_sets_the_new_end(netns: str) -> None:
    now = time.time()
    results = run_in(netns, session, [("start",)] + [
        call for until in (now + 600, now + 60, PERMANENT, now + 300, now + 100 * 86400)
        for call in (("apply", [Change(True, "192.0.2.7", until)], now), ("list",))])
    ends = {str(i): result["192.0.2.7"] for i, result in enumerate(results[2::2])}
    assert near(ends, {str(i): until for i, until in enumerate(
        [now + 600, now + 60, PERMANENT, now + 300, now + MAX_TIMEOUT])})
    assert abs(members(netns)["192.0.2.7"] - MAX_TIMEOUT) <= 2   # the kernel's longest


@requires_netns
@requires_ipset
def test_permanent_blocks_have_no_timeout_and_survive_a_restart(netns: str) -> None:
    now = time.time()
    permanent = [Change(True, "198.51.100.0/24", PERMANENT),
                 Change(True, "2001:db8::5", PERMANENT)]
    run_in(netns, session, [("start",), ("apply", permanent, now)])
    assert members(netns) == {"198.51.100.0/24": 0, "2001:db8::5": 0}
    time.sleep(1.1)
    [_, listed] = run_in(netns, session, [("start",), ("list",)])
    assert listed == {"198.51.100.0/24": PERMANENT, "2001:db8::5": PERMANENT}


@requires_netns
@requires_ipset
def test_the_kernel_ends_blocks_on_time(netns: str) -> None:
    now = time.time()
    short = [Change(True, "192.0.2.1", now + 2), Change(True, "2001:db8::/64", now + 2)]
    _, _, listed = run_in(netns, session, [("start",), ("apply", short, now), ("list",)])
    assert near(listed, {"192.0.2.1": now + 2, "2001:db8::/64": now + 2}, slack=1.0)
    time.sleep(3.2 - (time.time() - now))
    assert members(netns) == {}
    assert run_in(netns, session, [("list",)]) == [{}]


@requires_netns
@requires_ipset
def test_a_batch_with_an_invalid_target_changes_nothing(netns: str) -> None:
    now = time.time()
    run_in(netns, session, [("start",), ("apply", [Change(True, "192.0.2.1", PERMANENT)], now)])
    for bad in ("192.0.2.300", "192.0.2.5/24", "0.0.0.0/0", "mail.example.org"):
        batch = [Change(True, "203.0.113.1", now + 60), Change(False, "192.0.2.1", 0.0),
                 Change(True, bad, now + 60)]
        [refused] = run_in(netns, session, [("apply", batch, now)])
        assert isinstance(refused, Refused) and refused.message.startswith("ipset: bad target")
        assert members(netns) == {"192.0.2.1": 0}


@requires_netns
@requires_ipset
def test_a_batch_the_kernel_refuses_midway_is_undone(netns: str) -> None:
    now = time.time()
    before = {"192.0.2.1": now + 600, "192.0.2.2": PERMANENT}
    small = {"maxelem": 3}
    run_in(netns, session, [
        ("start",), ("apply", [Change(True, t, u) for t, u in before.items()], now)], small)
    # Room for two more once 192.0.2.1 is out: the third new block finds the set full,
    # after an unblock, a refresh and two new blocks have been made.
    batch = [Change(False, "192.0.2.1", 0.0), Change(True, "192.0.2.2", now + 30),
             Change(True, "203.0.113.1", now + 60), Change(True, "203.0.113.2", now + 60),
             Change(True, "203.0.113.3", now + 60), Change(True, "2001:db8::1", now + 60)]
    [refused, listed] = run_in(netns, session, [("apply", batch, now), ("list",)], small)
    assert isinstance(refused, Refused)
    assert "cannot add 203.0.113.3 to syslogban4: the set is full" in refused.message
    assert refused.message.endswith("nothing of the batch was kept")
    assert near(listed, before)
    assert near(members(netns), {"192.0.2.1": 600, "192.0.2.2": 0})


@requires_netns
@requires_ipset
def test_sync_after_an_external_flush_holds_exactly_the_active_blocks(netns: str) -> None:
    now = time.time()
    run_in(netns, session, [("start",), ("apply", [
        Change(True, target, now + 600) for target in HOSTS_AND_PREFIXES], now)])
    in_ns(netns, "ipset", "flush", "syslogban4")
    in_ns(netns, "ipset", "add", "syslogban6", "2001:db8::99", "timeout", "0")
    in_ns(netns, "ipset", "create", "syslogban4-sync", "hash:net")   # left by a crash
    active = {"192.0.2.1": now + 600, "203.0.113.0/24": PERMANENT, "2001:db8::1": now + 60,
              "2001:db8:2::/56": now + 120}
    ended = {"192.0.2.99": now - 1}
    [_, _, listed] = run_in(netns, session, [("start",), ("sync", active | ended, now),
                                             ("list",)])
    assert near(listed, active)
    assert near(members(netns), {"192.0.2.1": 600, "203.0.113.0/24": 0, "2001:db8::1": 60,
                                 "2001:db8:2::/56": 120})
    assert kernel(netns).keys() == {"syslogban4", "syslogban6"}


@requires_netns
@requires_ipset
def test_sync_fills_large_sets_and_recreates_destroyed_ones(netns: str) -> None:
    now = time.time()
    active = {f"10.{i >> 8}.{i & 255}.0/24": now + 600 for i in range(1500)}
    active |= {str(ipaddress.ip_address("2001:db8::1") + (i << 80)): PERMANENT
               for i in range(1500)}
    run_in(netns, session, [("start",)])
    in_ns(netns, "ipset", "destroy")
    [refused, _, listed] = run_in(netns, session, [
        ("apply", [Change(True, "192.0.2.1", now + 60)], now), ("sync", active, now),
        ("list",)])
    assert refused.message == ("ipset: cannot add 192.0.2.1 to syslogban4: the set does "
                               "not exist; nothing of the batch was kept")
    # The kernel counts each timeout from when sync wrote it, seconds after
    # `now` on a busy machine: the ends may be that much later (it failed under load).
    assert near(listed, active, slack=3.0 + time.time() - now)
    assert len(members(netns)) == 3000


@requires_netns
@requires_ipset
def test_a_sync_that_cannot_complete_leaves_the_sets_as_they_were(netns: str) -> None:
    now = time.time()
    held = [Change(True, "192.0.2.1", PERMANENT), Change(True, "2001:db8::1", PERMANENT)]
    too_many = {"198.51.100.1": now + 60, "198.51.100.2": now + 60, "198.51.100.3": now + 60}
    [_, _, refused] = run_in(netns, session, [
        ("start",), ("apply", held, now), ("sync", too_many, now)], {"maxelem": 2})
    assert refused == Refused("ipset: cannot fill set syslogban4-sync: the set is full "
                              "(raise the backend option maxelem)")
    assert members(netns) == {"192.0.2.1": 0, "2001:db8::1": 0}
    assert kernel(netns).keys() == {"syslogban4", "syslogban6"}


@requires_netns
@requires_ipset
def test_an_unsuitable_set_of_the_same_name_is_refused_untouched(netns: str) -> None:
    in_ns(netns, "ipset", "create", "syslogban4", "hash:ip", "timeout", "0")
    in_ns(netns, "ipset", "create", "other6", "hash:net", "family", "inet6")   # no timeout
    [refused] = run_in(netns, session, [("start",)])
    assert refused == Refused("ipset: set syslogban4 exists but is hash:ip family inet; "
                              "syslogban needs hash:net family inet with timeout support: "
                              "destroy the set, or give syslogban another set_name")
    [refused] = run_in(netns, session, [("start",)], {"set_name": "other"})
    assert "set other6 exists but is hash:net family inet6 without timeout support;" in (
        refused.message)
    assert kernel(netns)["syslogban4"]["type"] == "hash:ip"


def daemon_like(now: float) -> dict[str, float]:
    """The daemon's calls: start and sync from its running event loop, apply in a thread."""
    async def main() -> dict[str, float]:
        backend = IpsetBackend()
        backend.start()
        backend.sync({"192.0.2.1": now + 600}, now)
        await asyncio.to_thread(backend.apply, [Change(True, "2001:db8::1", now + 60)], now)
        held = backend.list()
        backend.stop()
        return held
    return asyncio.run(main())


@requires_netns
@requires_ipset
def test_calls_from_the_daemons_event_loop_and_threads(netns: str) -> None:
    now = time.time()
    assert near(run_in(netns, daemon_like, now), {"192.0.2.1": now + 600,
                                                 "2001:db8::1": now + 60})


# ------------------------------------------------------------ with the contrib rules


@requires_netns
@requires_ipset
@requires_iptables
def test_every_contrib_rule_loads_and_the_rules_survive_sync_and_flush(netns: str) -> None:
    now = time.time()
    run_in(netns, session, [("start",)])
    for tool, path in RULES.items():   # the active rule and the commented alternatives
        rules = re.findall(r"^#?(-I .*)$", path.read_text(), re.MULTILINE)
        assert len(rules) == 4
        for rule in rules:
            restore(netns, tool, f"*filter\n{rule}\nCOMMIT\n")
        in_ns(netns, tool, "-F")
    load_contrib_rules(netns)
    assert references(netns) == ["1", "1"]
    run_in(netns, session, [("start",), ("sync", {"192.0.2.1": now + 600,
                                                  "2001:db8::1": PERMANENT}, now)])
    assert references(netns) == ["1", "1"]   # the swapped-in sets are the ones in use
    assert members(netns).keys() == {"192.0.2.1", "2001:db8::1"}
    run_in(netns, session, [("stop", True)])
    assert members(netns) == {} and references(netns) == ["1", "1"]
    assert "--match-set syslogban4 src -j DROP" in in_ns(netns, "iptables", "-S", "INPUT")


def connects(source: str, server: str) -> bool:
    """Whether a TCP client bound to `source` reaches a listener on `server` (lo)."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in (source, server):
        v6 = ":" in address
        subprocess.run(["ip", "addr", "replace", f"{address}/{128 if v6 else 32}", "dev", "lo",
                        *(["nodad"] if v6 else [])], check=True)
    with socket.socket(family) as listener, socket.socket(family) as client:
        listener.bind((server, 2525))
        listener.listen()
        client.bind((source, 0))
        client.settimeout(0.5)
        try:
            client.connect((server, 2525))
        except OSError:
            return False
        return True


@requires_netns
@requires_ipset
@requires_iptables
def test_a_blocked_client_cannot_connect(netns: str) -> None:
    now = time.time()
    run_in(netns, session, [("start",), ("apply", [
        Change(True, "192.0.2.1", now + 600), Change(True, "2001:db8::/64", now + 600)], now)])
    load_contrib_rules(netns)
    assert not run_in(netns, connects, "192.0.2.1", "198.51.100.25")
    assert run_in(netns, connects, "192.0.2.2", "198.51.100.25")
    assert not run_in(netns, connects, "2001:db8::1", "2001:db8:25::25")
    assert run_in(netns, connects, "2001:db8:1::1", "2001:db8:25::25")
