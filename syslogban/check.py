"""`syslogban check`: what syslogban recognises in a log, and who it would block.

The imperative shell around the pipeline for one file or stdin: it reads,
prints detections (--jsonl), a summary, and with --replay runs the blocker
over the log's own timestamps. A regular file is cut into byte ranges at line
boundaries, one per CPU, each checked by its own process (forked after the
rules are compiled); the parent prints the ranges' detections in file order.
A child first rebuilds the session bindings (see correlation.py) that the
log before its range leaves, so that every range sees what one process would.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, TextIO

from .attempts import Accountant, Counted
from .blocker import Block, Blocker, BlockerConfig, Policy
from .correlation import DEFAULT_SIZE as DEFAULT_SESSIONS
from .correlation import CorrelationCounters, Correlator
from .display import human_duration, local_time, printable, table
from .durations import PERMANENT, format_duration
from .framing import LineFramer
from .matcher import Attack, Matcher
from .pipeline import Counters, Detection, Pipeline, newlines, shorten, untagged_summary
from .record import REJECT_REASONS, Record, RecordParser
from .scanner import Scanner
from .signatures import Signature
from .sources import widen_pipe

READ_SIZE = 1 << 20
TOP_ADDRESSES = 10
PARALLEL_MIN_BYTES = 8 << 20  # below this, forking costs more than it saves
WARM_UP_BLOCK = 4 << 20       # read backwards in blocks this size for session bindings
WARM_UP_COST = 0.25           # reading for bindings / checking, per byte (measured: 0.18/0.70)
MERGE_COST = 0.2              # counting a range's attempts / checking it (measured: 6.4/34 us)


Found = tuple[int, Attack, Record]  # line number, attack, its record


def _json(lineno: int, attack: Attack, counted: Counted) -> str:
    """One line of --jsonl (ids are [a-z0-9.-], addresses validated: nothing to escape)."""
    return (f'{{"lineno": {lineno}, "service": "{attack.service}", '
            f'"signature": "{attack.signature}", "address": "{attack.address}", '
            f'"danger": {attack.danger}, "attempt": {counted.attempt}, '
            f'"attempts": {counted.new}}}\n')


@dataclass(slots=True)
class Replay:
    """Runs the blocker over detections in log order, on the log's own clock."""

    blocker: Blocker = field(default_factory=Blocker)
    blocks: list[Block] = field(default_factory=list)
    undated: int = 0
    _clock: float | None = None

    def add(self, detection: Detection) -> None:
        stamp = detection.record.timestamp
        if stamp is not None:
            self._clock = stamp
        if self._clock is None:
            self.undated += 1
            return
        block = self.blocker.observe(detection.attack, self._clock, detection.counted)
        if block is not None:
            self.blocks.append(block)


@dataclass(slots=True)
class CheckResult:
    counters: Counters
    addresses: Counter[str]   # attacks (lines) per address
    attempts: Counter[str]    # attempts per address (attempts.py)
    invalid_addresses: int    # matches dropped: no literal IP address, or one never blocked
    correlation: CorrelationCounters
    engine: str
    processes: int = 1
    replay: Replay | None = None
    detections: list[Found] | None = None  # a range's, for the parent to account

    def merge(self, other: CheckResult) -> None:
        self.counters.lines += other.counters.lines
        self.counters.rejected.update(other.counters.rejected)
        self.counters.attacks.update(other.counters.attacks)
        self.counters.filtered += other.counters.filtered
        self.counters.untagged += other.counters.untagged
        if self.counters.untagged_sample is None:  # ranges merge in file order
            self.counters.untagged_sample = other.counters.untagged_sample
        self.addresses.update(other.addresses)
        self.attempts.update(other.attempts)
        self.invalid_addresses += other.invalid_addresses
        for name in CorrelationCounters.__slots__:
            setattr(self.correlation, name,
                    getattr(self.correlation, name) + getattr(other.correlation, name))
        self.processes += other.processes


