"""The detection pipeline: chunks of records in, detections and counters out.

Rules of this file:
* Pure: it ties scanner, record parser and matcher together and counts;
  reading, printing and blocking belong to its callers (check, daemon).
* Every input line is counted exactly once: parsed, or rejected with a reason.
  Lines the scanner passes over are parsed lines by the scanner's contract.
* Every detection says which attempt it reports (attempts.py), on the
  record's own clock where the parser read one (check), else on `now`.
  A record that repeats its process's last detection at another severity is
  the same line written to two logs (Exim's syslog_duplication: main and
  reject log): it reports the attempt the first one did, whatever other
  processes logged between the two (Echoes).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from .attempts import Accountant, Counted
from .matcher import Attack, Matcher
from .record import Malformed, Record, RecordParser
from .scanner import ALL, Scanner


@dataclass(slots=True)
class Counters:
    lines: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    attacks: Counter[str] = field(default_factory=Counter)  # per signature id
    filtered: int = 0  # parsed, but of another facility or an ignored program
    # Parsed without a program tag although a signature's text is in the line:
    # no signature can apply (a header form syslogban does not know?).
    untagged: int = 0
    untagged_sample: str | None = None  # the first such line

    @property
    def parsed(self) -> int:
        return self.lines - self.rejected.total()


def untagged_summary(count: int) -> str:
    """What check and status say about records without a program tag."""
    return (f"{count} record{'s' if count != 1 else ''} without a program tag "
            "(no signature can apply)")


SAMPLE_WIDTH = 160


def shorten(line: str) -> str:
    """A sample line as shown to an admin: at most SAMPLE_WIDTH characters."""
    return line if len(line) <= SAMPLE_WIDTH else line[:SAMPLE_WIDTH - 3] + "..."


UNCOUNTED = Counted(0, 0, 0)  # a detection whose attempt is counted elsewhere
_ECHO_SOURCES = 4096  # processes whose last detection is kept (then all are forgotten)


class Echoes:
    """The last detection of each process (host, program, pid), to tell the
    second copy of a line written to two logs at two severities. Per process,
    not the last record: other daemons' lines fall between the two copies."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[str | None, str | None, int | None],
                         tuple[Record, Counted]] = {}

    def attempt(self, record: Record) -> int | None:
        """The attempt of the line `record` repeats at another severity, or None."""
        if record.severity is None:
            return None
        last = self._last.get((record.hostname, record.program, record.pid))
        if (last is None or last[0].severity in (None, record.severity)
                or last[0]._replace(severity=record.severity) != record):
            return None
        return last[1].attempt

    def note(self, record: Record, counted: Counted) -> None:
        last = self._last
        if record.severity is None:  # no copy can follow it: as good as no line kept
            if last:
                last.pop((record.hostname, record.program, record.pid), None)
            return
        if len(last) >= _ECHO_SOURCES:
            last.clear()  # a forgotten first copy only makes its second count again
        last[(record.hostname, record.program, record.pid)] = (record, counted)


class Detection(NamedTuple):
    lineno: int  # 1-based over every line fed
    attack: Attack
    record: Record
    counted: Counted  # the attempt it reports, and what it adds


_new = tuple.__new__  # _new(Detection, fields): without its keyword handling
_ALL_BUT_NEWLINE = bytes(b for b in range(256) if b != 0x0A)


def newlines(data: bytes) -> int:
    """Twice as fast as data.count(b"\\n") (measured): a C loop with no compare."""
    return len(data.translate(None, _ALL_BUT_NEWLINE))


class Pipeline:
    __slots__ = ("parser", "matcher", "scanner", "accountant", "counters", "lines_before",
                 "facilities", "ignored_programs", "clock", "account", "echoes")

    def __init__(self, parser: RecordParser, matcher: Matcher, scanner: Scanner,
                 lines_before: int = 0, facilities: frozenset[int] | None = None,
                 ignored_programs: frozenset[str] = frozenset(),
                 accountant: Accountant | None = None) -> None:
        self.parser = parser
        self.matcher = matcher
        self.scanner = scanner
        self.accountant = accountant if accountant is not None else Accountant()
        # False: detections report no attempt (UNCOUNTED); a range of a file whose
        # attempts the parent process counts in file order (check.py).
        self.account = True
        self.clock: float | None = None  # the last record time read (undated records)
        self.echoes = Echoes()  # lines written to two logs
        self.counters = Counters()
        self.lines_before = lines_before  # line numbers start after these (a slice of a file)
        # Records that carry a PRI of another facility are not matched; records
        # of these programs neither (the daemon's own log coming back).
        self.facilities = facilities
        self.ignored_programs = ignored_programs

    def feed(self, chunk: bytes, now: float) -> list[Detection]:
        """Detections in `chunk`: whole records, each ending in a newline."""
        found: list[Detection] = []
        one = self._one
        count = chunk.count
        first = self.lines_before
        lines = self.counters.lines
        # Line numbers are counted only up to each candidate: one pass in all.
        pos = 0
        for start, end, mask in self.scanner.lines(chunk):
            lines += count(b"\n", pos, start) + 1
            pos = end + 1
            one(chunk[start:end], first + lines, now, found, mask)
        self.counters.lines = lines + count(b"\n", pos)
        return found

    def feed_record(self, data: bytes, now: float) -> Detection | None:
        """One record that arrived whole (a datagram, an octet-counted frame)."""
        self.counters.lines += 1
        found: list[Detection] = []
        self._one(data, self.lines_before + self.counters.lines, now, found, ALL)
        return found[0] if found else None

    def _one(self, line: bytes, lineno: int, now: float, found: list[Detection],
             mask: int) -> None:
        try:
            record = self.parser.parse(line, now, mask != ALL)  # not ALL: the scanner's clean
        except Malformed as exc:
            self.counters.rejected[exc.reason] += 1
            return
        if ((self.facilities is not None and record.facility is not None
             and record.facility not in self.facilities)
                or record.program in self.ignored_programs):
            self.counters.filtered += 1
            return
        if record.program is None:
            text = line.decode("utf-8")  # the parser took it: valid UTF-8
            if self.matcher.holds_signature_text(text, mask):
                self.counters.untagged += 1
                if self.counters.untagged_sample is None:
                    self.counters.untagged_sample = text
        attack = self.matcher.match(record, now, mask)
        if attack is not None:
            self.counters.attacks[attack.signature] += 1
            if record.timestamp is not None:
                self.clock = record.timestamp
            when = now if self.clock is None else self.clock
            counted = self.count(attack, record, when, lineno) if self.account else UNCOUNTED
            found.append(_new(Detection, (lineno, attack, record, counted)))

    def count(self, attack: Attack, record: Record, when: float, lineno: int) -> Counted:
        """What the detection of `record` adds to its attempts: nothing when the
        line is the second copy of one written to two logs."""
        echoed = self.echoes.attempt(record)
        counted = (Counted(echoed, 0, 0) if echoed is not None
                   else self.accountant.observe(attack, when, lineno))
        self.echoes.note(record, counted)
        return counted
