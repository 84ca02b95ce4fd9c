#!/usr/bin/env python3
"""Coverage-guided fuzz target: bytes -> framer -> pipeline with every signature.

Why: everything syslogban reads is written, at least in part, by the people it
blocks. Whatever bytes arrive, these invariants must hold, and `check` raises
InvariantViolation when one does not:

* nothing raises: framing, parsing and matching turn any input into records,
  rejections and detections;
* framing keeps memory bounded: a framer holds at most one record's worth of
  bytes (`max_size` plus a little), and hands on no record longer than
  `max_size + 2` plus the piece that completed it (a record that arrived whole
  in one read is handed on whole: the parser then rejects it as too long);
* every line is counted exactly once;
* a detection names a literal address that is written in the text (in the
  record's own message; for a signature that resolves a session, in a record
  fed before), in its one normal spelling;
* a signature detects only in records of its own program tags;
* the Hyperscan and the plain scanner engine find exactly the same.

Input format, decoded with atheris' FuzzedDataProvider (libFuzzer's layout:
numbers from the end of the input, the stream from the front):
  last byte       framing: even = LineFramer (a pipe), odd = OctetFramer (RFC 6587 TCP)
  byte before     record size limit: 64 << (value % 8), from 64 to 8192 bytes
  2 bytes before  piece size: the stream is fed in reads of 1 to 4096 bytes
  the rest        the stream
`encode` builds such an input. Without atheris an equivalent decoder is used,
so the corpus replays the same way in the normal test suite
(tests/fuzz/test_corpus.py). Commands: tests/fuzz/README.md.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache

try:
    import atheris
except ImportError:  # the normal test suite replays the corpus without it
    atheris = None

# Fuzzing: syslogban's code is instrumented for coverage as it is imported (only
# it: instrumenting the standard library too halves the speed). Imported by the
# tests: plain imports. Not atheris' "RegEx" hook: its pattern proxy takes no
# `pos` argument, which the record parser and tomllib pass.
if __name__ == "__main__" and atheris is not None:
    _instrumented = atheris.instrument_imports(include=["syslogban"])
else:
    _instrumented = contextlib.nullcontext()
with _instrumented:
    from syslogban.address import normalize_address
    from syslogban.framing import LineFramer, OctetFramer
    from syslogban.matcher import Matcher
    from syslogban.pipeline import Detection, Pipeline
    from syslogban.record import RecordParser
    from syslogban.scanner import Scanner, hyperscan
    from syslogban.signatures import Signature, load_rules, select

NOW = 1_800_000_000.0
MAX_PIECE = 4096
COUNT_DIGITS = 10  # the longest octet count OctetFramer waits for, plus its space below
SIGNATURES: tuple[Signature, ...] = tuple(select(load_rules(), enable=["all"]))
BY_ID = {s.id: s for s in SIGNATURES}
ENGINES = ("plain", "hyperscan") if hyperscan is not None else ("plain",)


class InvariantViolation(AssertionError):
    """An input broke one of the invariants of the module docstring."""


def fail_unless(condition: bool, message: str) -> None:
    """Like assert, but kept under `python -O`: the fuzzer must never miss a violation."""
    if not condition:
        raise InvariantViolation(message)


# --- input format ---------------------------------------------------------------------

@dataclass(frozen=True)
class FuzzInput:
    stream: bytes
    octet: bool      # OctetFramer (TCP), else LineFramer (pipe)
    max_size: int
    piece: int


class _Provider:
    """The part of atheris.FuzzedDataProvider used here, for running without atheris:
    integers taken from the end of the data (the last byte first, each further
    byte shifted below), reduced modulo the range; bytes from the front."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._end = len(data)

    def ConsumeIntInRange(self, low: int, high: int) -> int:  # noqa: N802 (atheris' name)
        span, value, shift = high - low, 0, 0
        while shift < 64 and span >> shift and self._end:
            self._end -= 1
            value = (value << 8) | self._data[self._end]
            shift += 8
        return low + value % (span + 1)

    def remaining_bytes(self) -> int:
        return self._end

    def ConsumeBytes(self, count: int) -> bytes:  # noqa: N802
        taken = self._data[:min(count, self._end)]
        self._data, self._end = self._data[len(taken):], self._end - len(taken)
        return taken


