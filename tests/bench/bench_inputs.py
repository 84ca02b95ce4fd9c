"""Benchmark: syslogban's inputs. Prints numbers; asserts nothing.

    .venv/bin/python tests/bench/bench_inputs.py [--seconds 3] [--target 100000]
                                                 [--omprog-records 30000] [--latency-rate 200]

1. UDP listener (`--backend null`): the highest sustained rate of datagrams a
   second, sent over loopback by a second process, that syslogban takes with
   zero loss (sent = received by its listener, per its `status` counters; the
   kernel's drop counter from /proc/net/udp alongside). Rates rise in steps
   until the first loss. Target: >= 100,000/s.
2. UDP at twice the target, from two sender processes: the loss (counted the
   same two ways) and whether the daemon stays responsive: round trips of
   `status` over its control socket while the flood lasts, and one whole
   `syslogban status` command.
3. omprog (`--backend null`), driven as rsyslog drives it: one record
   written, its `OK` read, then the next (confirmMessages); and pipelined in
   transactions (BEGIN TRANSACTION, N records, COMMIT TRANSACTION; DEFER_COMMIT
   per record). Target: >= 50,000 records/s.
4. Latency (root: in a network namespace, `--backend nftables`): from the
   moment `logger` is handed an attack record (each from a new address,
   `--attempts 1`) to the element appearing in the kernel set, seen by
   `nft monitor`: straight to the unix-socket listener, and through a private
   rsyslog's omprog action when rsyslog is installed. p50 / p99 / max.

Records are the generated mail log of bench_check (genlog: realistic Postfix,
Dovecot, Sendmail traffic with 7 % attacks). Everything stays on loopback or
inside a namespace this script creates and deletes; every process it starts
it stops.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from genlog import generate  # noqa: E402
from monitor import delays_ms, percentile, send_paced, watch_elements  # noqa: E402

from syslogban.control import ControlError, request  # noqa: E402

SYSLOGBAN = [sys.executable, "-m", "syslogban"]
PORT = 5514  # inside this script's own namespace (or a free one on the host)
ATTACK = "warning: unknown[{}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
CORPUS_LINES = 50_000


# ------------------------------------------------------------------ helpers

def corpus(prefix: bytes = b"") -> list[bytes]:
    """The records sent: generated mail-log lines, each a datagram / a line."""
    return [prefix + line.encode() for line in generate(CORPUS_LINES)]


class Place:
    """Where the daemon and the senders run: a private network namespace as
    root (loopback up; its own /proc/net/udp), else the host's loopback."""

    def __init__(self) -> None:
        self.ns = ""
        if os.geteuid() == 0 and shutil.which("ip"):
            import netns
            self.ns = netns.create()
            subprocess.run(["ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up"],
                           check=True)
            self.port = PORT
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *argv] if self.ns else list(argv)

    def udp_drops(self, port: int) -> int:
        """The kernel's drop counter of the UDP socket bound to `port`."""
        table = subprocess.run(self.wrap(["cat", "/proc/net/udp"]), capture_output=True,
                               text=True, check=True).stdout
        for line in table.splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}"):
                return int(fields[-1])
        return 0

    def close(self) -> None:
        if self.ns:
            import netns
            netns.delete(self.ns)


