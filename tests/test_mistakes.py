"""An admin's mistakes (wrong paths, missing daemon, no rights): one clear line
each, exit status 2, nothing lost, never a traceback or an errno in brackets."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from system import requires
from test_daemon import ROOT, Daemon, daemons, start

__all__ = ["daemons"]  # the fixture, shared with test_daemon

LEAKS = ("Traceback", "[Errno", "Errno ")


def syslogban(*args: str, stdin: int | None = None, user: str | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "syslogban", *args]
    if user is not None:  # only the right to read and search any directory kept (the
        # clone and its venv may live under root's 0700 home); writing still needs rights
        group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
        argv = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups",
                "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--", *argv]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, stdin=stdin,
                            timeout=timeout, check=False)
    for leak in LEAKS:
        assert leak not in result.stderr, result.stderr
    return result


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("syslogban: error: "), result.stderr
    return lines[0]


def test_a_control_path_that_is_no_socket_is_never_removed(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me\n")
    args = ("--backend", "null", "--state", str(tmp_path / "state.db"),
            "--control", str(precious))
    with open(os.devnull, "rb") as nothing:
        started = syslogban("run", "--stdin", *args, stdin=nothing.fileno())
    assert "notes.txt exists and is not a socket" in one_error(started)
    assert "notes.txt exists and is not a socket" in one_error(
        syslogban("config", "check", *args))
    assert precious.read_text() == "keep me\n"
    assert "notes.txt: not a socket (--control names" in one_error(
        syslogban("status", "--control", str(precious)))


def test_no_daemon_answering_is_said_in_words(tmp_path: Path) -> None:
    missing = one_error(syslogban("list", "--control", str(tmp_path / "none.sock")))
    assert "none.sock: no such control socket (is syslogban running?" in missing
    left_over = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(left_over))  # bound, never listening: a daemon killed long ago
    assert "dead.sock: nobody answers (syslogban is not running" in one_error(
        syslogban("why", "192.0.2.1", "--control", str(left_over)))


def test_stdin_from_dev_null_ends_at_once(tmp_path: Path) -> None:
    """`< /dev/null` (a cron job, a unit without input): the loop cannot watch it."""
    with open(os.devnull, "rb") as nothing:
        result = syslogban("run", "--stdin", "--backend", "null", "--state",
                           str(tmp_path / "state.db"), "--control", str(tmp_path / "c.sock"),
                           stdin=nothing.fileno(), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "end of input" in result.stderr


@requires(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv "
          "(util-linux) to run as nobody")
def test_no_right_to_the_state_file_says_what_to_do(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    tmp_path.chmod(0o755)
    with open(os.devnull, "rb") as nothing:
        result = syslogban("run", "--stdin", "--backend", "null",
                           "--state", str(private / "state.db"),
                           "--control", str(tmp_path / "c.sock"), stdin=nothing.fileno(),
                           user="nobody")
    line = one_error(result)
    assert line.startswith(f"syslogban: error: state file {private}/state.db: {private}"), line
    assert line.endswith(": Permission denied (run as root, or name a writable file: "
                         "--state PATH)"), line


def test_refusals_of_a_running_daemon_name_the_reason(tmp_path: Path,
                                                      daemons: list[Daemon]) -> None:
    d = start(daemons, tmp_path, "--allow", "198.51.100.0/28")
    assert "198.51.100.0/24 covers 198.51.100.0/28, which is allow-listed" in one_error(
        d.ctl("block", "198.51.100.0/24"))
    assert "198.51.100.3 is in 198.51.100.0/28, which is allow-listed" in one_error(
        d.ctl("block", "198.51.100.3"))
    assert d.ctl("block", "203.0.113.7", "--for", "1d").returncode == 0
    shorter = one_error(d.ctl("block", "203.0.113.7", "--for", "1h"))
    assert "203.0.113.7 is already blocked until " in shorter
    assert "(a 1d block: by an admin): say --replace" in shorter
    assert "'1.2.3' is not an IP address" in one_error(d.ctl("why", "1.2.3"))
    assert "192.0.2.99: nothing known about it" in one_error(d.ctl("why", "192.0.2.99"))


@pytest.mark.parametrize("args", [("run", "--bogus"), ("block", "192.0.2.1", "--for", "5x")])
def test_a_bad_flag_shows_the_usage_of_its_command(args: tuple[str, ...]) -> None:
    result = syslogban(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: syslogban {args[0]} "), result.stderr


def test_a_bad_pattern_is_said_in_the_terms_of_pattern() -> None:
    no_address = one_error(syslogban("check", "--pattern", "warning: login failed", "-",
                                     stdin=subprocess.DEVNULL))
    assert "--pattern 'warning: login failed': write <ADDR> (or <HOST>) once" in no_address
    broken = one_error(syslogban("check", "--pattern", r"failed from <HOST> (", "-",
                                 stdin=subprocess.DEVNULL))
    assert broken.endswith(r"--pattern 'failed from <HOST> (': bad regular expression: "
                           "missing ), unterminated subpattern")
    huge = one_error(syslogban("check", "--pattern", "<ADDR> x{4294967296}", "-",
                               stdin=subprocess.DEVNULL))  # OverflowError: no re.error.msg
    assert huge.endswith("--pattern '<ADDR> x{4294967296}': bad regular expression: "
                         "the repetition number is too large")


def test_a_daemon_with_no_input_is_an_error(tmp_path: Path) -> None:
    """A daemon that reads no log and takes no remote decisions would do nothing."""
    error = one_error(syslogban("run", "--backend", "null", "--state", str(tmp_path / "s.db"),
                                "--control", str(tmp_path / "c.sock"),
                                stdin=subprocess.DEVNULL))
    assert error.startswith("syslogban: error: run: no input: give --stdin, --omprog or "
                            "--listen"), error
    assert not (tmp_path / "s.db").exists()


def test_a_daemon_without_input_for_remote_decisions_says_so(tmp_path: Path) -> None:
    """Legitimate with [crowdsec] or [fleet] (a bouncer host), but said in the log."""
    config = tmp_path / "syslogban.toml"
    config.write_text('[crowdsec]\nurl = "http://127.0.0.1:9/"\nbouncer_key = "k"\n')
    log = tmp_path / "daemon.log"
    with open(log, "wb") as err:
        daemon = subprocess.Popen([sys.executable, "-m", "syslogban", "run", "--backend", "null",
                                   "--config", str(config),
                                   "--state", str(tmp_path / "state.db"),
                                   "--control", str(tmp_path / "c.sock")],
                                  cwd=ROOT, stderr=err, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "no input (--stdin, --omprog or --listen)" not in log.read_text():
            assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0, log.read_text()


