"""The coverage table (rules/COVERAGE.md) is machine-checked, not prose.

Every row names a log message as its daemon's source writes it (the printf
format), where it comes from, the versions it holds for, and a verdict: the
signature that counts it, "not an attack" with the reason, or "not matched"
with the reason an attack is deliberately left alone. Each row's example must
be an instance of its format; a row with a signature must be found by that
signature, first, with the example's address (context lines, the records that
bind a session, go first); the example of a row without one must be found by
no signature at all, not even one that is off by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from syslogban.examples import EXAMPLE_CLOCK, check_example
from syslogban.correlation import Correlator
from syslogban.matcher import Matcher
from syslogban.record import RecordParser
from syslogban.signatures import Example, load_rules

TABLE = Path(__file__).resolve().parent.parent / "rules" / "COVERAGE.md"
SIGNATURES = {s.id: s for s in load_rules()}
VERDICTS_WITHOUT_SIGNATURE = ("not an attack: ", "not matched: ")
# printf conversions (%s, %.100s, %016"PRIx64", %lu ...) and what they stand for
_CONVERSION = re.compile(r'%[-+ #0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:"\s*PRI[a-zA-Z0-9]+\s*"|'
                         r'(?:hh|h|ll|l|z|j|t)?[diouxXcsm%])')
_CELL = re.compile(r"`((?:[^`]|``)+)`")
_ARROW = " → "


@dataclass(frozen=True)
class Row:
    section: str
    lineno: int
    format: str
    where: str
    versions: str
    verdict: str
    lines: tuple[str, ...]  # context lines, then the example
    address: str | None

    @property
    def signature(self) -> str | None:
        found = _CELL.match(self.verdict)
        return found.group(1) if found else None

    def __str__(self) -> str:
        return f"COVERAGE.md:{self.lineno} ({self.section}) {self.format}"


def _cells(line: str) -> list[str]:
    """The cells of a table row; "\\|" is a pipe inside a cell."""
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip().replace("\\|", "|") for c in cells]


def rows() -> list[Row]:
    found, section = [], ""
    for lineno, line in enumerate(TABLE.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("## "):
            section = line[3:].strip()
        if not line.startswith("| `"):
            continue
        fmt, where, versions, verdict, example = _cells(line)
        text, _, address = example.partition(_ARROW)
        found.append(Row(section, lineno, fmt.strip("`"), where, versions, verdict,
                         tuple(m.group(1) for m in _CELL.finditer(text)),
                         address.strip() or None))
    return found


ROWS = rows()


def format_regex(fmt: str) -> re.Pattern[str]:
    """A regular expression for the messages a printf format produces."""
    out, pos = [], 0
    for m in _CONVERSION.finditer(fmt):
        out.append(re.escape(fmt[pos:m.start()]))
        kind = m.group(0)[-1]
        out.append("%" if kind == "%" else r"-?\d+" if kind in "di" else
                   r"\d+" if kind in "ou" else r"[0-9a-fA-F]+" if kind in 'xX"' else
                   "." if kind == "c" else ".*?")
        pos = m.end()
    out.append(re.escape(fmt[pos:]))
    return re.compile("".join(out))


def test_the_table_is_there_and_covers_every_daemon() -> None:
    sections = {row.section.split(" (")[0] for row in ROWS}
    for daemon in ("OpenSSH", "Postfix", "Dovecot", "Exim", "Sendmail", "OpenSMTPD",
                   "Courier", "Cyrus", "UW-IMAP"):
        assert any(s.startswith(daemon) for s in sections), daemon
    print(f"\ncoverage table: {len(ROWS)} rows, "
          f"{sum(r.signature is not None for r in ROWS)} with a signature, "
          f"{sum(r.verdict.startswith('not matched') for r in ROWS)} not matched")


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_row(row: Row) -> None:
    assert row.where and row.versions, "every row names its source and versions"
    assert row.lines, "every row carries an example built from its format"
    parser = RecordParser()
    # The row's message is the example's last line, or, where the address is
    # named only after the failure (a held failure, correlation.py), an earlier one.
    messages = [parser.parse(line.encode(), EXAMPLE_CLOCK).message for line in row.lines]
    assert any(format_regex(row.format).search(m) for m in messages), \
        f"the example {messages[-1]!r} is no instance of the format"
    if row.signature is None:
        assert row.verdict.startswith(VERDICTS_WITHOUT_SIGNATURE) and len(row.verdict) > 20, \
            "a row without a signature says why"
        assert row.address is None
        matcher = Matcher(replace(s, enabled=True) for s in SIGNATURES.values())
        for line in row.lines[:-1]:
            matcher.match(parser.parse(line.encode(), EXAMPLE_CLOCK), EXAMPLE_CLOCK)
        attack = matcher.match(parser.parse(row.lines[-1].encode(), EXAMPLE_CLOCK),
                               EXAMPLE_CLOCK)
        assert attack is None, f"found by {attack.signature}"
        return
    assert row.signature in SIGNATURES, f"no signature {row.signature}"
    assert row.address is not None, "a row with a signature names the address found"
    matcher = Matcher(replace(s, enabled=True) for s in SIGNATURES.values())
    matcher.correlator = Correlator()
    example = Example(row.lines[-1], row.address, "example", row.lines[:-1])
    problem = check_example(SIGNATURES[row.signature], example, matcher, parser)
    assert problem is None, problem


EXIM = [s for s in SIGNATURES.values() if s.service == "exim"]


@pytest.mark.parametrize("signature", EXIM, ids=lambda s: s.id)
def test_every_exim_signature_takes_the_logwatch_repetition_suffix(signature) -> None:
    """logwatch repeats an Exim line with ": N Time(s)"; every signature takes it alike."""
    matcher = Matcher(replace(s, enabled=True) for s in SIGNATURES.values())
    for example in signature.examples:
        if example.kind != "example" or example.line.endswith(" Time(s)"):
            continue
        repeated = replace(example, line=example.line + ": 12 Time(s)")
        problem = check_example(signature, repeated, matcher, RecordParser())
        assert problem is None, f"{repeated.line!r}: {problem}"
