"""Benchmark: the fleet on a private PostgreSQL 15 (root only). Prints numbers;
asserts nothing.

    .venv/bin/python tests/bench/bench_fleet.py [--seconds 20] [--outage 600]

1. Propagation: host A's fleet link is fed attacks that make 100 decisions a
   second (3 attempts each); host B, in a network namespace of its own, applies
   what its link delivers to nftables (one batch per delivery, as the enforcer
   does). From the attempt that crosses the threshold on A to the element in
   B's kernel set (`nft monitor`). Targets: p50 <= 20 ms, p99 <= 100 ms.
2. Throughput: three hosts (three processes), each fed 5,000 attack events a
   second; events/s each got into the database, and its outbox (max, end).
   Twice: events that decide nothing, then a spray where every address is
   blocked (a decision every six events). Target: >= 5,000 events/s each,
   no outbox growth.
3. Outage: one host at 100 events/s; the database stopped for --outage
   seconds (600 = the target's 10 minutes), then started: events in the
   database against events fed, the decisions, and the catch-up time.
4. Summarising: an outbox 10 % past its limit (--outbox) folded in steps;
   the longest step is the longest the loop (and the state file) waits.

Host A/B here are the fleet links without the rest of the daemon (no
detection, no state commit of the block before the firewall): the fleet's
own cost, measured end to end through PostgreSQL and the kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import netns  # noqa: E402
from monitor import delays_ms, percentile, watch_elements  # noqa: E402
from postgres import OWNER_PASSWORD, Cluster  # noqa: E402

from syslogban.attempts import Counted  # noqa: E402
from syslogban.backends import Change, create  # noqa: E402
from syslogban.blocker import BlockerConfig, Policy  # noqa: E402
from syslogban.fleet.admin import init  # noqa: E402
from syslogban.fleet.link import Fleet  # noqa: E402
from syslogban.fleet.outbox import EVENT, Outbox, event_line  # noqa: E402
from syslogban.fleet.settings import FleetSettings  # noqa: E402
from syslogban.matcher import Attack  # noqa: E402
from syslogban.remote import RemoteDecision  # noqa: E402

ONE = Counted(0, 1, 10)  # each event a failed login of danger 10
CONFIG = BlockerConfig(policy=Policy(threshold=30, window=1800, block_time=3600))


def addresses(count: int, base: str) -> list[str]:
    start = int(ipaddress.IPv4Address(base))
    return [str(ipaddress.IPv4Address(start + n)) for n in range(count)]


def link(dsn: str, role: str, state: str) -> Fleet:
    return Fleet(FleetSettings(dsn=dsn, name=role), state, lambda: CONFIG)


# ------------------------------------------------------------ child processes

async def receiver(dsn: str, role: str, state: str, seconds: float) -> None:
    """Host B: what the link delivers goes to nftables, a batch per delivery."""
    backend = create("nftables")
    backend.start()
    fleet = link(dsn, role, state)

    def deliver(decisions: list[RemoteDecision], complete: bool) -> None:
        backend.apply([Change(not d.revoked, d.target, d.until) for d in decisions],
                      time.time())
    await fleet.start(deliver)  # type: ignore[arg-type]
    print("ready", flush=True)
    await asyncio.sleep(seconds)
    await fleet.stop()


async def sender(dsn: str, role: str, state: str, rate: int, seconds: float,
                 base: str, per_address: int) -> None:
    """A host fed `rate` attack events a second; prints what it got through."""
    fleet = link(dsn, role, state)
    await fleet.start(lambda decisions, complete: None)
    targets = addresses(int(rate * seconds) // per_address + 1, base)
    begin, fed, most = time.monotonic(), 0, 0
    while time.monotonic() - begin < seconds:
        due = int((time.monotonic() - begin) * rate)
        now = time.time()
        for n in range(fed, due):
            fleet.attacked(Attack(targets[n // per_address], "postfix.sasl", "postfix", 10),
                           ONE, now)
        fed = due
        most = max(most, fleet.status()["outbox"])
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - begin
    sent_by_end = fleet.counters.events_sent
    end_outbox = fleet.status()["outbox"]
    await fleet.stop()
    print(json.dumps({"role": role, "fed": fed, "sent": sent_by_end, "seconds": elapsed,
                      "outbox_max": most, "outbox_end": end_outbox}), flush=True)


# ----------------------------------------------------------------- the runs

def propagation(cluster: Cluster, database: str, tmp: Path, rate: int, count: int) -> None:
    ns = netns.create()
    try:
        b = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, __file__, "--child", "receiver",
             "--dsn", cluster.dsn("mxb", cluster.add_host("mxb"), database),
             "--role", "mxb", "--state", str(tmp / "b.db"), "--seconds", "600"],
            stdout=subprocess.PIPE, text=True)
        assert b.stdout is not None and b.stdout.readline().strip() == "ready"
        monitor, seen = watch_elements(["ip", "netns", "exec", ns, "nft", "monitor",
                                        "elements"])
        time.sleep(0.5)
        targets = addresses(count, "10.1.0.1")
        sent: dict[str, float] = {}

        async def feed() -> None:
            fleet = link(cluster.dsn("mxa", cluster.add_host("mxa"), database), "mxa",
                         str(tmp / "a.db"))
            await fleet.start(lambda decisions, complete: None)
            begin = time.perf_counter()
            for n, address in enumerate(targets):
                for _ in range(3):
                    fleet.attacked(Attack(address, "postfix.sasl", "postfix", 10), ONE,
                                   time.time())
                sent[address] = time.perf_counter()
                pause = begin + (n + 1) / rate - time.perf_counter()
                await asyncio.sleep(max(0.0, pause))
            deadline = time.monotonic() + 10
            while len(seen) < len(targets) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await fleet.stop()
        asyncio.run(feed())
        monitor.terminate()
        b.terminate()
        b.wait()
        delays = delays_ms(seen, sent)
        print(f"1. propagation at {rate} decisions/s: {len(delays)}/{len(targets)} arrived; "
              f"p50 {percentile(delays, 0.5):.1f} ms, p99 {percentile(delays, 0.99):.1f} ms, "
              f"max {max(delays):.1f} ms (targets: p50 <= 20, p99 <= 100)")
    finally:
        netns.delete(ns)


def throughput(cluster: Cluster, database: str, tmp: Path, rate: int, seconds: float,
               spray: bool) -> None:
    """spray: every host sees the same addresses, two attempts each (below one
    host's threshold of three), and the fleet blocks each at its third: a
    decision every six events. Otherwise each host its own addresses, one
    attempt each: events only, no address reaches a threshold."""
    children = []
    kind = "spray" if spray else "events"
    for n in range(1, 4):
        role = f"mx{kind}{n}"
        children.append(subprocess.Popen(
            [sys.executable, __file__, "--child", "sender", "--dsn",
             cluster.dsn(role, cluster.add_host(role), database), "--role", role,
             "--state", str(tmp / f"{role}.db"), "--rate", str(rate), "--seconds",
             str(seconds), "--base", "10.64.0.1" if spray else f"10.{64 + n * 8}.0.1",
             "--per-address", "2" if spray else "1"], stdout=subprocess.PIPE, text=True))
    results = [json.loads(c.communicate()[0].splitlines()[-1]) for c in children]
    decisions = cluster.sql("SELECT count(*) FROM syslogban.decisions", database=database)
    print(f"2. {kind}: {decisions} decisions in the database")
    for r in results:
        print(f"2. {kind} {r['role']}: fed {r['fed'] / r['seconds']:.0f} events/s, "
              f"into the database {r['sent'] / r['seconds']:.0f} events/s; outbox max "
              f"{r['outbox_max']}, at the end {r['outbox_end']} (target: >= 5000/s, no growth)")


def outage(tmp: Path, down: float) -> None:
    own = Cluster()
    try:
        database = own.new_database()
        init(own.dsn("syslogban", OWNER_PASSWORD, database))
        dsn = own.dsn("mxo", own.add_host("mxo"), database)

        async def run() -> None:
            fleet = link(dsn, "mxo", str(tmp / "o.db"))
            await fleet.start(lambda decisions, complete: None)
            targets, fed = addresses(100_000, "10.20.0.1"), 0

            async def feed(seconds: float) -> None:
                nonlocal fed
                begin, done = time.monotonic(), 0
                while time.monotonic() - begin < seconds:
                    due = int((time.monotonic() - begin) * 100)
                    for _ in range(due - done):
                        fleet.attacked(Attack(targets[fed // 3], "postfix.sasl", "postfix",
                                              10), ONE, time.time())
                        fed += 1
                    done = due
                    await asyncio.sleep(0.01)
            await feed(5)
            own.stop()
            await feed(down)
            queued = fleet.status()["outbox"]
            own.start()
            back = time.monotonic()
            while fleet.status()["outbox"] and time.monotonic() - back < 600:
                await asyncio.sleep(0.01)
            catch_up = time.monotonic() - back
            await fleet.stop()
            stored = int(own.sql("SELECT count(*) FROM syslogban.events", database=database))
            decisions = int(own.sql("SELECT count(*) FROM syslogban.decisions",
                                    database=database))
            print(f"3. outage of {down:.0f} s at 100 events/s: {queued} events waited in the "
                  f"outbox; catch-up {catch_up:.2f} s after the database returned; "
                  f"{stored} of {fed} events in the database ({fed - stored} lost), "
                  f"{decisions} decisions for {fed // 3} addresses attacked 3 times")
        asyncio.run(run())
    finally:
        own.destroy()


def summarising(tmp: Path, limit: int) -> None:
    """The outbox past its limit (an outage of a day of spray): how long the
    longest summarising step holds the loop and the state file."""
    box = Outbox(tmp / "s.db", limit)
    spray = addresses(limit // 20, "10.40.0.1")
    chunk = [(EVENT, event_line(spray[n % len(spray)], "postfix.sasl", "postfix", 10, 1,
                                float(n))) for n in range(limit // 10)]
    for _ in range(11):
        box.append(chunk)
    steps = []
    while box.full:
        begin = time.perf_counter()
        if not box.summarise():
            break
        steps.append(time.perf_counter() - begin)
    steps.sort()
    print(f"4. outbox summarising, {limit * 11 // 10} events of {len(spray)} addresses into "
          f"{len(box)} rows: {len(steps)} steps, median {steps[len(steps) // 2] * 1000:.1f} ms, "
          f"longest {steps[-1] * 1000:.1f} ms (the loop runs between steps)")
    box.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="throughput run length")
    parser.add_argument("--outage", type=float, default=600, help="database downtime, s")
    parser.add_argument("--rate", type=int, default=5000, help="events/s per host (2.)")
    parser.add_argument("--decisions", type=int, default=100, help="decisions/s (1.)")
    parser.add_argument("--count", type=int, default=2000, help="decisions measured (1.)")
    parser.add_argument("--only", choices=("1", "2", "3", "4"))
    parser.add_argument("--outbox", type=int, default=1_000_000, help="outbox limit (4.)")
    parser.add_argument("--child", choices=("receiver", "sender"), help=argparse.SUPPRESS)
    for hidden in ("--dsn", "--role", "--state", "--base"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--per-address", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "receiver":
        asyncio.run(receiver(args.dsn, args.role, args.state, args.seconds))
        return
    if args.child == "sender":
        asyncio.run(sender(args.dsn, args.role, args.state, args.rate, args.seconds, args.base,
                           args.per_address))
        return
    if os.geteuid() != 0:
        sys.exit("bench_fleet: needs root (PostgreSQL as nobody, network namespaces)")
    print(f"(machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}: others' work "
          "makes these figures noisy)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "1", "2"):
            cluster = Cluster()
            try:
                database = cluster.new_database()
                init(cluster.dsn("syslogban", OWNER_PASSWORD, database))
                if args.only in (None, "1"):
                    propagation(cluster, database, Path(tmp), args.decisions, args.count)
                if args.only in (None, "2"):
                    for spray in (False, True):
                        throughput(cluster, database, Path(tmp), args.rate, args.seconds,
                                   spray)
            finally:
                cluster.destroy()
        if args.only in (None, "3"):
            outage(Path(tmp), args.outage)
        if args.only in (None, "4"):
            summarising(Path(tmp), args.outbox)


if __name__ == "__main__":
    main()
