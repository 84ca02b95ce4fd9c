"""Benchmark: the nftables backend and the daemon against the kernel, in a
throwaway network namespace (root only). Prints numbers; asserts nothing.

    .venv/bin/python tests/bench/bench_nftables.py [--blocks 10000] [--restore 100000]

1. 10,000 blocks applied as one batch (one libnftables call), against one
   `nft add element` process per block, the way fail2ban's actions work.
   Target: >= 100x faster.
2. 100,000 active blocks restored at start (one sync). Target: <= 2 s.
3. Latency from the attack record that crosses the threshold to the element
   being in the kernel set (seen by `nft monitor`), with the daemon fed
   1,000 blocks a second through a pipe. Target: p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import netns  # noqa: E402
from monitor import delays_ms, percentile, send_paced, watch_elements  # noqa: E402
from syslogban.backends import Change, create  # noqa: E402

SYSLOGBAN = [sys.executable, "-m", "syslogban"]


def addresses(count: int, base: str = "11.0.0.1") -> list[str]:
    start = int(ipaddress.IPv4Address(base))
    return [str(ipaddress.IPv4Address(start + n)) for n in range(count)]


def batch(count: int) -> tuple[float, int]:
    backend = create("nftables")
    backend.start()
    now = time.time()
    changes = [Change(True, a, now + 3600) for a in addresses(count)]
    started = time.perf_counter()
    backend.apply(changes, now)
    return time.perf_counter() - started, len(backend.list())


def per_process(ns: str, count: int) -> float:
    subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "table", "inet", "f2b"], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "nft", "add set inet f2b s { type ipv4_addr; "
                    "flags timeout; }"], check=True)
    started = time.perf_counter()
    for address in addresses(count, "12.0.0.1"):
        subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "element", "inet", "f2b", "s",
                        f"{{ {address} timeout 3600s }}"], check=True)
    return time.perf_counter() - started


def restore(count: int) -> tuple[float, int]:
    backend = create("nftables")
    backend.start()
    now = time.time()
    active = {a: now + 3600 for a in addresses(count, "13.0.0.1")}
    started = time.perf_counter()
    backend.sync(active, now)
    return time.perf_counter() - started, len(backend.list())


def latency(ns: str, rate: int, seconds: float) -> list[float]:
    """Milliseconds from the third attack record of an address to its element in the kernel."""
    monitor, seen = watch_elements(["ip", "netns", "exec", ns, "nft", "monitor", "elements"])
    work = tempfile.mkdtemp()
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", ns, *SYSLOGBAN, "run", "--stdin", "--backend", "nftables",
         "--state", f"{work}/state.db", "--control", f"{work}/control.sock",
         "--allow-own-addresses", "false", "--log-level", "error"],
        stdin=subprocess.PIPE, env={k: v for k, v in os.environ.items()
                                    if k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")})
    assert daemon.stdin is not None
    while not os.path.exists(f"{work}/control.sock"):
        time.sleep(0.05)
    time.sleep(0.5)
    stdin = daemon.stdin

    def send(address: str) -> None:
        line = (f"Nov 21 10:00:00 mx postfix/smtpd[1]: warning: unknown[{address}]: "
                f"SASL LOGIN authentication failed: x\n").encode()
        stdin.write(line * 2)
        stdin.flush()
        stdin.write(line)  # the third: it crosses the threshold
        stdin.flush()

    sent = send_paced(addresses(int(rate * seconds), "14.0.0.1"), rate, send)
    time.sleep(1.0)
    stdin.close()
    daemon.wait()
    monitor.terminate()
    return delays_ms(seen, sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=10_000,
                        help="how many one-process-per-block adds to time")
    parser.add_argument("--restore", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it creates a network namespace")
    name = netns.create()
    try:
        one, held = netns.run_in(name, batch, args.blocks)
        print(f"{args.blocks} blocks in one batch:       {one:7.3f} s ({held} in the kernel)")
        each = per_process(name, args.processes)
        scaled = each * args.blocks / args.processes
        print(f"{args.processes} blocks, one nft process each: {each:7.3f} s"
              + (f" (x{args.blocks / args.processes:g} = {scaled:.1f} s)" if scaled != each
                 else ""))
        print(f"  one batch is {scaled / one:.0f}x faster (target >= 100x)")
    finally:
        netns.delete(name)
    name = netns.create()
    try:
        took, held = netns.run_in(name, restore, args.restore)
        print(f"{args.restore} blocks restored in one sync: {took:7.3f} s ({held} in the kernel; "
              "target <= 2 s)")
    finally:
        netns.delete(name)
    name = netns.create()
    try:
        delays = latency(name, args.rate, args.seconds)
        if delays:
            print(f"latency record -> kernel set, {args.rate} blocks/s for {args.seconds:g} s: "
                  f"{len(delays)} blocks, p50 {percentile(delays, 0.5):.1f} ms, "
                  f"p99 {percentile(delays, 0.99):.1f} ms, "
                  f"max {delays[-1]:.1f} ms (target p99 <= 10 ms)")
        else:
            print("latency: no element seen by nft monitor")
    finally:
        netns.delete(name)


if __name__ == "__main__":
    main()
