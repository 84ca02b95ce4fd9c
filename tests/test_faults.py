"""Faults under load: a firewall that refuses for a while, a full disk, a
control socket under abuse. The daemon must keep protecting, never crash,
and end with the firewall and the state equal."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from system import requires
from test_daemon import Daemon, attack_lines, daemons, start  # noqa: F401 (fixture)

FAKES = Path(__file__).parent / "fakes"


def flaky_pfctl(tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    """A fake pfctl that fails while a switch file exists (the fake records its table)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pfctl-fake"
    fake.write_text(f"#!{sys.executable} -S\n" + (FAKES / "pfctl").read_text().split("\n", 1)[1])
    fake.chmod(0o755)
    switch = tmp / "firewall-down"
    wrapper = bin_dir / "pfctl"
    wrapper.write_text(
        f"#!{sys.executable} -S\nimport os, sys\n"
        f"if os.path.exists({str(switch)!r}):\n"
        f"    sys.stderr.write('pfctl: /dev/pf: Device not configured\\n'); sys.exit(1)\n"
        f"os.execv({str(fake)!r}, [{str(fake)!r}] + sys.argv[1:])\n")
    wrapper.chmod(0o755)
    env = {"SYSLOGBAN_FAKE_LOG": str(tmp / "pfctl.log"),
           "SYSLOGBAN_FAKE_STATE": str(tmp / "pfctl.json")}
    return wrapper, switch, env


def test_a_firewall_down_for_seconds_loses_nothing(tmp_path: Path, daemons: list[Daemon],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper, switch, env = flaky_pfctl(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    d = start(daemons, tmp_path, "--block-time", "1h", "--firewall-check", "1s",
              "--backend-option", f"pfctl={wrapper}", "--backend-option", "system=freebsd",
              backend="pf")
    switch.touch()  # the firewall goes away
    for n in range(30):
        d.send(attack_lines(f"192.0.2.{n + 1}"))
    d.wait_for(lambda: "firewall update failed" in d.log.read_text(), "the failures")
    assert len(d.blocks()) == 30  # decided and committed meanwhile
    time.sleep(2)
    switch.unlink()  # it comes back
    table = tmp_path / "pfctl.json"

    def firewall() -> set[str]:
        return set(json.loads(table.read_text())["tables"].get(":syslogban", [])) \
            if table.exists() else set()
    d.wait_for(lambda: firewall() == set(d.blocks()), "the firewall to equal the state")
    assert len(firewall()) == 30


@requires(os.geteuid() == 0, "needs root to mount a small tmpfs")
def test_a_full_disk_keeps_protection_from_memory_and_loses_nothing(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    """What could not be written waits, and is written once the disk has room:
    a kill -9 after that loses no reported block."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], check=True)
    try:
        d = start(daemons, tmp_path, "--state", str(disk / "state.db"), "--block-time", "1h")
        d.send(attack_lines("192.0.2.1"))
        d.wait_for(lambda: d.reported() == ["192.0.2.1"], "a block on a disk with room")
        with open(disk / "filler", "wb") as f:  # fill the disk
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        for n in range(2, 40):
            d.send(attack_lines(f"192.0.2.{n}"))
        d.wait_for(lambda: len(d.reported()) == 39, "blocks despite the full disk")
        status = json.loads(d.ctl_json("status"))["counters"]
        assert status["state_errors"] >= 1 and status["blocks_active"] == 39
        assert "protection goes on from memory" in d.log.read_text()
        assert d.proc.poll() is None
        (disk / "filler").unlink()  # room again, and no new decision to carry the old ones
        d.wait_for(lambda: "the state file takes writes again" in d.log.read_text(),
                   "the waiting changes written", timeout=30)
        d.proc.kill()
        d.proc.wait()
        again = start(daemons, tmp_path, "--state", str(disk / "state.db"), "--block-time", "1h")
        assert set(again.blocks()) == set(d.reported())
    finally:
        for daemon in daemons:
            daemon.proc.kill()
            daemon.proc.wait()
        subprocess.run(["umount", str(disk)], check=False)


def test_control_socket_abuse_leaves_protection_and_control_alive(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    d = start(daemons, tmp_path)
    idle = []
    for _ in range(200):  # many clients that say nothing
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.control)
        idle.append(s)
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "a block during the abuse")
    for s in idle:
        s.close()
    d.wait_for(lambda: d.ctl("status").returncode == 0, "control after the abuse")
    assert d.proc.poll() is None
