"""`syslogban check`: what syslogban recognises in a log, and who it would block.

The imperative shell around the pipeline for one file or stdin: it reads,
prints detections (--jsonl), a summary, and with --replay runs the blocker
over the log's own timestamps.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, TextIO

from .blocker import Block, Blocker
from .framing import LineFramer
from .matcher import Matcher
from .pipeline import Detection, Pipeline
from .record import REJECT_REASONS, RecordParser
from .scanner import Scanner
from .signatures import Signature

READ_SIZE = 1 << 20
TOP_ADDRESSES = 10


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
        block = self.blocker.observe(detection.attack, self._clock)
        if block is not None:
            self.blocks.append(block)


def check(stream: BinaryIO, signatures: Sequence[Signature], *, jsonl: TextIO | None,
          replay: bool, max_size: int, scanner_engine: str = "auto",
          now: float | None = None) -> tuple[Pipeline, Counter[str], Replay | None]:
    """Runs the pipeline over `stream`; returns it (counters) and per-address counts."""
    matcher = Matcher(signatures)
    pipeline = Pipeline(RecordParser(max_size), matcher,
                        Scanner(matcher.prefilters(), max_size, scanner_engine))
    framer = LineFramer(max_size)
    addresses: Counter[str] = Counter()
    replayer = Replay() if replay else None
    clock = time.time() if now is None else now
    read = stream.read
    while True:
        data = read(READ_SIZE)
        chunk = framer.feed(data) if data else framer.close()
        if chunk:
            for detection in pipeline.feed(chunk, clock):
                attack = detection.attack
                addresses[attack.address] += 1
                if jsonl is not None:
                    # Ids are [a-z0-9.-] and addresses validated: nothing to escape.
                    jsonl.write(f'{{"lineno": {detection.lineno}, "service": "{attack.service}", '
                                f'"signature": "{attack.signature}", "address": '
                                f'"{attack.address}", "danger": {attack.danger}}}\n')
                if replayer is not None:
                    replayer.add(detection)
        if not data:
            return pipeline, addresses, replayer


def report(name: str, pipeline: Pipeline, addresses: Counter[str], replay: Replay | None,
           signatures: Sequence[Signature], out: TextIO) -> None:
    c = pipeline.counters
    rejected = sum(c.rejected.values())
    print(f"syslogban check: {name}", file=out)
    print(f"lines     {c.lines} read, {c.parsed} parsed, {rejected} rejected", file=out)
    for reason, count in sorted(c.rejected.items()):
        print(f"  {count:>9}  {reason}: {REJECT_REASONS[reason]}", file=out)
    attacks = sum(c.attacks.values())
    print(f"attacks   {attacks} from {len(addresses)} addresses "
          f"({len(signatures)} signatures in use, scanner: {pipeline.scanner.engine})", file=out)
    for sig_id, count in c.attacks.most_common():
        print(f"  {count:>9}  {sig_id}", file=out)
    if pipeline.matcher.invalid_addresses:
        print(f"  {pipeline.matcher.invalid_addresses:>9}  matches dropped: "
              "not a literal IP address", file=out)
    if addresses:
        print("top addresses", file=out)
        for address, count in addresses.most_common(TOP_ADDRESSES):
            print(f"  {count:>9}  {address}", file=out)
    if replay is not None:
        _report_replay(replay, out)


def _report_replay(replay: Replay, out: TextIO) -> None:
    policy = replay.blocker.policy
    blocked = {b.address for b in replay.blocks}
    print(f"replay    {len(replay.blocks)} blocks of {len(blocked)} addresses "
          f"(threshold {policy.threshold} within {policy.window:g}s, "
          f"block {policy.block_time:g}s x{policy.multiplier:g} per repeat, "
          f"at most {policy.max_block_time:g}s)", file=out)
    if replay.undated:
        print(f"  {replay.undated} attacks before the first dated record were not "
              "replayed", file=out)
    for block in replay.blocks:
        when = datetime.fromtimestamp(block.since).isoformat(sep=" ", timespec="seconds")
        print(f"  {when}  {block.address:<39}  block #{block.nth} for "
              f"{block.until - block.since:g}s  score {block.score}  "
              f"{', '.join(block.signatures)}", file=out)


def open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")
