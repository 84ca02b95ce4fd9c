"""Benchmark: `syslogban check --jsonl` against sshguard's parser on one log.

Prints numbers; asserts nothing (speed is not a unit test). Run:

    .venv/bin/python tests/bench/bench_check.py [--lines 1000000] [--runs 3]

It generates the mixed mail log once (tests/bench/out/, deterministic seed),
then times, in the same run and on the same file, end to end:
  * syslogban check --jsonl FILE > /dev/null   (all bundled signatures, --enable all)
  * the same with the plain scanner engine (every line parsed), for reference
  * /usr/libexec/sshguard/sshg-parser < FILE   (Debian package sshguard), if present
and reports lines/s, the ratio to sshguard, and peak memory for the full file
and for a quarter of it (memory must not grow with the file size).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SSHG_PARSER = Path("/usr/libexec/sshguard/sshg-parser")
SYSLOGBAN = [sys.executable, "-m", "syslogban"]


def generate(lines: int, seed: int) -> Path:
    path = OUT / f"mail-{lines}-seed{seed}.log"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / "genlog.py"), "--lines", str(lines),
                        "--seed", str(seed), str(path)], check=True)
        print(f"generated {path.name} in {time.perf_counter() - started:.1f} s")
    return path


def timed(argv: list[str], stdin_path: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS in KiB of one run, its output to /dev/null."""
    with open(stdin_path or os.devnull, "rb") as stdin:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}")
    return elapsed, usage.ru_maxrss


def best(runs: int, argv: list[str], stdin_path: Path | None = None) -> tuple[float, int]:
    results = [timed(argv, stdin_path) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    log = generate(args.lines, args.seed)
    quarter = OUT / f"quarter-{log.name}"
    if not quarter.exists():
        with open(log, "rb") as src:
            quarter.write_bytes(b"".join(src.readline() for _ in range(args.lines // 4)))
    lines = count_lines(log)

    check = [*SYSLOGBAN, "check", "--jsonl", "--enable", "all"]
    subprocess.run([*check, str(log)], stdout=open(OUT / "attacks.jsonl", "wb"),
                   stderr=open(OUT / "summary.txt", "wb"), check=True)
    detected = count_lines(OUT / "attacks.jsonl")

    print(f"log: {log.name}: {lines} lines, {log.stat().st_size / 1e6:.0f} MB, "
          f"{detected} attacks detected ({detected / lines:.1%}); best of {args.runs} runs")
    fast, fast_rss = best(args.runs, [*check, str(log)])
    print(f"syslogban check --jsonl (hyperscan): {fast:6.2f} s  "
          f"{lines / fast / 1e6:5.2f} M lines/s  peak {fast_rss / 1024:6.1f} MiB")
    _, quarter_rss = best(1, [*check, str(quarter)])
    print(f"  same on a quarter of the file: peak {quarter_rss / 1024:6.1f} MiB "
          f"(memory growth x{fast_rss / quarter_rss:.2f} for 4x the input)")
    plain, plain_rss = best(1, [*check, "--scanner", "plain", str(log)])
    print(f"syslogban check --jsonl (plain):     {plain:6.2f} s  "
          f"{lines / plain / 1e6:5.2f} M lines/s  peak {plain_rss / 1024:6.1f} MiB")
    if SSHG_PARSER.exists():
        sshg, sshg_rss = best(args.runs, [str(SSHG_PARSER)], log)
        print(f"sshguard sshg-parser:                {sshg:6.2f} s  "
              f"{lines / sshg / 1e6:5.2f} M lines/s  peak {sshg_rss / 1024:6.1f} MiB")
        print(f"ratio syslogban / sshguard: {sshg / fast:.2f}x (target >= 2x)")
    else:
        print(f"sshguard not installed ({SSHG_PARSER}): apt-get install sshguard to compare")


if __name__ == "__main__":
    main()
