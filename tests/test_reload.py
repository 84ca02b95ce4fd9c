"""Reload (SIGHUP, `syslogban reload`): it refuses what a start refuses, applies
what it can, names what waits for a restart, and reopens the log file."""

from __future__ import annotations

import json
import signal
import subprocess
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
