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
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from genlog import generate_labeled

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


# As installed: bytecode cached (pip compiles it), stdout buffered. Some
# sandboxes set these two, which would time Python's start-up, not syslogban.
ENV = {k: v for k, v in os.environ.items()
       if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}


def timed(argv: list[str], stdin_path: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS in KiB of one run, its output to /dev/null.

    The child's peak RSS can include this process's own before exec, so the
    benchmark never holds big data in memory itself.
    """
    with open(stdin_path or os.devnull, "rb") as stdin:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}")
    return elapsed, usage.ru_maxrss


def best(runs: int, argv: list[str], stdin_path: Path | None = None) -> tuple[float, int]:
    results = [timed(argv, stdin_path) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


def score(jsonl: Path, lines: int, seed: int) -> str:
    """Detections against the generator's own labels: found, wrong, false."""
    found, attempts = {}, 0
    with open(jsonl) as f:
        for line in f:
            attack = json.loads(line)
            found[attack["lineno"]] = attack["address"]
            attempts += attack["attempts"]
    attacks = wrong = false = 0
    for lineno, line in enumerate(generate_labeled(lines, seed), start=1):
        if line.attacker is None:
            false += lineno in found
        else:
            attacks += 1
            wrong += lineno in found and found[lineno] != line.attacker
    hit = len(found) - false
    return (f"{hit} of {attacks} generated attack lines found, {wrong} with a wrong "
            f"address, {false} false positives; {attempts} attempts")


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
    if not quarter.exists():  # streamed: this process must stay small (see timed)
        with open(log, "rb") as src, open(quarter, "wb") as dst:
            for _ in range(args.lines // 4):
                dst.write(src.readline())
    lines = count_lines(log)
    cpus = os.cpu_count()
    print(f"log: {log.name}: {lines} lines, {log.stat().st_size / 1e6:.0f} MB; "
          f"best of {args.runs} runs")

    results = {}
    for label, enable in (("default signatures", []), ("--enable all", ["--enable", "all"])):
        check = [*SYSLOGBAN, "check", "--jsonl", *enable]
        fast, fast_rss = best(args.runs, [*check, str(log)])
        _, quarter_rss = best(1, [*check, str(quarter)])
        single, _ = best(args.runs, [*check, "--processes", "1", str(log)])
        results[label] = (fast, single)
        print(f"syslogban check --jsonl, {label}:")
        print(f"  {cpus} processes: {fast:5.2f} s  {lines / fast / 1e6:5.2f} M lines/s  "
              f"peak {fast_rss / 1024:5.1f} MiB per process "
              f"({quarter_rss / 1024:.1f} MiB on a quarter of the file)")
        print(f"  1 process:   {single:5.2f} s  {lines / single / 1e6:5.2f} M lines/s")
    plain, _ = best(1, [*SYSLOGBAN, "check", "--jsonl", "--scanner", "plain", str(log)])
    print(f"  for reference, the plain engine, default signatures, {cpus} processes: "
          f"{plain:5.2f} s  {lines / plain / 1e6:5.2f} M lines/s")
    if SSHG_PARSER.exists():
        sshg, sshg_rss = best(args.runs, [str(SSHG_PARSER)], log)
        print(f"sshguard sshg-parser: {sshg:5.2f} s  {lines / sshg / 1e6:5.2f} M lines/s  "
              f"peak {sshg_rss / 1024:5.1f} MiB")
        for label, (fast, single) in results.items():
            print(f"ratio syslogban / sshguard, {label}: {sshg / fast:.2f}x with {cpus} "
                  f"processes, {sshg / single:.2f}x in one (target >= 2x)")
    else:
        print(f"sshguard not installed ({SSHG_PARSER}): apt-get install sshguard to compare")

    # Accuracy last: it holds every detection in this process's memory.
    with open(OUT / "attacks.jsonl", "wb") as out:
        subprocess.run([*SYSLOGBAN, "check", "--jsonl", "--enable", "all", str(log)],
                       stdout=out, stderr=subprocess.DEVNULL, check=True)
    print(f"syslogban: {score(OUT / 'attacks.jsonl', args.lines, args.seed)}")
    if SSHG_PARSER.exists():
        with open(log, "rb") as stdin:
            reported = subprocess.run([str(SSHG_PARSER)], stdin=stdin, capture_output=True,
                                      check=True).stdout.count(b"\n")
        print(f"sshguard: reports {reported} attacks on the same log")


if __name__ == "__main__":
    main()