class Checker:
    """The compiled rules, ready to check any number of streams or ranges."""

    def __init__(self, signatures: Sequence[Signature], max_size: int,
                 scanner_engine: str = "auto", sessions: int = DEFAULT_SESSIONS) -> None:
        self.signatures = signatures
        self.max_size = max_size
        self.sessions = sessions
        self.matcher = Matcher(signatures, Correlator(sessions))
        # The records' own times: attempts are grouped, and replayed, on the log's clock.
        self.parser = RecordParser(max_size)
        self.scanner = Scanner(self.matcher.prefilters(), max_size, scanner_engine)
        self.scanner_engine = scanner_engine

    def run(self, blocks: Iterator[bytes], jsonl: TextIO | None, *,
            replay: BlockerConfig | None = None, now: float | None = None,
            lines_before: int = 0, pipeline: Pipeline | None = None,
            collect: bool = False) -> CheckResult:
        """`replay`: the policy to replay the log's attempts with (None: no replay);
        `collect`: keep the detections (a range of a file) instead of writing them."""
        if pipeline is None:
            pipeline = Pipeline(self.parser, self.matcher, self.scanner, lines_before,
                                accountant=Accountant(self.sessions))
            pipeline.account = not collect  # a range's attempts: counted by the parent
        framer = LineFramer(self.max_size)
        addresses: Counter[str] = Counter()
        attempts: Counter[str] = Counter()
        replayer = None if replay is None else Replay(Blocker(replay))
        clock = time.time() if now is None else now
        invalid_before = self.matcher.invalid_addresses
        kept: list[Found] | None = [] if collect else None
        for data in blocks:
            chunk = framer.feed(data)
            if chunk:
                self._detect(pipeline.feed(chunk, clock), addresses, attempts, jsonl, replayer,
                             kept)
        tail = framer.close()
        if tail:
            self._detect(pipeline.feed(tail, clock), addresses, attempts, jsonl, replayer, kept)
        return CheckResult(pipeline.counters, addresses, attempts,
                           self.matcher.invalid_addresses - invalid_before,
                           self.matcher.correlator.counters, self.scanner.engine,
                           replay=replayer, detections=kept)

    @staticmethod
    def _detect(detections: list[Detection], addresses: Counter[str], attempts: Counter[str],
                jsonl: TextIO | None, replay: Replay | None, kept: list[Found] | None) -> None:
        if kept is not None:  # a range: its attempts are counted in file order by the parent
            kept.extend((d.lineno, d.attack, d.record) for d in detections)
            for detection in detections:
                addresses[detection.attack.address] += 1
            return
        for detection in detections:
            addresses[detection.attack.address] += 1
            if detection.counted.new:
                attempts[detection.attack.address] += detection.counted.new
            if replay is not None:
                replay.add(detection)
        if jsonl is not None and detections:
            # One write per chunk, whatever the stream's buffering (PYTHONUNBUFFERED).
            jsonl.write("".join(_json(d.lineno, d.attack, d.counted) for d in detections))

    def run_file(self, path: str, jsonl: TextIO | None, *, processes: int,
                 now: float | None = None) -> CheckResult:
        """Checks a regular file, its byte ranges in parallel processes."""
        # The warm-up rebuilds the bindings, and the failures held for a later
        # binding (correlation.py), that a range's process starts with.
        binding = [s for s in self.signatures if s.binds or s.resolves]
        binder = None
        if any(s.binds for s in binding):  # compiled once, before the children fork
            matcher = Matcher(binding)
            binder = Pipeline(self.parser, matcher, Scanner(matcher.prefilters(), self.max_size,
                                                            self.scanner_engine))
        bounds = _line_bounds(path, processes, WARM_UP_COST if binder is not None else 0.0)
        children = [self._fork(path, start, end, now, binder)
                    for start, end in zip(bounds[1:-1], bounds[2:])]
        pipeline = Pipeline(self.parser, self.matcher, self.scanner,
                            accountant=Accountant(self.sessions))
        with open(path, "rb") as stream:
            result = self.run(_blocks(stream, bounds[1]), jsonl, now=now, pipeline=pipeline)
        clock = time.time() if now is None else now
        for pid, results in children:
            with os.fdopen(results, "rb") as pipe:
                data = pipe.read()
            _, status = os.waitpid(pid, 0)
            if status != 0 or not data:
                raise RuntimeError(f"checking part of {path} failed (see the message above)")
            part: CheckResult = pickle.loads(data)
            # Attempts span range cuts: the ranges' detections are accounted here,
            # in file order, by the accountant that saw everything before them.
            lines = []
            for lineno, attack, record in part.detections or ():
                if record.timestamp is not None:
                    pipeline.clock = record.timestamp
                counted = pipeline.count(
                    attack, record, clock if pipeline.clock is None else pipeline.clock, lineno)
                part.attempts[attack.address] += counted.new
                lines.append(_json(lineno, attack, counted))
            part.detections = None
            result.merge(part)
            if jsonl is not None:
                jsonl.write("".join(lines))
        return result

    def _fork(self, path: str, start: int, end: int, now: float | None,
              binder: Pipeline | None) -> tuple[int, int]:
        """A child process that checks [start, end) of `path` (lines numbered from the file's start)."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid:
            os.close(write_end)
            return pid, read_end
        status = 1
        try:
            os.close(read_end)
            with open(path, "rb") as stream:
                clock = time.time() if now is None else now
                counted_from, lines_before = start, 0
                if binder is not None:
                    state, counted_from, lines_before = self._bindings_before(
                        binder, stream, start, clock)
                    self.matcher.correlator = state
                stream.seek(0)  # the lines the warm-up did not read yet
                lines_before += sum(newlines(block) for block in _blocks(stream, counted_from))
                stream.seek(start)
                result = self.run(_blocks(stream, end - start), None, now=clock,
                                  lines_before=lines_before, collect=True)
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(result, pipe)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)  # never the parent's atexit handlers or stdio buffers


    def _bindings_before(self, binder: Pipeline, stream: BinaryIO, end: int,
                         now: float) -> tuple[Correlator, int, int]:
        """The session bindings (and held failures) one process would hold on
        reaching offset `end`.

        Read backwards, block by block, with only the session signatures, until
        the bindings fill the correlator (older ones would have been evicted)
        or the file starts. Also returns where the reading stopped and the
        lines it read, so that they are not counted twice.
        """
        template = self.matcher.correlator
        state = Correlator(template.size, template.ttl)
        lines = 0
        while end > 0 and len(state) < state.size:
            start = end
            while True:  # back to a line start, however long the line
                start = max(0, start - WARM_UP_BLOCK)
                stream.seek(start)
                block = stream.read(end - start)
                cut = 0 if start == 0 else block.find(b"\n") + 1
                if start == 0 or cut:
                    break
            binder.matcher.correlator = Correlator(state.size, state.ttl)
            before = binder.counters.lines
            binder.feed(block[cut:], now)
            lines += binder.counters.lines - before  # counted by the feed itself
            state.absorb(binder.matcher.correlator)
            end = start + cut
        return state, end, lines


def _blocks(stream: BinaryIO, limit: int | None = None) -> Iterator[bytes]:
    """The stream's bytes in blocks, at most `limit` of them."""
    while limit is None or limit > 0:
        data = stream.read(READ_SIZE if limit is None else min(READ_SIZE, limit))
        if not data:
            return
        if limit is not None:
            limit -= len(data)
        yield data


