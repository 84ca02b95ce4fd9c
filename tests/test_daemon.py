"""The daemon end to end: a real `syslogban run --stdin` process, its state file,
its control socket, its signals."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYSLOGBAN = [sys.executable, "-m", "syslogban"]
BLOCKED = re.compile(r"WARNING syslogban: blocked (\S+) for")


def attack_lines(address: str, count: int = 3, program: str = "postfix/smtpd") -> bytes:
    return b"".join(
        f"Nov 21 10:00:0{n % 10} mx {program}[{100 + n}]: warning: unknown[{address}]: "
        f"SASL LOGIN authentication failed: UGFzc3dvcmQ6\n".encode() for n in range(count))


class Daemon:
    """One `syslogban run --stdin` with private state, control socket and log."""

    def __init__(self, tmp: Path, *args: str, backend: str | None = "null",
                 wrap: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        self.control = str(tmp / "control.sock")
        self.log = tmp / "daemon.log"
        argv = [*wrap, *SYSLOGBAN, "run", "--stdin",
                *(("--backend", backend) if backend else ()), "--state", str(tmp / "state.db"),
                "--control", self.control, "--batch-delay", "0.001",
                "--allow-own-addresses", "false", *args]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, cwd=ROOT,
                                     stderr=open(self.log, "ab"), stdout=subprocess.DEVNULL)
        self.wait_for(self.answers, "the control socket")

    def answers(self) -> bool:
        import socket
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(self.control)
            except OSError:  # not there yet, or a stale one left by a killed daemon
                return False
        return True

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SYSLOGBAN, *args, "--control", self.control], cwd=ROOT,
                              capture_output=True, text=True, timeout=30, check=False)

    def ctl_json(self, command: str) -> str:
        """The daemon's raw JSON answer (status as data, not as text)."""
        from syslogban.control import request
        return json.dumps(request(self.control, {"command": command}))

    def blocks(self) -> dict[str, dict[str, object]]:
        result = self.ctl("list", "--json")
        assert result.returncode == 0, result.stderr
        return {b["target"]: b for b in json.loads(result.stdout)["blocks"]}

    def reported(self) -> list[str]:
        return BLOCKED.findall(self.log.read_text())

    def wait_for(self, condition, what: str, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) waiting for "
                                     f"{what}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log.read_text()}")
            time.sleep(0.02)

    def close(self) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        return self.proc.wait(timeout=30)


@pytest.fixture()
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def start(daemons: list[Daemon], tmp: Path, *args: str, backend: str | None = "null",
          wrap: tuple[str, ...] = ()) -> Daemon:
    daemon = Daemon(tmp, *args, backend=backend, wrap=wrap)
    daemons.append(daemon)
    return daemon


def test_stdin_attacks_block_and_eof_stops_cleanly(tmp_path: Path, daemons: list[Daemon]) -> None:
    d = start(daemons, tmp_path)
    d.send(attack_lines("192.0.2.1") + attack_lines("198.51.100.2", count=2))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the block")
    blocks = d.blocks()
    assert list(blocks) == ["192.0.2.1"]
    assert blocks["192.0.2.1"]["duration"] == "2m" and blocks["192.0.2.1"]["score"] == 30
    assert d.close() == 0
    assert "blocks kept in place" in d.log.read_text()
    mode = stat.S_IMODE(os.stat(tmp_path / "state.db").st_mode)
    assert mode == 0o600


def test_restart_keeps_blocks_and_escalation(tmp_path: Path, daemons: list[Daemon]) -> None:
    d = start(daemons, tmp_path)
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: d.reported(), "the block")
    assert d.close() == 0
    again = start(daemons, tmp_path)
    assert list(again.blocks()) == ["192.0.2.1"]
    assert "1 blocks restored" in again.log.read_text()
    assert again.ctl("unblock", "192.0.2.1").returncode == 0
    again.send(attack_lines("192.0.2.1"))
    again.wait_for(lambda: len(again.reported()) == 2, "the second block")
    block = again.blocks()["192.0.2.1"]
    assert (block["nth"], block["duration"]) == (2, "4m")


def test_nothing_reported_is_lost_after_sigkill(tmp_path: Path, daemons: list[Daemon]) -> None:
    d = start(daemons, tmp_path, "--block-time", "1h")
    for n in range(60):
        d.send(attack_lines(f"192.0.2.{n + 1}"))
        if n == 30:
            d.wait_for(lambda: len(d.reported()) >= 20, "some blocks")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    reported = set(d.reported())
    assert len(reported) >= 20
    again = start(daemons, tmp_path, "--block-time", "1h")
    assert reported <= set(again.blocks())


