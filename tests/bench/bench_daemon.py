"""Benchmark: the daemon end to end, and its memory with a million attackers.

Prints numbers; asserts nothing. Run:

    .venv/bin/python tests/bench/bench_daemon.py [--lines 1000000] [--runs 3]

1. Throughput: the generated mail log (bench_check's, deterministic) piped
   into `syslogban run --stdin --backend null` (state file and control socket
   in a temporary directory), against `syslogban check --jsonl -` reading the
   same pipe (one process, as any pipe) and `syslogban check FILE` (one
   process per CPU). Target: the daemon at >= 80 % of check.
2. Memory: 1,000,000 attack records, each from a different address, piped
   into the daemon: peak RSS with every address tracked. Target <= 300 MB.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_check import ENV, OUT, generate

SYSLOGBAN = [sys.executable, "-m", "syslogban"]


def piped(argv: list[str], source: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stderr of `cat source | argv`."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        cat = subprocess.Popen(["cat", str(source)], stdout=subprocess.PIPE)
        proc = subprocess.Popen(argv, stdin=cat.stdout, stdout=subprocess.DEVNULL,
                                stderr=err, env=ENV)
        assert cat.stdout is not None
        cat.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        cat.wait()
        err.seek(0)
        text = err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{text[-2000:]}")
    return elapsed, usage.ru_maxrss, text


def daemon_argv(directory: str) -> list[str]:
    return [*SYSLOGBAN, "run", "--stdin", "--backend", "null", "--enable", "all",
            "--state", f"{directory}/state.db", "--control", f"{directory}/control.sock",
            "--allow-own-addresses", "false", "--log-level", "warning"]


def distinct_attackers(count: int) -> Path:
    path = OUT / f"distinct-{count}.log"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        base = int(ipaddress.IPv4Address("11.0.0.1"))
        with open(path, "w") as f:
            for n in range(count):
                address = ipaddress.IPv4Address(base + n)
                f.write(f"Nov 21 10:{n // 60000 % 60:02d}:{n // 1000 % 60:02d} mx "
                        f"postfix/smtpd[{n % 30000}]: warning: unknown[{address}]: "
                        f"SASL LOGIN authentication failed: UGFzc3dvcmQ6\n")
    return path


def best(runs: int, argv_for: object, source: Path) -> tuple[float, int, str]:
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as directory:
            argv = argv_for(directory) if callable(argv_for) else argv_for
            results.append(piped(argv, source))
    return min(results, key=lambda r: r[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--attackers", type=int, default=1_000_000)
    args = parser.parse_args()

    log = generate(args.lines, 1)
    lines = args.lines
    print(f"log: {log.name}: {lines} lines; best of {args.runs} runs")
    daemon, daemon_rss, stderr = best(args.runs, daemon_argv, log)
    blocks = len(re.findall(r"blocked \S+ for", stderr))
    print(f"syslogban run --stdin --backend null:  {daemon:5.2f} s  "
          f"{lines / daemon / 1e6:5.2f} M lines/s  peak {daemon_rss / 1024:5.1f} MiB  "
          f"({blocks} blocks)")
    check_pipe, _, _ = best(args.runs, [*SYSLOGBAN, "check", "--jsonl", "--enable", "all", "-"],
                            log)
    print(f"syslogban check --jsonl - (a pipe):    {check_pipe:5.2f} s  "
          f"{lines / check_pipe / 1e6:5.2f} M lines/s")
    check_file, _, _ = best(args.runs, [*SYSLOGBAN, "check", "--jsonl", "--enable", "all",
                                        str(log)], log)
    print(f"syslogban check --jsonl FILE ({os.cpu_count()} processes): {check_file:5.2f} s  "
          f"{lines / check_file / 1e6:5.2f} M lines/s")
    print(f"daemon / check on a pipe: {check_pipe / daemon:.0%}; "
          f"daemon / check on a file: {check_file / daemon:.0%} (target >= 80 %)")

    attackers = distinct_attackers(args.attackers)
    elapsed, rss, stderr = best(1, daemon_argv, attackers)
    tracked = re.search(r"(\d+) addresses tracked", stderr)
    print(f"memory: {args.attackers} attack records from distinct addresses in {elapsed:.1f} s: "
          f"peak RSS {rss / 1024:.0f} MiB with "
          f"{tracked.group(1) if tracked else '?'} addresses tracked (target <= 300 MB)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
