"""The header forms of other syslog daemons, written by the daemons themselves.

busybox syslogd, socklog, svlogd, multilog and tai64nlocal each get a real
record from util-linux `logger` (as sshd's syslog(3) call would send it) and
write it in their own format; `syslogban check` must then find the attack with
the right program tag and address. Every daemon is a private instance: socklog
listens on a socket in tmp_path; busybox syslogd, which always binds /dev/log,
runs in a mount namespace of its own with a private /dev.

Unpacked by contrib/setup-venv.sh (the .debs only extracted, into
~/.cache/syslogban-e2e/loggers). Without them the tests skip, saying why
(and fail on CI: system.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import system

E2E_DIR = Path(os.environ.get("SYSLOGBAN_E2E_DIR")
               or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
               / "syslogban-e2e")
ROOT = E2E_DIR / "loggers"
BUSYBOX = ROOT / "bin" / "busybox"
SOCKLOG = ROOT / "usr" / "sbin" / "socklog"
SVLOGD = ROOT / "usr" / "bin" / "svlogd"
MULTILOG = ROOT / "usr" / "bin" / "multilog"
TAI64NLOCAL = ROOT / "usr" / "bin" / "tai64nlocal"
LOGGER = shutil.which("logger") or "/usr/bin/logger"
INSTALL = "contrib/setup-venv.sh unpacks it, as root"
ATTACK = "Invalid user admin from {} port 22"
TIMEOUT = 30.0


def need(*programs: Path) -> None:
    for program in programs:
        system.need(os.access(program, os.X_OK), f"{program} is not there: {INSTALL}")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {TIMEOUT:g}s")
        time.sleep(0.05)


def detections(log: Path) -> list[dict[str, object]]:
    result = subprocess.run([sys.executable, "-m", "syslogban", "check", "--jsonl", str(log)],
                            capture_output=True, text=True, timeout=120, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_found(log: Path, address: str) -> None:
    found = detections(log)
    assert [(d["signature"], d["address"]) for d in found] == \
        [("sshd.invalid-user", address)], log.read_text()


def send(socket: Path, address: str) -> None:
    """One record as sshd's syslog(3) sends it: to a unix socket, auth.info, tag sshd[PID],
    no host name (logger's default header for a local socket is glibc's)."""
    subprocess.run([LOGGER, "--socket", str(socket), "-t", "sshd", "-i",
                    "-p", "auth.info", ATTACK.format(address)], check=True, timeout=30)


@pytest.fixture()
def socklog(tmp_path: Path) -> Iterator[Callable[[list[str]], tuple[Path, Path]]]:
    """Starts `socklog unix SOCKET | WRITER...`; gives (socket, writer's directory)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(writer: list[str]) -> tuple[Path, Path]:
        socket, directory = tmp_path / "log.sock", tmp_path / "log"
        directory.mkdir()
        reader = subprocess.Popen([str(SOCKLOG), "unix", str(socket)], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        started.append(reader)
        started.append(subprocess.Popen([*writer, str(directory)], stdin=reader.stdout))
        assert reader.stdout is not None
        reader.stdout.close()  # the writer holds the pipe now
        wait_for(socket.exists, "socklog socket")
        return socket, directory

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("stamp", ["-t", "-tt", "-ttt"])
def test_socklog_behind_svlogd(socklog, stamp: str) -> None:
    need(SOCKLOG, SVLOGD)
    socket, directory = socklog([str(SVLOGD), stamp])
    send(socket, "198.51.100.31")
    current = directory / "current"
    wait_for(lambda: current.exists() and "Invalid user" in current.read_text(), "svlogd line")
    assert_found(current, "198.51.100.31")


def test_socklog_behind_multilog_and_tai64nlocal(socklog, tmp_path: Path) -> None:
    need(SOCKLOG, MULTILOG, TAI64NLOCAL)
    socket, directory = socklog([str(MULTILOG), "t"])
    send(socket, "198.51.100.32")
    current = directory / "current"
    wait_for(lambda: current.exists() and "Invalid user" in current.read_text(), "multilog line")
    assert current.read_text().startswith("@4000")
    assert_found(current, "198.51.100.32")
    local = tmp_path / "local.log"
    with open(current, "rb") as tai, open(local, "wb") as out:
        subprocess.run([str(TAI64NLOCAL)], stdin=tai, stdout=out, check=True, timeout=30)
    assert_found(local, "198.51.100.32")


@system.requires(os.geteuid() == 0 and shutil.which("unshare") is not None,
                 "needs root and unshare: busybox syslogd binds /dev/log, so it "
                 "runs in a mount namespace with a private /dev")
def test_busybox_syslogd(tmp_path: Path) -> None:
    need(BUSYBOX)
    log, null = tmp_path / "messages", tmp_path / "null"
    null.touch()
    # A private /dev (tmpfs, with the host's /dev/null bound into it) in a
    # mount namespace of its own: busybox binds /dev/log there, and logger
    # (default socket /dev/log) reaches it; the host's /dev/log is never touched.
    script = f"""set -e
mount --make-rprivate /
mount --bind /dev/null "{null}"
mount -t tmpfs tmpfs /dev
touch /dev/null
mount --bind "{null}" /dev/null
"{BUSYBOX}" syslogd -n -O "{log}" &
pid=$!
for i in $(seq 300); do [ -S /dev/log ] && break; sleep 0.1; done
"{LOGGER}" -t sshd -i -p auth.info "{ATTACK.format('198.51.100.33')}"
for i in $(seq 300); do grep -q "Invalid user" "{log}" 2>/dev/null && break; sleep 0.1; done
kill $pid
wait $pid || true
"""
    subprocess.run(["unshare", "--mount", "sh", "-c", script], check=True, timeout=120)
    text = log.read_text()
    assert " auth.info sshd[" in text, text  # busybox's own "HOST facility.level TAG" form
    assert_found(log, "198.51.100.33")