def test_control_commands(tmp_path: Path, daemons: list[Daemon]) -> None:
    d = start(daemons, tmp_path)
    d.send(attack_lines("192.0.2.1", count=2))
    d.wait_for(lambda: "192.0.2.1" in d.ctl("why", "192.0.2.1").stdout, "the evidence")
    why = d.ctl("why", "192.0.2.1").stdout
    assert re.search(r"^blocked +no$", why, re.M) and "SASL LOGIN authentication failed" in why
    block = d.ctl("block", "203.0.113.0/24", "--for", "1h")
    assert block.returncode == 0 and block.stdout.startswith("blocked 203.0.113.0/24 until ")
    assert d.blocks()["203.0.113.0/24"]["duration"] == "1h"
    refused = d.ctl("block", "127.0.0.5")
    assert refused.returncode == 2 and "allow-listed" in refused.stderr
    assert "allow-listed and never blocked" in d.ctl("unblock", "127.0.0.1").stderr
    assert "not blocked" in d.ctl("unblock", "198.51.100.7").stderr
    assert "not an IP address" in d.ctl("why", "mail.example.org").stderr
    assert d.ctl("unblock", "203.0.113.0/24").returncode == 0
    assert d.blocks() == {}
    status = d.ctl("status").stdout
    assert "backend null" in status
    assert re.search(r"^records read +2$", status, re.M)
    assert re.search(r"^records parsed +2$", status, re.M)


def test_status_reports_records_without_a_program_tag(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    d = start(daemons, tmp_path)
    lost = ("Nov 21 10:00:01 mx odd header: warning: unknown[192.0.2.9]: "
            "SASL LOGIN authentication failed: UGFzc3dvcmQ6")
    d.send(f"{lost}\nNov 21 10:00:02 mx no signature's words here\n".encode())
    d.wait_for(lambda: re.search(r"^records read +2$", d.ctl("status").stdout, re.M),
               "the records")
    status = d.ctl("status").stdout
    assert "untagged       1 record without a program tag (no signature can apply)" in status
    assert f"  e.g. {lost}" in status
    counters = json.loads(d.ctl_json("status"))["counters"]
    assert (counters["records_untagged"], counters["untagged_sample"]) == (1, lost)


def test_the_daemon_scores_attempts_and_why_groups_them(tmp_path: Path,
                                                         daemons: list[Daemon]) -> None:
    """Two failed SMTP logins, three lines each (warning, hang-up, statistics):
    two attempts, never a block (lines scored one by one would block)."""
    d = start(daemons, tmp_path)
    client = "unknown[192.0.2.9]"
    session = (f"Nov 21 10:00:01 mx postfix/smtpd[7]: warning: {client}: SASL LOGIN "
               "authentication failed: UGFzc3dvcmQ6\n"
               f"Nov 21 10:00:01 mx postfix/smtpd[7]: lost connection after AUTH from {client}\n"
               f"Nov 21 10:00:01 mx postfix/smtpd[7]: disconnect from {client} ehlo=1 auth=0/1 "
               "commands=1/2\n")
    d.send((session * 2).encode())
    d.wait_for(lambda: re.search(r"^attempts +2 postfix", d.ctl("why", "192.0.2.9").stdout,
                                 re.M), "2 attempts")
    why = d.ctl("why", "192.0.2.9").stdout
    assert re.search(r"^blocked +no$", why, re.M), why
    assert re.findall(r"^  (\d+)\. postfix$", why, re.M) == ["1", "2"], why
    assert why.count("lost connection after AUTH") == 2 and d.blocks() == {}
    d.send(session.encode())  # the third failed login
    d.wait_for(lambda: "192.0.2.9" in d.blocks(), "the block at the third")
    status = json.loads(d.ctl_json("status"))
    assert status["counters"]["attempts"]["attempts"] == 3


def test_why_unblock_and_block_know_prefix_blocks(tmp_path: Path,
                                                  daemons: list[Daemon]) -> None:
    d = start(daemons, tmp_path)
    assert d.ctl("block", "203.0.113.0/24", "--for", "1h").returncode == 0
    why = d.ctl("why", "203.0.113.7")
    assert why.returncode == 0 and "(as part of 203.0.113.0/24)" in why.stdout, why.stderr
    shorter = d.ctl("block", "203.0.113.0/24", "--for", "10m")
    assert shorter.returncode == 2 and "say --replace" in shorter.stderr
    assert "is already blocked until " in shorter.stderr
    assert "(a 1h block: by an admin)" in shorter.stderr
    replaced = d.ctl("block", "203.0.113.0/24", "--for", "10m", "--replace", "--json")
    assert replaced.returncode == 0
    assert json.loads(replaced.stdout)["replaced"]["duration"] == "1h"
    assert d.blocks()["203.0.113.0/24"]["duration"] == "10m"
    lifted = d.ctl("unblock", "203.0.113.7", "--json")
    assert lifted.returncode == 0, lifted.stderr
    assert json.loads(lifted.stdout) == {"unblocked": "203.0.113.0/24", "covered": "203.0.113.7"}
    assert d.blocks() == {}


def test_reload_with_a_broken_rule_file_keeps_the_old_rules(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    good = (ROOT / "rules" / "postfix.toml").read_text()
    (rules / "postfix.toml").write_text(good)
    d = start(daemons, tmp_path, "--rules", str(rules))
    (rules / "postfix.toml").write_text(good.replace("pattern =", "patern =", 1))
    failed = d.ctl("reload")
    assert failed.returncode == 2 and "previous configuration kept" in failed.stderr
    assert "unknown key 'patern'" in failed.stderr
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "a block with the old rules")
    (rules / "postfix.toml").write_text(good)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: "reloaded:" in d.log.read_text(), "SIGHUP reload")