def decode(data: bytes, provider: type | None = None) -> FuzzInput:
    """The parameters and stream of one fuzz input (see the module docstring)."""
    if provider is None:
        provider = atheris.FuzzedDataProvider if atheris is not None else _Provider
    fdp = provider(data)
    octet = fdp.ConsumeIntInRange(0, 255) % 2 == 1
    max_size = 64 << (fdp.ConsumeIntInRange(0, 255) % 8)
    piece = fdp.ConsumeIntInRange(1, MAX_PIECE)
    return FuzzInput(fdp.ConsumeBytes(fdp.remaining_bytes()), octet, max_size, piece)


def encode(stream: bytes, *, octet: bool = False, max_size: int = 8192,
           piece: int = MAX_PIECE) -> bytes:
    """The fuzz input that decodes to these parameters: for writing corpus files."""
    shift = max_size.bit_length() - 7
    if not (0 <= shift < 8 and 64 << shift == max_size and 1 <= piece <= MAX_PIECE):
        raise ValueError("max_size must be 64 << 0..7, piece 1..4096")
    value = piece - 1
    return stream + bytes([value & 0xFF, value >> 8, shift, int(octet)])


# --- the check --------------------------------------------------------------------------

@cache
def _scanner(engine: str, max_size: int) -> Scanner:
    """Scanners keep no state between chunks: one per engine and size (Hyperscan compiles)."""
    return Scanner(Matcher(SIGNATURES).prefilters(), max_size, engine)


def _pipeline(engine: str, max_size: int) -> Pipeline:
    return Pipeline(RecordParser(max_size), Matcher(SIGNATURES), _scanner(engine, max_size))


def _pieces(stream: bytes, piece: int) -> list[bytes]:
    return [stream[i:i + piece] for i in range(0, len(stream), piece)]


def frame_lines(stream: bytes, max_size: int, piece: int) -> list[bytes]:
    """The chunks a LineFramer gives for `stream` read `piece` bytes at a time,
    checking its framing invariants on the way."""
    framer = LineFramer(max_size)
    chunks = []
    for data in _pieces(stream, piece):
        chunk = framer.feed(data)
        fail_unless(chunk == b"" or chunk.endswith(b"\n"), "a chunk ends inside a record")
        fail_unless(len(framer._partial) <= max_size + 2,
                    f"LineFramer holds {len(framer._partial)} bytes (limit {max_size})")
        chunks.append(chunk)
    chunks.append(framer.close())
    for line in b"".join(chunks).split(b"\n")[:-1]:
        fail_unless(len(line) <= max_size + 2 + piece,
                    f"LineFramer made a record of {len(line)} bytes from reads of {piece}")
    return chunks


def frame_octets(stream: bytes, max_size: int, piece: int) -> list[bytes]:
    """The records an OctetFramer gives, checking its framing invariants on the way."""
    framer = OctetFramer(max_size)
    records = []
    for data in _pieces(stream, piece):
        for record in framer.feed(data):
            fail_unless(len(record) <= max_size + 2 + piece,
                        f"OctetFramer made a record of {len(record)} bytes from reads of {piece}")
            records.append(record)
        fail_unless(len(framer._buffer) <= max_size + 2 + COUNT_DIGITS + 1,
                    f"OctetFramer holds {len(framer._buffer)} bytes (limit {max_size})")
        if framer.broken:
            fail_unless(framer.feed(b"1 x\n") == [], "a broken OctetFramer goes on framing")
            break
    return records


