"""The daemon with the nftables backend, in a network namespace of its own:
what it reports is what the kernel holds, across flushes, kills and restarts."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from netns import netns, nft_json, requires_netns, requires_nft  # noqa: F401 (fixture)
from test_daemon import Daemon, attack_lines, daemons, start  # noqa: F401 (fixture)

pytestmark = [requires_netns, requires_nft]


def kernel_hosts(ns: str) -> set[str]:
    found = set()
    for item in nft_json(ns, "list", "set", "inet", "syslogban", "hosts4")["nftables"]:
        for elem in item.get("set", {}).get("elem", []):
            found.add(elem["elem"]["val"] if isinstance(elem, dict) else elem)
    return found


def run_nft(ns: str, tmp: Path, daemons: list[Daemon], *args: str) -> Daemon:
    return start(daemons, tmp, "--firewall-check", "1s", *args, backend="nftables",
                 wrap=("ip", "netns", "exec", ns))


def test_blocks_reach_the_kernel_and_survive_a_flush(
        netns: str, tmp_path: Path, daemons: list[Daemon]) -> None:
    d = run_nft(netns, tmp_path, daemons)
    d.send(attack_lines("192.0.2.1") + attack_lines("192.0.2.2"))
    d.wait_for(lambda: len(d.reported()) == 2, "two blocks")
    assert kernel_hosts(netns) == {"192.0.2.1", "192.0.2.2"}
    subprocess.run(["ip", "netns", "exec", netns, "nft", "flush", "ruleset"], check=True)
    d.wait_for(lambda: "repairing" in d.log.read_text(), "the repair")
    d.wait_for(lambda: _quiet(kernel_hosts, netns) == {"192.0.2.1", "192.0.2.2"},
               "the restored set")


def test_sigkill_and_restart_kernel_equals_state(
        netns: str, tmp_path: Path, daemons: list[Daemon]) -> None:
    d = run_nft(netns, tmp_path, daemons, "--block-time", "1h")
    for n in range(40):
        d.send(attack_lines(f"192.0.2.{n + 1}"))
    d.wait_for(lambda: len(d.reported()) >= 20, "blocks")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    reported = set(d.reported())
    assert reported <= kernel_hosts(netns)  # a killed daemon leaves its blocks in place
    again = run_nft(netns, tmp_path, daemons, "--block-time", "1h")
    assert reported <= set(again.blocks())
    assert kernel_hosts(netns) == set(again.blocks())


def test_manual_block_and_unblock_in_the_kernel(
        netns: str, tmp_path: Path, daemons: list[Daemon]) -> None:
    d = run_nft(netns, tmp_path, daemons)
    assert d.ctl("block", "198.51.100.7", "--for", "1h").returncode == 0
    assert kernel_hosts(netns) == {"198.51.100.7"}
    assert d.ctl("unblock", "198.51.100.7").returncode == 0
    assert kernel_hosts(netns) == set()


def _quiet(func, *args):  # type: ignore[no-untyped-def]
    try:
        return func(*args)
    except subprocess.CalledProcessError:  # the table is not there (yet)
        return None


def test_running_as_nobody_with_only_net_admin_still_blocks(
        netns: str, tmp_path: Path, daemons: list[Daemon]) -> None:
    """The process that parses attacker text holds no root and one capability."""
    from syslogban.privileges import CAP_NET_ADMIN, capabilities
    d = run_nft(netns, tmp_path, daemons, "--user", "nobody")
    d.wait_for(lambda: "running as nobody" in d.log.read_text(), "the drop")
    status = Path(f"/proc/{d.proc.pid}/status").read_text()
    uids = [line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")][0]
    assert set(uids) == {"65534"}
    caps = capabilities(d.proc.pid)
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == 1 << CAP_NET_ADMIN
    assert caps["CapInh"] == caps["CapAmb"] == 0
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "a block as nobody")
    assert kernel_hosts(netns) == {"192.0.2.1"}
    assert d.ctl("block", "198.51.100.7", "--for", "1h").returncode == 0
    assert kernel_hosts(netns) == {"192.0.2.1", "198.51.100.7"}


def test_a_row_the_firewall_would_refuse_does_not_stop_the_restore(
        netns: str, tmp_path: Path, daemons: list[Daemon]) -> None:
    """An older syslogban stored a block of a million years: nftables refuses
    such a timeout, and used to refuse the whole restore with it. That row
    is skipped and logged; every other block is restored, and new ones come."""
    import sqlite3
    import time

    from syslogban.state import State
    State(tmp_path / "state.db").close()
    db = sqlite3.connect(tmp_path / "state.db")
    now = time.time()
    rows = [("192.0.2.10", now, now + 3600), ("192.0.2.11", now, now + 1e20),
            ("192.0.2.12", now, None), ("224.0.0.1", now, now + 3600)]
    db.executemany("INSERT INTO blocks (target, since, until, reason, score, signatures, nth,"
                   " lifetime, evidence) VALUES (?, ?, ?, 'manual', 0, '[]', 1, 0, '[]')", rows)
    db.commit()
    db.close()
    d = run_nft(netns, tmp_path, daemons)
    assert kernel_hosts(netns) == {"192.0.2.10", "192.0.2.12"}
    assert set(d.blocks()) == {"192.0.2.10", "192.0.2.12"}
    log = d.log.read_text()
    assert "'192.0.2.11' not restored: ends 1e+20 s from now" in log
    assert "'224.0.0.1' not restored" in log and "2 rows not restored" in log
    assert json.loads(d.ctl_json("status"))["counters"]["restore_skipped"] == 2
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: "192.0.2.1" in kernel_hosts(netns), "a new block")


def test_reload_after_a_flush_repairs_the_firewall_at_once(
        netns: str, tmp_path: Path, daemons: list[Daemon]) -> None:
    """`nft flush ruleset`, then `syslogban reload`: the answer comes at once and
    the table, its sets, its rules and the blocks are back when it does (the
    periodic check is an hour away; the reload synced into a table that was
    gone and the client waited for nothing)."""
    from syslogban.control import request
    d = start(daemons, tmp_path, "--firewall-check", "1h", backend="nftables",
              wrap=("ip", "netns", "exec", netns))
    d.send(attack_lines("192.0.2.1") + attack_lines("192.0.2.2"))
    d.wait_for(lambda: len(d.reported()) == 2, "two blocks")
    rules = _rules(netns)
    assert any("@hosts4" in rule for rule in rules)
    subprocess.run(["ip", "netns", "exec", netns, "nft", "flush", "ruleset"], check=True)
    began = time.monotonic()
    answer = request(d.control, {"command": "reload"})
    took = time.monotonic() - began
    assert answer["ok"] is True, answer
    assert kernel_hosts(netns) == {"192.0.2.1", "192.0.2.2"}
    assert _rules(netns) == rules
    print(f"reload after a flush answered in {took * 1000:.0f} ms")
    assert took < 5  # the client gives up after 10 s
    assert "ERROR" not in d.log.read_text() and "Traceback" not in d.log.read_text()


def test_a_firewall_that_refuses_the_reload_is_an_error_answer_and_one_line(
        netns: str, tmp_path: Path, daemons: list[Daemon]) -> None:
    """A set of ours that someone replaced by one of another type: nftables
    refuses to set the table up again. The client hears why at once, the log
    says it once, and the next reload after the admin's fix repairs it."""
    from syslogban.control import ControlError, request
    d = start(daemons, tmp_path, "--firewall-check", "1h", backend="nftables",
              wrap=("ip", "netns", "exec", netns))
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the block")
    nft = ["ip", "netns", "exec", netns, "nft"]
    subprocess.run([*nft, "flush ruleset; add table inet syslogban; "
                    "add set inet syslogban hosts4 { type inet_service; }"], check=True)
    with pytest.raises(ControlError) as refused:
        request(d.control, {"command": "reload"})
    assert str(refused.value).startswith(
        "reloaded, but the firewall refused to be set up (the next firewall check "
        "retries): nftables: creating the table, sets and chains refused: "), refused.value
    log = d.log.read_text()
    assert len([line for line in log.splitlines() if " ERROR " in line]) == 1, log
    assert "Traceback" not in log
    subprocess.run([*nft, "delete", "table", "inet", "syslogban"], check=True)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: _quiet(kernel_hosts, netns) == {"192.0.2.1"}, "the repair")


def _rules(ns: str) -> list[str]:
    """The rules of our input chain, as nft prints them."""
    listing = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "chain", "inet",
                              "syslogban", "input"], capture_output=True, text=True,
                             check=True).stdout
    return [line.strip() for line in listing.splitlines() if "@" in line]