def test_control_socket_survives_garbage(tmp_path: Path, daemons: list[Daemon]) -> None:
    import socket
    d = start(daemons, tmp_path)
    payloads = {b"garbage\n": "bad request", b"{\"no\": 1}\n": "bad request",
                b"[1,2]\n": "bad request", b"x" * 200_000 + b"\n": "bad request",
                b"{\"command\": \"frobnicate\"}\n": "unknown command"}
    for payload, error in payloads.items():
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(d.control)
            try:
                s.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon stopped reading the oversized request: its answer is there
            answer = json.loads(s.makefile().readline())
            assert answer["ok"] is False and error in answer["error"]
    assert d.ctl("status").returncode == 0


def test_a_second_daemon_does_not_steal_the_socket(tmp_path: Path, daemons: list[Daemon]) -> None:
    start(daemons, tmp_path)
    second = subprocess.run([*SYSLOGBAN, "run", "--stdin", "--backend", "null",
                             "--state", str(tmp_path / "other.db"),
                             "--control", str(tmp_path / "control.sock")],
                            capture_output=True, text=True, timeout=30, cwd=ROOT,
                            stdin=subprocess.DEVNULL)
    assert second.returncode == 2 and "another syslogban is running" in second.stderr


def test_expired_blocks_are_released(tmp_path: Path, daemons: list[Daemon]) -> None:
    d = start(daemons, tmp_path, "--block-time", "1s")
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: d.reported(), "the block")
    d.wait_for(lambda: "unblocked 192.0.2.1" in d.log.read_text(), "the release")
    assert d.blocks() == {}


def test_metrics_textfile(tmp_path: Path, daemons: list[Daemon]) -> None:
    metrics = tmp_path / "syslogban.prom"
    d = start(daemons, tmp_path, "--metrics-file", str(metrics), "--metrics-interval", "1s")
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(metrics.exists, "the metrics file")
    d.wait_for(lambda: "syslogban_blocks_total 1" in metrics.read_text(), "a counted block")
    text = metrics.read_text()
    assert "# TYPE syslogban_records_read_total counter" in text
    assert 'syslogban_attacks_total{signature="postfix.sasl-auth-failed"} 3' in text