@contextmanager
def daemon(place: Place, work: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`syslogban run ARGS` with its state and control socket in `work`,
    stopped (SIGTERM, then SIGKILL) however the block ends."""
    control = work / "control.sock"
    proc = subprocess.Popen(place.wrap([*SYSLOGBAN, "run", "--state", str(work / "state.db"),
                                        "--control", str(control),
                                        "--allow-own-addresses", "false", *args]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(work / "daemon.log", "ab"), cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not _answers(control):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start:\n{(work / 'daemon.log').read_text()}")
            time.sleep(0.05)
        time.sleep(0.3)  # its listeners come up right after the control socket
        yield proc
    finally:
        _stop(proc)


def _answers(control: Path) -> bool:
    try:
        request(str(control), {"command": "status"}, timeout=2)
    except (OSError, ControlError):
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def inputs(control: Path) -> dict[str, int]:
    counters = request(str(control), {"command": "status"})["counters"]
    return {**counters["inputs"], "records_read": counters["records_read"]}


# ---------------------------------------------------------------- 1, 2: UDP

def sender_main(host: str, port: int, rate: int, seconds: float) -> None:
    """Runs in its own process: paced datagrams, then what was sent as JSON."""
    records = corpus(b"<22>")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    send, count = sock.send, len(records)
    sent = errors = 0
    started = time.perf_counter()
    end = started + seconds
    while (now := time.perf_counter()) < end:
        due = int((now - started) * rate)
        if sent >= due:
            time.sleep(0.0002)
            continue
        while sent < due:
            try:
                send(records[sent % count])
            except OSError:  # ECONNREFUSED echoes a refused earlier datagram
                errors += 1
            sent += 1
    print(json.dumps({"sent": sent, "errors": errors,
                      "seconds": time.perf_counter() - started}))


def flood(place: Place, rate: int, seconds: float, senders: int = 1) -> tuple[int, float]:
    """`senders` processes sharing `rate`; what they sent and the rate achieved."""
    procs = [subprocess.Popen(place.wrap([sys.executable, __file__, "--sender", "127.0.0.1",
                                          str(place.port), str(rate // senders), str(seconds)]),
                              stdout=subprocess.PIPE, text=True) for _ in range(senders)]
    results = [json.loads(p.communicate(timeout=seconds + 60)[0]) for p in procs]
    sent = sum(r["sent"] for r in results)
    return sent, sent / max(r["seconds"] for r in results)


def settle(control: Path) -> dict[str, int]:
    """Counters once the daemon has read everything queued (stable 0.5 s)."""
    last = inputs(control)
    while True:
        time.sleep(0.5)
        now = inputs(control)
        if now == last:
            return now
        last = now


def udp(place: Place, seconds: float, target: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-inputs-"))
    control = work / "control.sock"
    with daemon(place, work, "--listen", f"udp://127.0.0.1:{place.port}", "--backend", "null",
                "--listen-rate", "10000000", "--log-level", "error"):
        flood(place, 5_000, 1.0)  # warm-up: first records compile, allocate, cache
        best = 0
        for rate in (5_000, 10_000, 15_000, 20_000, 30_000, 50_000, 75_000, 100_000,
                     125_000, 150_000):
            before, drops_before = settle(control), place.udp_drops(place.port)
            sent, achieved = flood(place, rate, seconds)
            after = settle(control)
            received = after["received"] - before["received"]
            drops = place.udp_drops(place.port) - drops_before
            lost = sent - received
            print(f"  UDP {rate:>7,}/s asked, {achieved:>9,.0f}/s sent for {seconds:g} s: "
                  f"{sent:,} sent, {received:,} received, lost {lost:,} "
                  f"(kernel drops {drops:,})")
            if lost > 0 or achieved < 0.95 * rate:
                break
            best = rate
        print(f"UDP sustained with zero loss: {best:,} datagrams/s (target >= {target:,})")

        rate = 2 * target
        before, drops_before = settle(control), place.udp_drops(place.port)
        trips: list[float] = []
        command: list[float] = []
        done = threading.Event()

        def probe() -> None:  # the control socket while the flood lasts
            while not done.is_set():
                started = time.perf_counter()
                try:
                    request(str(control), {"command": "status"}, timeout=30)
                    trips.append((time.perf_counter() - started) * 1000)
                except OSError:
                    trips.append(float("inf"))
                if len(trips) == 3:
                    started = time.perf_counter()
                    subprocess.run([*SYSLOGBAN, "status", "--control", str(control)],
                                   capture_output=True, timeout=60, check=False)
                    command.append((time.perf_counter() - started) * 1000)
                time.sleep(0.2)

        watcher = threading.Thread(target=probe)
        watcher.start()
        try:
            sent, achieved = flood(place, rate, seconds, senders=2)
        finally:
            done.set()
            watcher.join()
        after = settle(control)
        received = after["received"] - before["received"]
        drops = place.udp_drops(place.port) - drops_before
        print(f"UDP overload {rate:,}/s asked (two senders), {achieved:,.0f}/s sent: "
              f"{sent:,} sent, {received:,} received (~{received / seconds:,.0f}/s), "
              f"lost {sent - received:,} ({(sent - received) / max(sent, 1):.1%}; "
              f"kernel drops {drops:,})")
        if trips:
            print(f"  control socket during the flood: {len(trips)} status round trips, "
                  f"p50 {percentile(trips, 0.5):.1f} ms, max {max(trips):.1f} ms; "
                  f"`syslogban status` command {command[0] if command else float('nan'):.0f} ms")
    shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------- 3: omprog

# The least any asyncio program answering omprog does: read what is there,
# answer OK per line. Its rate is the ceiling the machine sets for a
# one-record-then-OK exchange between two processes (pipe wake-ups).
BASELINE = """
import asyncio, os, sys
async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    os.write(1, b"OK\\n")
    while data := await reader.read(1 << 20):
        os.write(1, b"OK\\n" * data.count(b"\\n"))
asyncio.run(main())
"""


def _pinned(cpu: int | None) -> object:
    return None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))


def lockstep(argv: list[str], lines: list[bytes], records: int, cpus: tuple[int, int] | None,
             log: Path) -> float:
    """Records/s of rsyslog's confirmMessages exchange: a record, its OK, the next.
    `cpus`: the driver's and the child's CPU (None: the scheduler's choice)."""
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[0]})
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(log, "ab"), cwd=ROOT,
                            preexec_fn=_pinned(None if cpus is None else cpus[1]))  # type: ignore[arg-type]
    assert proc.stdin is not None and proc.stdout is not None
    write, reply = proc.stdin.fileno(), proc.stdout.readline
    try:
        if reply() != b"OK\n":
            raise SystemExit(f"omprog: no OK at start from {argv[:3]}")
        started = time.perf_counter()
        for n in range(records):
            os.write(write, lines[n % len(lines)] + b"\n")
            answer = reply()
            if answer != b"OK\n":
                raise SystemExit(f"omprog: record {n} answered {answer!r}")
        return records / (time.perf_counter() - started)
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        proc.stdin.close()
        _wait(proc)


