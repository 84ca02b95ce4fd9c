"""Benchmark: every speed and memory target of syslogban against sshguard's parser.

Prints numbers; asserts nothing (speed is not a unit test). Run by hand:

    .venv/bin/python tests/bench/bench_targets.py [--lines 1000000] [--rounds 5]
        [--attackers 1000000] [--long 10]

The generated mail log (bench_check's, deterministic) goes through each path
and through sshguard 2.4's `sshg-parser` in the same run: the commands take
turns, round after round, and each figure is the median of its rounds, so
that a burst of load from others on the machine hits every command alike.
Every speed figure is a ratio to sshg-parser's median (higher is faster):

  * `syslogban run --stdin --backend null` with a state file, fed by a pipe;
  * `syslogban check --jsonl -` fed by a pipe (one process, as any pipe);
  * `syslogban check --jsonl --processes 2 FILE` (the target is for 2 CPUs);
  * the same with the plain scanner engine (no Hyperscan);
  * each with `--enable all` too, as the slowdown against the default set.

Then memory: peak RSS of the daemon tracking --attackers distinct addresses,
and its RSS through a run of --long times the log (the same log again and
again through one pipe: the daemon decides on its own clock), sampled as it
goes. The load average is printed with every round.

sshg-parser: Debian's package `sshguard` (never started as a service here);
when it is not installed, the benchmark unpacks it privately from
`apt-get download sshguard` into tests/bench/out/.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_check import ENV, OUT, SSHG_PARSER, generate  # noqa: E402

SYSLOGBAN = [sys.executable, "-m", "syslogban"]
TARGETS = {  # ratio to sshg-parser each path must reach
    "daemon": 1.5, "check pipe": 2.0, "check FILE": 3.0, "check FILE, plain": 1.0}
ALL_SLOWER = 0.20   # --enable all: at most this much slower than the default set
MEMORY_MIB = 150    # 1,000,000 tracked addresses
FILE = ["--processes", "2"]  # the FILE target is for 2 CPUs, whatever this machine has


def distinct_attackers(count: int) -> Path:
    """A log of `count` attack records, each from an address of its own."""
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


def sshg_parser() -> Path:
    """Debian's sshg-parser, installed or unpacked privately (never as a service)."""
    if SSHG_PARSER.exists():
        return SSHG_PARSER
    unpacked = OUT / "sshguard" / str(SSHG_PARSER).lstrip("/")
    if not unpacked.exists():
        OUT.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory() as directory:
            subprocess.run(["apt-get", "download", "sshguard"], cwd=directory, check=True)
            [deb] = Path(directory).glob("sshguard_*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(OUT / "sshguard")], check=True)
    return unpacked


def run(argv: list[str], source: Path, piped: bool, times: int = 1,
        sample: Callable[[int], None] | None = None) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (its own and its children's: check's
    processes), peak RSS (KiB) and stderr of one run; `piped`: the input
    comes through a pipe from cat (`times` times the file), else stdin is the
    file. `sample(pid)` is called every second meanwhile."""
    with tempfile.TemporaryFile() as err, open(source, "rb") as stdin:
        started = time.perf_counter()
        cat = subprocess.Popen(["cat", *[str(source)] * times],
                               stdout=subprocess.PIPE) if piped else None
        proc = subprocess.Popen(argv, stdin=cat.stdout if cat else stdin,
                                stdout=subprocess.DEVNULL, stderr=err, env=ENV)
        if cat is not None:
            assert cat.stdout is not None
            cat.stdout.close()
        while True:  # wait4, not poll(): the child's rusage holds its peak RSS
            pid, status, usage = os.wait4(proc.pid, 0 if sample is None else os.WNOHANG)
            if pid:
                break
            time.sleep(1.0)
            sample(proc.pid)  # type: ignore[misc]
        elapsed = time.perf_counter() - started
        if cat is not None:
            cat.wait()
        err.seek(0)
        text = err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{text[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, text


def daemon(directory: str, enable: list[str]) -> list[str]:
    return [*SYSLOGBAN, "run", "--stdin", "--backend", "null", *enable,
            "--state", f"{directory}/state.db", "--control", f"{directory}/control.sock",
            "--allow-own-addresses", "false", "--log-level", "warning"]


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
    except (OSError, StopIteration):  # it has just ended
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--attackers", type=int, default=1_000_000)
    parser.add_argument("--long", type=int, default=10,
                        help="the memory run reads the log this many times (0: skip it)")
    args = parser.parse_args()

    log = generate(args.lines, 1)
    sshg = sshg_parser()
    work = Path(tempfile.mkdtemp(prefix="syslogban-bench-"))
    commands: dict[str, tuple[Callable[[], list[str]], bool]] = {
        "sshg-parser": (lambda: [str(sshg)], False)}
    for label, enable in (("", []), (", --enable all", ["--enable", "all"])):
        commands[f"daemon{label}"] = (lambda e=enable: daemon(tempfile.mkdtemp(dir=work), e),
                                      True)
        commands[f"check pipe{label}"] = (
            lambda e=enable: [*SYSLOGBAN, "check", "--jsonl", *e, "-"], True)
        commands[f"check FILE{label}"] = (
            lambda e=enable: [*SYSLOGBAN, "check", "--jsonl", *FILE, *e, str(log)], False)
    commands["check FILE, plain"] = (
        lambda: [*SYSLOGBAN, "check", "--jsonl", *FILE, "--scanner", "plain", str(log)], False)

    print(f"log: {log.name}: {args.lines} lines, {log.stat().st_size / 1e6:.0f} MB; "
          f"{os.cpu_count()} CPUs; median of {args.rounds} rounds, the commands in turn")
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for n in range(args.rounds):
        for name, (argv, piped) in commands.items():
            elapsed, cpu, _, _ = run(argv(), log, piped)
            times[name].append(elapsed)
            cpus[name].append(cpu)
        print(f"round {n + 1}: load {os.getloadavg()[0]:.2f}; "
              + ", ".join(f"{name} {t[-1]:.2f}s" for name, t in times.items()), flush=True)
    wall = {name: statistics.median(t) for name, t in times.items()}
    cpu = {name: statistics.median(t) for name, t in cpus.items()}
    base, base_cpu = wall["sshg-parser"], cpu["sshg-parser"]
    # The targets are on wall time; CPU time (user + system, the processes'
    # own) is what others on the machine disturb least: both are printed.
    print(f"\nsshg-parser: {base:.2f} s wall, {base_cpu:.2f} s CPU, "
          f"{args.lines / base / 1e6:.2f} M lines/s")
    print(f"{'path':<28} {'wall s':>7} {'M lines/s':>9} {'vs sshg':>8} {'target':>7} "
          f"{'':>8} {'CPU s':>6} {'vs sshg':>8}")
    for name, target in TARGETS.items():
        ratio = base / wall[name]
        print(f"{name:<28} {wall[name]:7.2f} {args.lines / wall[name] / 1e6:9.2f} "
              f"{ratio:7.2f}x {target:6.1f}x {'met' if ratio >= target else 'NOT met':>8} "
              f"{cpu[name]:6.2f} {base_cpu / cpu[name]:7.2f}x")
    for name in ("daemon", "check pipe", "check FILE"):
        every = f"{name}, --enable all"
        slower, slower_cpu = wall[every] / wall[name] - 1, cpu[every] / cpu[name] - 1
        print(f"{every:<28} {wall[every]:7.2f} {args.lines / wall[every] / 1e6:9.2f} "
              f"{base / wall[every]:7.2f}x {slower:+6.0%} {'met' if slower <= ALL_SLOWER else 'NOT met':>8} "
              f"{cpu[every]:6.2f} {base_cpu / cpu[every]:7.2f}x {slower_cpu:+.0%} "
              f"(target: at most +{ALL_SLOWER:.0%} against the default set)")

    attackers = distinct_attackers(args.attackers)
    elapsed, _, rss, stderr = run(daemon(tempfile.mkdtemp(dir=work), []), attackers, True)
    tracked = re.search(r"(\d+) addresses tracked", stderr)
    print(f"\nmemory: {args.attackers} attack records from distinct addresses in "
          f"{elapsed:.1f} s: peak RSS {rss / 1024:.0f} MiB, "
          f"{tracked.group(1) if tracked else '?'} addresses tracked "
          f"(target <= {MEMORY_MIB} MiB: {'met' if rss / 1024 <= MEMORY_MIB else 'NOT met'}); "
          f"load {os.getloadavg()[0]:.2f}")

    if args.long:
        samples: list[tuple[float, int]] = []
        started = time.perf_counter()
        elapsed, _, rss, _ = run(daemon(tempfile.mkdtemp(dir=work), []), log, True, args.long,
                              lambda pid: samples.append((time.perf_counter() - started,
                                                          rss_kib(pid))))
        samples = [s for s in samples if s[1]]
        picks = [samples[int(i * (len(samples) - 1) / 4)] for i in range(5)] if samples else []
        # Flat: the bounded tables (attempts, evidence, sessions) fill in the
        # first millions of lines; over the second half RSS must grow < 10 %.
        growth = picks[-1][1] / picks[2][1] - 1 if picks else float("nan")
        print(f"memory over {args.long * args.lines} lines ({elapsed:.0f} s): RSS "
              + ", ".join(f"{kib / 1024:.0f} MiB at {t:.0f} s" for t, kib in picks)
              + f"; peak {rss / 1024:.0f} MiB; {growth:+.0%} over the second half "
              f"(target: flat, under +10 %: {'met' if growth < 0.10 else 'NOT met'}); "
              f"load {os.getloadavg()[0]:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