_ADDRESS_RUN = re.compile(r"[0-9A-Fa-f:.]+")
_LONGEST_ADDRESS = 4 + 1 + 44  # what <ADDR> takes before a zone id


def written_in(address: str, text: str) -> bool:
    """Whether `text` holds a spelling of `address` (any case, compressed or not,
    IPv4-mapped, with a zone id)."""
    if address in text:
        return True  # the usual case: written in its normal spelling
    for run in _ADDRESS_RUN.finditer(text):
        s = run.group()
        for start in range(len(s)):
            if ":" not in s[start:start + 5]:
                continue  # <ADDR> has its first colon within the first 5 characters
            for end in range(start + 2, min(len(s), start + _LONGEST_ADDRESS) + 1):
                if normalize_address(s[start:end]) == address:
                    return True
    return False


def _applies(signature: Signature, program: str | None) -> bool:
    return not signature.programs or (
        program is not None and any(fnmatchcase(program, p) for p in signature.programs))


def check_detections(detections: Sequence[Detection], lines: Sequence[bytes]) -> None:
    """Each detection names an address written in the text, of a signature of its program.

    `lines[n - 1]` is the record of line number n.
    """
    for detection in detections:
        attack, record = detection.attack, detection.record
        signature = BY_ID[attack.signature]
        where = f"{attack.signature} in line {detection.lineno}"
        fail_unless(normalize_address(attack.address) == attack.address,
                    f"{where}: {attack.address!r} is not a normalised address")
        fail_unless(_applies(signature, record.program),
                    f"{where}: detected in a record of program {record.program!r}")
        if signature.resolves:  # the address was bound by an earlier record
            texts = [line.decode("utf-8", "replace") for line in lines[:detection.lineno]]
            fail_unless(any(written_in(attack.address, text) for text in texts),
                        f"{where}: {attack.address} is in no record fed before")
        else:
            fail_unless(written_in(attack.address, record.message),
                        f"{where}: {attack.address} is not in {record.message!r}")


def run_lines(stream: bytes, max_size: int, piece: int, engine: str
              ) -> tuple[list[Detection], Pipeline, list[bytes]]:
    chunks = frame_lines(stream, max_size, piece)
    pipeline = _pipeline(engine, max_size)
    detections = [d for chunk in chunks for d in pipeline.feed(chunk, NOW)]
    lines = b"".join(chunks).split(b"\n")[:-1]
    fail_unless(pipeline.counters.lines == len(lines),
                f"{len(lines)} lines counted as {pipeline.counters.lines}")
    return detections, pipeline, lines


def check(data: bytes) -> None:
    """Runs one fuzz input; raises InvariantViolation when an invariant breaks."""
    case = decode(data)
    if case.octet:
        records = frame_octets(case.stream, case.max_size, case.piece)
        pipeline = _pipeline("plain", case.max_size)  # whole records: no scanner at work
        found = [pipeline.feed_record(record, NOW) for record in records]
        fail_unless(pipeline.counters.lines == len(records),
                    f"{len(records)} records counted as {pipeline.counters.lines}")
        check_detections([d for d in found if d is not None], records)
        return
    outcomes = {}
    for engine in ENGINES:
        detections, pipeline, lines = run_lines(case.stream, case.max_size, case.piece, engine)
        check_detections(detections, lines)
        c = pipeline.counters
        outcomes[engine] = (detections, c.lines, dict(c.rejected), dict(c.attacks),
                            pipeline.matcher.invalid_addresses)
    first = outcomes[ENGINES[0]]
    fail_unless(all(outcome == first for outcome in outcomes.values()),
                f"the scanner engines disagree: {outcomes}")


def test_one_input(data: bytes) -> None:
    """The atheris entry point."""
    check(data)


def main(argv: list[str]) -> None:
    if atheris is None:
        sys.exit("atheris is not installed: .venv/bin/pip install atheris")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
