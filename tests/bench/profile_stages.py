"""Where the time goes: one log through syslogban's stages, each timed alone.

Prints a table; asserts nothing. Run:

    .venv/bin/python tests/bench/profile_stages.py [--lines 1000000] [--enable all]
        [--scanner plain] [--daemon]

Each stage runs alone over the whole log (bench_check's, generated once), in
this process, in the order `check` and the daemon run them: the bulk stages
chunk by chunk (reading, framing, scanning, line splitting and numbering),
then the candidate lines the scanner found through parsing, matching and
attempt accounting, each stage in a loop of its own over the previous one's
results, then output (check) or deciding, state commits and logging (the
daemon). "the whole pipeline" runs them together, as `check` does; what it
costs beyond the sum of its parts is the glue between them. Start-up
(imports, loading and compiling the rules, the scanner's database) is timed
in a fresh interpreter. The load average is printed: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_check import ENV, generate  # noqa: E402

STARTUP = """
import time
t0 = time.process_time()
from syslogban import cli
t1 = time.process_time()
from syslogban.signatures import load_rules, select
sigs = select(load_rules(), {enable!r})
t2 = time.process_time()
from syslogban.matcher import Matcher
from syslogban.scanner import Scanner
m = Matcher(sigs)
Scanner(m.prefilters(), 8192, {engine!r})
t3 = time.process_time()
print(t1 - t0, t2 - t1, t3 - t2)
"""

READ_SIZE = 1 << 20


def startup(enable: list[str], engine: str) -> list[tuple[str, float, int]]:
    out = subprocess.run([sys.executable, "-c", STARTUP.format(enable=enable, engine=engine)],
                         capture_output=True, text=True, check=True, env=ENV).stdout
    imports, rules, scanner = map(float, out.split())
    return [("start-up: imports", imports, 1), ("start-up: loading the rules", rules, 1),
            ("start-up: matcher and scanner built", scanner, 1)]


def stages(path: Path, enable: list[str], engine: str,
           daemon: bool) -> list[tuple[str, float, int]]:
    from syslogban import heap
    from syslogban.attempts import Accountant
    from syslogban.blocker import BlockerConfig
    from syslogban.check import _json
    from syslogban.decisions import Decisions
    from syslogban.durations import format_duration
    from syslogban.framing import LineFramer
    from syslogban.matcher import Matcher
    from syslogban.pipeline import Detection, Pipeline, newlines
    from syslogban.record import Malformed, RecordParser
    from syslogban.scanner import ALL, Scanner
    from syslogban.signatures import load_rules, select
    from syslogban.state import State

    signatures = select(load_rules(), enable)
    heap.settle()  # the collector as check and the daemon set it once started
    # check reads the records' own times; the daemon decides on its clock.
    parser = RecordParser(8192, timestamps=not daemon)
    clock = time.process_time  # CPU time: what others running on the machine disturb least
    now = time.time()
    rows: list[tuple[str, float, int]] = []

    def read() -> list[bytes]:
        with open(path, "rb", buffering=0) as stream:
            return list(iter(lambda: stream.read(READ_SIZE), b""))

    started = clock()
    blocks = read()
    rows.append(("reading (1 MiB blocks)", clock() - started, len(blocks)))
    framer = LineFramer(8192)
    started = clock()
    chunks = [framer.feed(block) for block in blocks]
    rows.append(("framing (whole lines)", clock() - started, len(chunks)))
    del blocks
    scanner = Scanner(Matcher(signatures).prefilters(), 8192, engine)
    started = clock()
    spans = [scanner.lines(chunk) for chunk in chunks]
    rows.append((f"scanning ({scanner.engine})", clock() - started, len(chunks)))

    # Line splitting and numbering: the pipeline's walk from candidate to candidate.
    candidates: list[tuple[bytes, int, int]] = []
    started = clock()
    lines = 0
    for chunk, found in zip(chunks, spans):
        if found is None:
            for line in chunk.split(b"\n")[:-1]:
                lines += 1
                candidates.append((line, lines, ALL))
            continue
        pos = 0
        for start, end, mask in found:
            lines += newlines(chunk[pos:start]) + 1
            pos = end + 1
            candidates.append((chunk[start:end], lines, mask))
        lines += newlines(chunk[pos:])
    rows.append(("line splitting and numbering", clock() - started, len(candidates)))

    started = clock()
    records = []
    for line, lineno, mask in candidates:
        try:
            records.append((parser.parse(line, now), lineno, mask))
        except Malformed:
            pass
    rows.append(("parsing (candidate lines)", clock() - started, len(candidates)))

    matcher = Matcher(signatures)
    started = clock()
    attacks = []
    for record, lineno, mask in records:
        attack = matcher.match(record, now, mask)
        if attack is not None:
            attacks.append((attack, record, lineno))
    rows.append(("matching (parsed records)", clock() - started, len(records)))

    accountant = Accountant()
    started = clock()
    detections = []
    for attack, record, lineno in attacks:
        when = now if record.timestamp is None else record.timestamp
        detections.append(Detection(lineno, attack, record,
                                    accountant.observe(attack, when, lineno)))
    rows.append(("attempt accounting (attacks)", clock() - started, len(attacks)))
    del candidates, records, attacks

    pipeline = Pipeline(parser, Matcher(signatures), scanner, accountant=Accountant())
    started = clock()
    total = sum(len(pipeline.feed(chunk, now)) for chunk in chunks)
    rows.append(("the whole pipeline (scanning to accounting)", clock() - started, total))

    if not daemon:
        with open(os.devnull, "w") as out:
            started = clock()
            for i in range(0, len(detections), 1000):
                out.write("".join(_json(d.lineno, d.attack, d.counted)
                                  for d in detections[i:i + 1000]))
            rows.append(("output (--jsonl)", clock() - started, len(detections)))
        return rows

    decisions = Decisions(BlockerConfig())
    started = clock()
    decided = [b for d in detections if (b := decisions.decide(d, now)) is not None]
    rows.append(("deciding (evidence, scoring)", clock() - started, len(detections)))
    with tempfile.TemporaryDirectory() as directory:
        state = State(Path(directory) / "state.db")
        per_chunk = max(1, len(decided) // len(chunks))  # the daemon commits per chunk
        started = clock()
        for i in range(0, len(decided), per_chunk):
            batch = decided[i:i + per_chunk]
            state.record(batch, {b.target: decisions.blocker.history[b.target]
                                 for b, _ in batch})
        rows.append(("state commits (one per chunk with blocks)", clock() - started,
                     -(-len(decided) // per_chunk)))
        state.close()
    started = clock()
    for block, _ in decided:
        ("blocked %s for %s (%s, score %d: %s; block #%d)" % (
            block.target, format_duration(block.until - block.since), block.reason,
            block.score, ", ".join(block.signatures), block.nth))
    rows.append(("logging blocks (formatting)", clock() - started, len(decided)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--enable", action="append", default=[])
    parser.add_argument("--scanner", default="auto")
    parser.add_argument("--daemon", action="store_true",
                        help="the daemon's stages (its own clock, deciding, state) after "
                             "the pipeline, instead of check's output")
    args = parser.parse_args()
    log = generate(args.lines, 1)
    load = os.getloadavg()[0]
    rows = startup(args.enable, args.scanner) + stages(log, args.enable, args.scanner,
                                                        args.daemon)
    print(f"{args.lines} lines, {'daemon' if args.daemon else 'check'}, scanner "
          f"{args.scanner}, signatures: {' '.join(args.enable) or 'default'}; "
          f"load {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"{'stage (CPU time)':<50} {'seconds':>8} {'items':>9} {'us/item':>8}")
    for stage, seconds, items in rows:
        print(f"{stage:<50} {seconds:8.3f} {items:9d} {seconds / items * 1e6:8.2f}")


if __name__ == "__main__":
    main()