def _line_bounds(path: str, parts: int, warm_up: float = 0.0,
                 merge: float = MERGE_COST) -> list[int]:
    """Offsets cutting the file into ranges that take about equally long, each
    after a newline. A range that must first read the file before it (session
    bindings) at `warm_up` times the cost of checking is made shorter; so is
    the first, whose process counts the attempts of the whole file, at `merge`
    times the cost of checking it."""
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb") as stream:
        for share in _shares(parts, warm_up, merge if parts > 1 else 0.0)[:-1]:
            stream.seek(max(int(size * share), bounds[-1]))
            stream.readline()
            bounds.append(min(stream.tell(), size))
    bounds.append(size)
    return sorted(set(bounds))


def _shares(parts: int, warm_up: float, merge: float = 0.0) -> list[float]:
    """Where range i ends (fractions of the file) when range i costs its length
    plus warm_up times its start, the first its length plus `merge` (it counts
    the attempts of the whole file), all ranges the same."""
    low, high = 0.0, 1.0 + merge
    for _ in range(50):  # bisect the common cost T until the last range ends at 1
        cost = (low + high) / 2
        start = max(0.0, cost - merge)  # the first range: its length, and merge for all
        ends = [start]
        for _ in range(parts - 1):
            start += cost - warm_up * start
            ends.append(start)
        low, high = (cost, high) if ends[-1] < 1 else (low, cost)
    return [min(1.0, end) for end in ends]


