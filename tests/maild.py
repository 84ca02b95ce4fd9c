"""A lab of real mail daemons for the attempt tests: private instances only.

Every daemon runs inside a network namespace the lab creates, in a mount
namespace of its own (`ip netns exec` makes one) in which /dev is a private
copy whose /dev/log is a datagram socket this process reads, /etc/passwd,
group and shadow are private copies with the lab's users added, and /run is
private. So the daemons log through their ordinary syslog(3) calls, in the
order they write, to the lab alone; the host's services, ports, users and
log are never touched. Clients run in the same network namespace and connect
from addresses of their own (one per scenario), so every address's records
are its own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import netns

E2E_DIR = Path(os.environ.get("SYSLOGBAN_E2E_DIR")
               or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
               / "syslogban-e2e")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
QUIET = 0.6  # seconds without a new record of an address: its session is written

# What the mount namespace of every daemon gets (run by /bin/sh as root in it).
ENTER = """#!/bin/sh
set -e
for device in {devices}; do mount --bind "/dev/$device" "$LAB/dev/$device"; done
mount --rbind "$LAB/dev" /dev
for name in passwd group shadow; do mount --bind "$LAB/etc/$name" "/etc/$name"; done
mount --bind "$LAB/run" /run
for pair in $LAB_BIND; do mount --bind "${{pair%%:*}}" "${{pair#*:}}"; done
exec "$@"
""".format(devices=" ".join(DEVICES))


class Collector:
    """The lab's /dev/log: every datagram with the time it arrived, in order."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)  # daemons log as their own users
        self.records: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            with self._lock:
                self.records.append((time.time(), data))

    def snapshot(self) -> list[tuple[float, bytes]]:
        with self._lock:
            return list(self.records)

    def settle(self, address: str, timeout: float = 15.0) -> int:
        """Waits until nothing new about `address` came for QUIET seconds;
        returns how many records there are then (a mark in the stream)."""
        needle = address.encode()
        deadline = time.monotonic() + timeout
        called = time.time()  # what the client's last reply caused may be on its way
        while time.monotonic() < deadline:
            records = self.snapshot()
            last = max((t for t, data in records if needle in data), default=called)
            if time.time() - max(last, called) >= QUIET:
                return len(records)
            time.sleep(0.1)
        return len(self.snapshot())

    def wait_for(self, pattern: str, timeout: float = 20.0) -> bytes:
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, data in self.snapshot():
                if regex.search(data):
                    return data
            time.sleep(0.1)
        raise AssertionError(f"no record matching {pattern!r}; got:\n" + "\n".join(
            data.decode(errors="replace") for _, data in self.snapshot()[-30:]))

    def close(self) -> None:
        self.sock.close()


class Lab:
    """A network namespace with a server address per daemon, client addresses,
    a private /dev (with the collector's /dev/log), /etc users and /run."""

    def __init__(self, root: Path, servers: Sequence[str], clients: Sequence[str],
                 users: Sequence[str] = ()) -> None:
        self.root = root
        root.chmod(0o755)
        self.ns = netns.create()
        self.processes: list[subprocess.Popen[bytes]] = []
        try:
            ip = ["ip", "-n", self.ns]
            subprocess.run([*ip, "link", "set", "lo", "up"], check=True)
            for address in [*servers, *clients]:  # local addresses: routed over lo
                subprocess.run([*ip, "addr", "add", f"{address}/32", "dev", "lo"], check=True)
            dev = root / "dev"
            dev.mkdir(mode=0o755)
            for device in DEVICES:
                (dev / device).touch()
            (root / "run" / "sshd").mkdir(parents=True, mode=0o755)
            (root / "run").chmod(0o755)
            etc = root / "etc"
            etc.mkdir(mode=0o755)
            for name in ("passwd", "group", "shadow"):
                shutil.copy(f"/etc/{name}", etc / name)
            with open(etc / "passwd", "a") as passwd, open(etc / "group", "a") as group, \
                    open(etc / "shadow", "a") as shadow:
                for line in users:
                    name, uid, hashed = line.split(":")
                    passwd.write(f"{name}:x:{uid}:{uid}::/nonexistent:/bin/sh\n")
                    group.write(f"{name}:x:{uid}:\n")
                    shadow.write(f"{name}:{hashed}:20000:0:99999:7:::\n")
            enter = root / "enter.sh"
            enter.write_text(ENTER)
            enter.chmod(0o755)
            self.collector = Collector(dev / "log")
        except BaseException:
            netns.delete(self.ns)
            raise

    def start(self, argv: Sequence[str], ready: Callable[[], bool] | None = None,
              timeout: float = 20.0, binds: Sequence[tuple[Path, str]] = ()
              ) -> subprocess.Popen[bytes]:
        """A daemon in the lab (its own process group, so that it stops whole);
        `binds`: private directories it sees instead of the host's."""
        env = {**os.environ, "LAB": str(self.root),
               "LAB_BIND": " ".join(f"{source}:{target}" for source, target in binds)}
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, str(self.root / "enter.sh"), *argv],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.processes.append(process)
        deadline = time.monotonic() + timeout
        while ready is not None and not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.stdout \
                    else ""
                raise AssertionError(f"{argv[0]} did not start: {output[-2000:]}")
            time.sleep(0.1)
        return process

    def run(self, argv: Sequence[str], timeout: float = 60.0,
            env: dict[str, str] | None = None,
            stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        """A client in the lab's network namespace."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], input=stdin,
                              capture_output=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, check=False)

    def listening(self, address: str, port: int) -> bool:
        result = self.run(["ss", "-Hltn", f"src {address}:{port}"], timeout=10)
        return bool(result.stdout.strip())

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.collector.close()
        netns.delete(self.ns)