def test_a_metrics_file_that_cannot_be_written_stops_nothing(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    """Its directory gone: one error line, the housekeeping goes on (the firewall
    checks share its loop), and the file is written again once it can be."""
    where = tmp_path / "metrics"
    where.mkdir()
    metrics = where / "syslogban.prom"
    d = start(daemons, tmp_path, "--metrics-file", str(metrics), "--metrics-interval", "1s")
    d.wait_for(metrics.exists, "the metrics file")
    shutil.rmtree(where)
    d.wait_for(lambda: "cannot write the metrics file" in d.log.read_text(), "the error")
    where.mkdir()
    d.wait_for(metrics.exists, "the metrics file written again")
    assert d.log.read_text().count("cannot write the metrics file") == 1
    assert "the metrics file is written again" in d.log.read_text()


def test_block_runs_the_exec_hook_with_the_address_as_its_own_argument(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    record = tmp_path / "hook.out"
    hook = tmp_path / "on-block"
    hook.write_text(f"#!{sys.executable}\nimport sys, os\n"
                    f"open({str(record)!r}, 'a').write(repr(sys.argv[1:]) + "
                    f"os.environ['SYSLOGBAN_REASON'] + '\\n')\n")
    hook.chmod(0o755)
    d = start(daemons, tmp_path, "--notify", f"exec_argv={hook},--")
    d.send(attack_lines("192.0.2.1"))
    # the hook creates its file, then writes: wait for the whole line
    d.wait_for(lambda: record.exists() and record.read_text().endswith("\n"), "the hook")
    assert record.read_text() == "['--', '192.0.2.1']score\n"


def test_a_bad_notify_table_is_a_configuration_error(tmp_path: Path) -> None:
    result = subprocess.run([*SYSLOGBAN, "run", "--backend", "null",
                             "--notify", "exec_argv=relative/path",
                             "--state", str(tmp_path / "s.db")],
                            capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 2 and "command line: notify.exec_argv: " in result.stderr


def test_control_refuses_absurd_durations_and_targets_never_blocked(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    """Straight to the socket (the command line refuses them before): each
    gets an error answer, nothing reaches the state, the daemon goes on."""
    from syslogban.control import ControlError, request
    d = start(daemons, tmp_path)
    for target, duration, message in [
            ("192.0.2.1", "99999999999999999999d", "longer than 3650d (10 years)"),
            ("192.0.2.1", "100000w", "longer than 3650d"), ("192.0.2.1", 1e30, "longer than"),
            ("0.0.0.0", "1h", "unspecified address"), ("255.255.255.255", "1h", "broadcast"),
            ("224.0.0.1", "1h", "multicast"), ("ff02::1", "1h", "multicast"),
            ("fe80::1", "1h", "link-local"), ("0.0.0.0/0", "1h", "covers the unspecified")]:
        with pytest.raises(ControlError, match=re.escape(message)):
            request(d.control, {"command": "block", "target": target, "for": duration})
    assert d.blocks() == {}
    assert d.ctl("block", "192.0.2.1", "--for", "3650d").returncode == 0
    assert d.blocks()["192.0.2.1"]["duration"] == "3650d"


def test_a_request_that_breaks_a_command_is_answered_and_logged(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    """JSON nested past Python's recursion limit, a duration of the wrong type:
    each gets an error answer at once (not the client's timeout) and the
    daemon goes on."""
    import socket
    d = start(daemons, tmp_path)
    payloads = {b"[" * 100_000 + b"\n": "bad request",
                b'{"command": "block", "target": "192.0.2.9", "for": {"a": 1}}\n':
                    "is not a duration",
                b'{"command": "block", "target": "192.0.2.9", "for": null}\n':
                    "is not a duration"}
    for payload, error in payloads.items():
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(d.control)
            s.sendall(payload)
            answer = json.loads(s.makefile().readline())
            assert answer["ok"] is False and error in answer["error"], answer
    d.send(attack_lines("192.0.2.1"))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "a block after the requests")
    assert "Traceback" not in d.log.read_text()


@pytest.mark.parametrize("source", ["file", "devnull"])
def test_stdin_from_a_file_or_dev_null_is_read_to_its_end(tmp_path: Path, source: str) -> None:
    """Not a pipe: epoll cannot watch a file or /dev/null, so they are read in a
    thread; the daemon decides on what they hold and stops at their end."""
    path = tmp_path / "attacks.log"
    path.write_bytes(attack_lines("192.0.2.1"))
    stdin = path if source == "file" else Path(os.devnull)
    with open(stdin, "rb") as f:
        result = subprocess.run(
            [*SYSLOGBAN, "run", "--stdin", "--backend", "null", "--state",
             str(tmp_path / "state.db"), "--control", str(tmp_path / "control.sock"),
             "--allow-own-addresses", "false"],
            stdin=f, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    blocked = "blocked 192.0.2.1 for 2m" in result.stderr
    assert blocked == (source == "file"), result.stderr


def test_an_empty_omprog_input_at_start_is_a_clean_stop(tmp_path: Path) -> None:
    """`run --omprog </dev/null` (--stdin's is the test above): /dev/null cannot
    be polled; its end at once is the end of input, not a traceback and a
    daemon that never exits."""
    with open(os.devnull, "rb") as devnull:
        result = subprocess.run([*SYSLOGBAN, "run", "--omprog", "--backend", "null",
                                 "--state", str(tmp_path / "state.db"),
                                 "--control", str(tmp_path / "control.sock")],
                                stdin=devnull, cwd=ROOT, capture_output=True, text=True,
                                timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr
    assert "syslogban stopped" in result.stderr