def check(stream: BinaryIO, signatures: Sequence[Signature], *, jsonl: TextIO | None,
          replay: BlockerConfig | None, max_size: int, scanner_engine: str = "auto",
          sessions: int = DEFAULT_SESSIONS, now: float | None = None) -> CheckResult:
    """Checks one stream in this process (`replay`: the policy to replay, or None)."""
    checker = Checker(signatures, max_size, scanner_engine, sessions)
    return checker.run(_blocks(stream), jsonl, replay=replay, now=now)


def check_path(path: str, signatures: Sequence[Signature], *, jsonl: TextIO | None,
               replay: BlockerConfig | None, max_size: int, scanner_engine: str = "auto",
               sessions: int = DEFAULT_SESSIONS, processes: int = 1,
               now: float | None = None) -> CheckResult:
    """Checks a file (or stdin for "-"), in parallel where that pays off."""
    if path == "-":  # read as it comes, a pipe widened to a block (sources.widen_pipe)
        widen_pipe(sys.stdin.fileno())
        return check(sys.stdin.buffer.raw, signatures, jsonl=jsonl,  # type: ignore[attr-defined]
                     replay=replay, max_size=max_size, scanner_engine=scanner_engine, sessions=sessions,
                     now=now)
    with open(path, "rb") as stream:  # a missing file fails here, before any work
        if replay is not None or processes < 2 or not _big_regular_file(stream):
            return check(stream, signatures, jsonl=jsonl, replay=replay, max_size=max_size,
                         scanner_engine=scanner_engine, sessions=sessions, now=now)
    checker = Checker(signatures, max_size, scanner_engine, sessions)
    return checker.run_file(path, jsonl, processes=processes, now=now)


def _big_regular_file(stream: BinaryIO) -> bool:
    info = os.fstat(stream.fileno())
    return (info.st_mode & 0o170000) == 0o100000 and info.st_size >= PARALLEL_MIN_BYTES


def default_processes() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def print_lines(path: str, linenos: set[int], out: TextIO, *, matched: bool,
                missed: bool) -> None:
    """fail2ban-regex's --print-all-matched / --print-all-missed: the lines of
    `path` whose number is in `linenos` (matched) or not (missed), made printable."""
    shown = {True: [], False: []}  # type: dict[bool, list[str]]
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            hit = number in linenos
            if (matched and hit) or (missed and not hit):
                text = printable(line.rstrip(b"\r\n").decode("utf-8", "backslashreplace"))
                shown[hit].append(f"{number:>8}  {text}")
    for hit, wanted, what in ((True, matched, "matched"), (False, missed, "missed")):
        if wanted:
            print(f"{what} lines ({len(shown[hit])})", file=out)
            for line in shown[hit]:
                print(line, file=out)


def summary(name: str, result: CheckResult, signatures: Sequence[Signature]) -> dict[str, Any]:
    """What `report` prints, as data (`syslogban check --json`)."""
    c = result.counters
    data: dict[str, Any] = {
        "input": name, "lines": c.lines, "parsed": c.parsed, "rejected": dict(c.rejected),
        "attacks": dict(c.attacks.most_common()), "addresses": len(result.addresses),
        "invalid_addresses": result.invalid_addresses, "signatures": len(signatures),
        "scanner": result.engine, "processes": result.processes,
        "sessions": asdict(result.correlation), "untagged": c.untagged,
        "attempts": sum(result.attempts.values()),
        "top_addresses": {address: {"lines": lines, "attempts": result.attempts[address]}
                          for address, lines in result.addresses.most_common(TOP_ADDRESSES)}}
    if result.replay is not None:
        data["replay"] = {"undated": result.replay.undated, "blocks": [
            {"target": b.target, "since": b.since, "until": None if b.permanent else b.until,
             "nth": b.nth, "score": b.score, "signatures": list(b.signatures)}
            for b in result.replay.blocks]}
    return data