def _wait(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def omprog(records: int, batch: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-omprog-"))
    lines = corpus()
    argv = [*SYSLOGBAN, "run", "--omprog", "--backend", "null",
            "--state", str(work / "state.db"), "--control", str(work / "control.sock"),
            "--allow-own-addresses", "false", "--log-level", "error"]
    baseline = [sys.executable, "-c", BASELINE]
    log = work / "daemon.log"
    for cpus, where in ((None, "CPUs as scheduled"), ((0, 0), "both on one CPU"),
                        ((0, 1), "on two CPUs")):
        if cpus is not None and (os.cpu_count() or 1) < 2 and cpus[1] == 1:
            continue
        ours = lockstep(argv, lines, records, cpus, log)
        ceiling = lockstep(baseline, lines, records, cpus, log)
        print(f"omprog, one record then its OK ({where}): {ours:,.0f} records/s; "
              f"a bare asyncio responder: {ceiling:,.0f}/s (target >= 50,000/s)")

    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(log, "ab"), cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    write, reply = proc.stdin.fileno(), proc.stdout.readline
    try:
        if reply() != b"OK\n":
            raise SystemExit("omprog: no OK at start")
        started = time.perf_counter()
        for first in range(0, records, batch):
            chunk = [lines[n % len(lines)] for n in range(first, min(first + batch, records))]
            os.write(write, b"BEGIN TRANSACTION\n" + b"\n".join(chunk)
                     + b"\nCOMMIT TRANSACTION\n")
            answers = [reply() for _ in range(len(chunk) + 2)]
            if answers[0] != b"OK\n" or answers[-1] != b"OK\n" or \
                    any(a != b"DEFER_COMMIT\n" for a in answers[1:-1]):
                raise SystemExit(f"omprog: transaction at {first} answered {set(answers)}")
        took = time.perf_counter() - started
        print(f"omprog, transactions of {batch} records: {records / took:,.0f} records/s "
              f"({records:,} in {took:.2f} s)")
    finally:
        proc.stdin.close()
        _wait(proc)
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- 4: latency

def latency(place: Place, rate: int, seconds: float, via_rsyslog: bool) -> None:
    """logger -> (rsyslog omprog ->) syslogban -> nftables set, per record."""
    work = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    sock = work / "log.sock"
    monitor, seen = watch_elements(place.wrap(["nft", "monitor", "elements"]))
    started_procs: list[subprocess.Popen[bytes]] = []
    try:
        if via_rsyslog:
            toml = work / "syslogban.toml"
            toml.write_text(f'backend = "nftables"\nstate = "{work}/state.db"\n'
                            f'control = "{work}/control.sock"\nlog_file = "{work}/daemon.log"\n'
                            'allow_own_addresses = false\nattempts = 1\nblock_time = "1h"\n'
                            "batch_delay = 0.001\n")
            snippet = (ROOT / "contrib" / "rsyslog" / "syslogban-omprog.conf").read_text()
            snippet = snippet.replace("/usr/bin/syslogban",
                                      str(Path(sys.executable).with_name("syslogban")))
            snippet = snippet.replace("/etc/syslogban/syslogban.toml", str(toml))
            snippet = snippet.replace("/var/log/syslogban.log", str(work / "omprog.log"))
            (work / "rsyslog-work").mkdir()
            conf = work / "rsyslog.conf"
            conf.write_text(f'global(workDirectory="{work}/rsyslog-work")\n'
                            'module(load="imuxsock" SysSock.Use="off")\n'
                            f'input(type="imuxsock" Socket="{sock}" RateLimit.Interval="0")\n'
                            + snippet)
            started_procs.append(subprocess.Popen(
                place.wrap(["rsyslogd", "-n", "-f", str(conf), "-i", str(work / "rsyslog.pid")]),
                stdout=subprocess.DEVNULL, stderr=open(work / "rsyslogd.out", "ab")))
        else:
            started_procs.append(subprocess.Popen(
                place.wrap([*SYSLOGBAN, "run", "--listen", f"unix://{sock}",
                            "--backend", "nftables", "--state", str(work / "state.db"),
                            "--control", str(work / "control.sock"),
                            "--allow-own-addresses", "false", "--attempts", "1",
                            "--block-time", "1h", "--batch-delay", "0.001",
                            "--log-level", "error"]),
                stdout=subprocess.DEVNULL, stderr=open(work / "daemon.log", "ab"), cwd=ROOT))
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline:
                raise SystemExit("latency: the socket never appeared")
            time.sleep(0.05)
        logger = subprocess.Popen(["logger", "--socket", str(sock), "-t", "postfix/smtpd",
                                   "--id=4242", "-p", "mail.warning"], stdin=subprocess.PIPE)
        started_procs.append(logger)
        assert logger.stdin is not None
        # a first record: rsyslog starts its omprog child with the first one
        logger.stdin.write(b"connect from unknown[203.0.113.5]\n")
        logger.stdin.flush()
        time.sleep(3.0)
        base = int(ipaddress.IPv4Address("198.18.0.1"))
        targets = [str(ipaddress.IPv4Address(base + n)) for n in range(int(rate * seconds))]
        stdin = logger.stdin

        def send(address: str) -> None:
            stdin.write(ATTACK.format(address).encode() + b"\n")
            stdin.flush()

        sent = send_paced(targets, rate, send)
        time.sleep(2.0)
        delays = delays_ms(seen, sent)
        path = "logger -> rsyslog omprog -> syslogban" if via_rsyslog \
            else "logger -> unix socket -> syslogban"
        if delays:
            print(f"latency {path} -> kernel set, {rate}/s for {seconds:g} s: "
                  f"{len(delays)}/{len(targets)} seen, p50 {statistics.median(delays):.1f} ms, "
                  f"p99 {percentile(delays, 0.99):.1f} ms, max {max(delays):.1f} ms")
        else:
            print(f"latency {path}: no element seen by nft monitor")
        log = work / "daemon.log"
        if log.exists() and "Error" in log.read_text():
            print("  (the daemon logged errors: " + log.read_text().splitlines()[-1][:160] + ")")
    finally:
        for proc in reversed(started_procs):
            if proc.stdin:
                proc.stdin.close()
            _stop(proc)
        monitor.terminate()
        monitor.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each UDP run")
    parser.add_argument("--target", type=int, default=100_000, help="UDP target, datagrams/s")
    parser.add_argument("--omprog-records", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1024, help="records per transaction")
    parser.add_argument("--latency-rate", type=int, default=200, help="attacks/s")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--only", choices=["udp", "omprog", "latency"])
    parser.add_argument("--sender", nargs=4, metavar=("HOST", "PORT", "RATE", "SECONDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sender:
        host, port, rate, seconds = args.sender
        sender_main(host, int(port), int(rate), float(seconds))
        return
    print(f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    if args.only in (None, "udp"):
        place = Place()
        try:
            udp(place, args.seconds, args.target)
        finally:
            place.close()
    if args.only in (None, "omprog"):
        omprog(args.omprog_records, args.batch)
    if args.only in (None, "latency"):
        if os.geteuid() != 0:
            print("latency: skipped (needs root for a network namespace and nftables)")
            return
        for via_rsyslog in (False, True):
            if via_rsyslog and shutil.which("rsyslogd") is None:
                print("latency through rsyslog: skipped (rsyslogd not installed: "
                      "contrib/setup-venv.sh)")
                continue
            place = Place()
            try:
                latency(place, args.latency_rate, args.latency_seconds, via_rsyslog)
            finally:
                place.close()


if __name__ == "__main__":
    main()
