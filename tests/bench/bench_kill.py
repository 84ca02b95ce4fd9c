"""Benchmark: kill -9 at random moments under load, nftables in a network namespace.

Prints numbers; asserts nothing (tests/test_daemon_nftables.py holds the
invariant with one kill). Root only. Run:

    .venv/bin/python tests/bench/bench_kill.py [--rounds 12] [--seed 1]

Each round starts `syslogban run --stdin --backend nftables` inside one
network namespace (the same state file every round), feeds it attacks from
fresh addresses as fast as it takes them (three failed logins each), and
kills it with SIGKILL after a random 0.5-4 s. Then it compares:

* reported: every address the daemon logged as blocked ("blocked ADDR for"),
  over all rounds so far;
* kernel at kill: the nft set right after the kill (blocks outlive the daemon);
* after restart: `syslogban list` of the next daemon, and the nft set once
  that daemon has synced it.

A reported block missing after a restart is lost; the kernel must equal the
state after every restart.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SYSLOGBAN = [sys.executable, "-m", "syslogban"]
BLOCKED = re.compile(r"WARNING syslogban: blocked (\S+) for")


def kernel(ns: str) -> set[str]:
    found: set[str] = set()
    for name in ("hosts4", "hosts6"):
        out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet",
                              "syslogban", name], capture_output=True, text=True, check=False)
        if out.returncode:
            continue
        for item in json.loads(out.stdout)["nftables"]:
            for elem in item.get("set", {}).get("elem", []):
                found.add(elem["elem"]["val"] if isinstance(elem, dict) else elem)
    return found


def attacks(first: int) -> bytes:
    """Three failed SASL logins from each of 200 fresh addresses (IPv6 ones never
    repeat; IPv4 ones repeat after 131,072, blocked still or blocked again)."""
    lines = []
    for n in range(first, first + 200):
        address = (f"198.{18 + n // 65536 % 2}.{n // 256 % 256}.{n % 256}" if n % 2 else
                   f"2001:db8:{n >> 16 & 0xffff:x}:{n & 0xffff:x}::1")
        lines += [f"Nov 21 10:00:0{k} mx postfix/smtpd[{n}]: warning: unknown[{address}]: "
                  f"SASL LOGIN authentication failed: UGFzc3dvcmQ6\n" for k in range(3)]
    return "".join(lines).encode()


class Round:
    def __init__(self, ns: str, tmp: Path, index: int) -> None:
        self.log = tmp / f"daemon-{index}.log"
        self.control = str(tmp / "control.sock")
        argv = ["ip", "netns", "exec", ns, *SYSLOGBAN, "run", "--stdin", "--backend", "nftables",
                "--state", str(tmp / "state.db"), "--control", self.control,
                "--block-time", "1h", "--batch-delay", "0.001", "--firewall-check", "1s",
                "--allow-own-addresses", "false"]
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise SystemExit(f"the daemon did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def _answers(self) -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(self.control)
            except OSError:
                return False
        return True

    def feed(self, first: int, stop: threading.Event) -> None:
        assert self.proc.stdin is not None
        n = first
        try:
            while not stop.is_set():
                self.proc.stdin.write(attacks(n))
                self.proc.stdin.flush()
                n += 200
        except (BrokenPipeError, ValueError):
            pass

    def listed(self) -> set[str]:
        out = subprocess.run([*SYSLOGBAN, "list", "--json", "--control", self.control],
                             capture_output=True, text=True, check=True)
        return {b["target"] for b in json.loads(out.stdout)["blocks"]}

    def reported(self) -> set[str]:
        return set(BLOCKED.findall(self.log.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    ns = f"syslogban-bench-kill-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with tempfile.TemporaryDirectory() as directory:
            tmp = Path(directory)
            reported: set[str] = set()
            lost: set[str] = set()
            mismatches = 0
            first = 0
            daemon = Round(ns, tmp, 0)
            try:
                for index in range(1, args.rounds + 1):
                    stop = threading.Event()
                    feeder = threading.Thread(target=daemon.feed, args=(first, stop))
                    feeder.start()
                    time.sleep(rnd.uniform(0.5, 4.0))
                    daemon.kill()
                    stop.set()
                    feeder.join()
                    first += 10_000_000  # no address of this round comes again
                    now_reported = daemon.reported()
                    at_kill = kernel(ns)
                    reported |= now_reported
                    daemon = Round(ns, tmp, index)
                    listed = daemon.listed()
                    deadline = time.monotonic() + 30
                    while kernel(ns) != listed and time.monotonic() < deadline:
                        time.sleep(0.2)
                    held = kernel(ns)
                    lost = reported - listed
                    mismatches += held != listed
                    missing = len(now_reported - at_kill)
                    print(f"round {index:2d}: {len(now_reported):6d} reported this round, "
                          f"{missing:3d} of them not in the kernel at the kill, "
                          f"{len(listed):6d} restored, lost so far {len(lost)}, "
                          f"kernel == state: {held == listed}", flush=True)
            finally:  # whatever happened: no daemon left behind
                daemon.kill()
            print(f"{args.rounds} kills: {len(reported)} blocks reported, {len(lost)} lost, "
                  f"{mismatches} restarts where the kernel differed from the state")
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)


if __name__ == "__main__":
    main()