def report(name: str, result: CheckResult, signatures: Sequence[Signature],
           out: TextIO) -> None:
    c = result.counters
    rejected = sum(c.rejected.values())
    # the counts of the three lists right-aligned in one column, as wide as the largest
    width = len(str(max([0, *c.rejected.values(), *c.attacks.values(),
                         result.invalid_addresses])))
    print(f"syslogban check: {name}", file=out)
    print(f"lines     {c.lines} read, {c.parsed} parsed, {rejected} rejected", file=out)
    for reason, count in sorted(c.rejected.items()):
        print(f"  {count:>{width}}  {reason}: {REJECT_REASONS[reason]}", file=out)
    if c.untagged:
        print(f"untagged  {untagged_summary(c.untagged)}", file=out)
        print(f"  e.g. {shorten(c.untagged_sample or '')}", file=out)
    attacks = sum(c.attacks.values())
    many = len(result.addresses)
    print(f"attacks   {attacks} from {many} address{'' if many == 1 else 'es'} "
          f"({len(signatures)} signature{'' if len(signatures) == 1 else 's'} in use, "
          f"scanner: {result.engine}, "
          f"{result.processes} process{'es' if result.processes > 1 else ''})", file=out)
    for sig_id, count in c.attacks.most_common():
        print(f"  {count:>{width}}  {sig_id}", file=out)
    if result.invalid_addresses:
        print(f"  {result.invalid_addresses:>{width}}  matches dropped: not a literal IP "
              "address, or one never blocked (unspecified, broadcast, multicast, "
              "link-local)", file=out)
    corr = result.correlation
    if corr.bound or corr.unresolved:
        late = f" ({corr.late} by a later record)" if corr.late else ""
        print(f"sessions  {corr.bound} bindings, {corr.resolved} failures resolved{late}, "
              f"{corr.unresolved} unresolved (never guessed: session not seen"
              f"{f', {corr.expired} expired' if corr.expired else ''}), "
              f"{corr.evicted} evicted", file=out)
    if result.addresses:
        print(f"attempts  {sum(result.attempts.values())} (failed logins, probes: the lines "
              "that report one attempt count it once)", file=out)
        print("top addresses", file=out)
        rows = [(address, count, result.attempts[address])
                for address, count in result.addresses.most_common(TOP_ADDRESSES)]
        for line in table(("ADDRESS", "LINES", "ATTEMPTS"), rows):
            print(f"  {line}", file=out)
    if result.replay is not None:
        _report_replay(result.replay, out)


def _report_replay(replay: Replay, out: TextIO) -> None:
    config = replay.blocker.config
    blocked = {b.target for b in replay.blocks}
    print(f"replay    {len(replay.blocks)} blocks of {len(blocked)} addresses; policy "
          f"{describe_policy(config.policy)}", file=out)
    for service, policy in sorted(config.services.items()):
        print(f"  [services.{service}] {describe_policy(policy)}", file=out)
    if replay.undated:
        print(f"  {replay.undated} attacks before the first dated record were not "
              "replayed", file=out)
    # Times in this machine's zone: the records' own offsets (or this zone, for
    # records that name none) decided the order and windows.
    rows = [(local_time(b.since), b.target, b.nth, human_duration(b.until - b.since), b.score,
             b.signatures) for b in replay.blocks]
    if rows:
        for line in table(("STARTED", "TARGET", "NTH", "FOR", "SCORE", "SIGNATURES"), rows):
            print(f"  {line}", file=out)


def describe_policy(policy: Policy) -> str:
    """A policy as an admin wrote it: "3 attempts within 30m: block 2m, x2 ..."."""
    limit = (f"{policy.threshold} attempts" if policy.count_attempts
             else f"score {policy.threshold} (danger per attempt)")
    grows = (f", x{policy.multiplier:g} per earlier block up to "
             f"{format_duration(policy.max_block_time)}"
             if policy.block_time != PERMANENT else "")
    return (f"{limit} within {format_duration(policy.window)}: block "
            f"{format_duration(policy.block_time)}{grows}")
