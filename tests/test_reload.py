"""Reload (SIGHUP, `syslogban reload`): it refuses what a start refuses, applies
what it can, names what waits for a restart, and reopens the log file."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from netns import netns, nft_json, requires_netns  # noqa: F401 (fixture)
from test_daemon import ROOT, SYSLOGBAN, Daemon, attack_lines, daemons, start  # noqa: F401


def test_reload_refuses_what_run_refuses_and_keeps_running(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    config = tmp_path / "syslogban.toml"
    config.write_text('backend = "null"\n')
    d = start(daemons, tmp_path, "--config", str(config), backend=None)
    config.write_text('backend = "iptables"\n[services.dovcot]\nattempts = 3\n')
    failed = d.ctl("reload")
    assert failed.returncode == 2 and "previous configuration kept" in failed.stderr
    assert f"{config}: backend: unknown firewall backend 'iptables'" in failed.stderr
    assert f"{config}: services.dovcot: no rule file has a service dovcot" in failed.stderr
    logged = d.log.read_text().splitlines()  # a line each, as grep and the journal see them
    assert any(line.endswith("reload failed, the previous configuration stays in force "
                             "(2 problems):") for line in logged), logged
    assert any(line.endswith(f"reload failed: {config}: backend: unknown firewall backend "
                             "'iptables' (one of: ipfw, ipset, nftables, null, pf)")
               for line in logged), logged
    assert any(f"ERROR syslogban: reload failed: {config}: services.dovcot: no rule file "
               "has a service dovcot (did you mean dovecot?" in line for line in logged), logged
    d.send(attack_lines("192.0.2.1"))  # still running, with the old configuration
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "a block with the old configuration")
    refused = subprocess.run([*SYSLOGBAN, "run", "--stdin", "--config", str(config),
                              "--state", str(tmp_path / "other.db"), "--control", ""],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, input="")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == failed.stderr.splitlines()[1:]


def test_reload_names_the_changes_that_wait_for_a_restart(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    config = tmp_path / "syslogban.toml"
    config.write_text('backend = "null"\n')
    d = start(daemons, tmp_path, "--config", str(config), backend=None)
    config.write_text('backend = "null"\nwindow = "1h"\nlisten = ["udp://127.0.0.1:5599"]\n'
                      '[notify]\nsmtp_port = 2525\n')
    answer = d.ctl("reload")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines()[1:] == [
        "changed, but applied only at the next start (restart syslogban): listen, notify"]
    assert json.loads(d.ctl("reload", "--json").stdout)["restart_needed"] == [
        "listen", "notify"]
    assert json.loads(d.ctl("status", "--json").stdout)["config"]["window"] == "1h"


def test_sighup_reopens_the_log_file(tmp_path: Path, daemons: list[Daemon]) -> None:
    log = tmp_path / "syslogban.log"
    d = start(daemons, tmp_path, "--log-file", str(log))
    d.wait_for(lambda: log.exists() and "restored" in log.read_text(), "the first line")
    log.rename(tmp_path / "syslogban.log.1")  # logrotate, newsyslog
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: log.exists() and "reloaded" in log.read_text(), "the reopened file")
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: "blocked 192.0.2.1" in log.read_text(), "a block in the new file")
    assert "reloaded" not in (tmp_path / "syslogban.log.1").read_text()


@requires_netns
def test_reload_applies_the_driver_options(
        netns: str, tmp_path: Path, daemons: list[Daemon]) -> None:
    config = tmp_path / "syslogban.toml"
    config.write_text('[backend_options]\nports = ["smtp"]\n')
    d = start(daemons, tmp_path, "--config", str(config), backend="nftables",
              wrap=("ip", "netns", "exec", netns))
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the block")

    def ports() -> set[str]:
        rules = nft_json(netns, "list", "chain", "inet", "syslogban", "input")["nftables"]
        return {str(port) for item in rules if "rule" in item
                for match in item["rule"]["expr"] if "match" in match
                and match["match"]["left"].get("payload", {}).get("field") == "dport"
                for port in _values(match["match"]["right"])}

    assert ports() == {"25"}
    config.write_text('[backend_options]\nports = ["smtp", "imaps"]\n')
    answer = d.ctl("reload")
    assert answer.returncode == 0 and "backend options applied" in answer.stdout
    assert ports() == {"25", "993"}
    assert "192.0.2.1" in str(nft_json(netns, "list", "set", "inet", "syslogban", "hosts4"))


def _values(right: object) -> list[object]:
    if isinstance(right, dict) and "set" in right:
        return list(right["set"])
    return [right]


def _attacks_seen(d: Daemon) -> int:
    return json.loads(d.ctl_json("status"))["counters"]["blocker"]["attacks"]


def test_a_reload_keeps_the_scores_in_progress(tmp_path: Path, daemons: list[Daemon]) -> None:
    """2 attacks, reload, 1 attack: blocked (the default policy blocks at 3)."""
    d = start(daemons, tmp_path)
    first, second, third = attack_lines("192.0.2.1").splitlines(keepends=True)
    d.send(first + second)
    d.wait_for(lambda: _attacks_seen(d) == 2, "two attacks")
    answer = d.ctl("reload")
    assert answer.returncode == 0, answer.stderr
    d.send(third)
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the block after the reload")


def test_no_attacker_is_missed_in_a_sighup_storm(tmp_path: Path, daemons: list[Daemon]) -> None:
    """Log rotation reloads too (rsyslog's hup.signal): SIGHUP every 50 ms while
    300 attackers send their 3 attacks each, interleaved, in writes that each
    wait for one more reload to be done. Every attacker is blocked (33 of 757
    were never, in an outside test)."""
    import threading
    d = start(daemons, tmp_path, "--block-time", "1h")
    attackers = [f"198.51.100.{n}" for n in range(1, 151)] + [
        f"203.0.113.{n}" for n in range(1, 151)]
    lines = [attack_lines(a).splitlines(keepends=True) for a in attackers]
    stop = threading.Event()

    def reloads() -> int:
        return d.log.read_text().count("reloaded: ")

    def hup() -> None:
        while not stop.wait(0.05):
            d.proc.send_signal(signal.SIGHUP)

    thread = threading.Thread(target=hup)
    thread.start()
    try:
        for n in range(3):  # every attacker's first attack, then the second, the third
            for first in range(0, len(attackers), 60):
                done = reloads()
                d.send(b"".join(line[n] for line in lines[first:first + 60]))
                d.wait_for(lambda: reloads() > done, "one more reload")  # noqa: B023
    finally:
        stop.set()
        thread.join()
    d.wait_for(lambda: _attacks_seen(d) == 3 * len(attackers), "every attack read")
    missed = set(attackers) - set(d.blocks())
    assert not missed, (f"{len(missed)} of {len(attackers)} attackers never blocked "
                        f"({reloads()} reloads)")
