"""The scanner: the lines it passes over parse and match no signature prefilter."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import (
    ENGINES, NON_ASCII_WORDS, NOW, PROPERTY, SIGNATURES, UTC, line_spans, lines_of,
    mixed_lines, requires_hyperscan, signature_scanner)
from system import requires
from syslogban import scanner as scanner_module
from syslogban.matcher import Matcher
from syslogban.record import RecordParser
from syslogban.scanner import ALL, Scanner

# (Hyperscan expression, caseless): plain texts, and one with a gap as the
# prefilters of signatures have them.
PREFILTERS = [("Invalid user ", False), ("auth failed", True),
              (r"disconnect from [^\n]*auth=0/", False)]
CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])
# Oddities: control characters (the parser rejects them) and bytes beyond
# ASCII (only the parser validates UTF-8; Unicode case folding differs).
ODD_BYTES = CONTROL_BYTES + bytes(range(0x80, 0x100))
LONG = 1024  # the scanner's long-line threshold with the default size limit


def spans_of(scanner: Scanner, chunk: bytes) -> list[tuple[int, int]]:
    """The (start, end) of the scanner's candidate lines, without their masks."""
    return [(start, end) for start, end, _ in scanner.lines(chunk)]


def scan(engine: str, lines: list[bytes], prefilters=PREFILTERS,
         max_size: int = 8192) -> list[bytes]:
    """The lines the engine picks out of a chunk made of `lines`."""
    chunk = b"".join(line + b"\n" for line in lines)
    spans = spans_of(Scanner(prefilters, max_size, engine), chunk)
    assert all(chunk[end:end + 1] == b"\n" for _, end in spans)
    return [chunk[start:end] for start, end in spans]


def is_candidate(line: bytes, prefilters, long: int) -> bool:
    """The oracle: what the scanner must pick out of a chunk.
    (A bytes pattern's IGNORECASE is ASCII-only, like Hyperscan's.)"""
    return (any(byte in ODD_BYTES for byte in line)
            or not line.strip(b" \t")
            or len(line) > long
            or any(re.search(expression.encode(), line, re.IGNORECASE if caseless else 0)
                   for expression, caseless in prefilters))


# ------------------------------------------------------------------ engines

def test_plain_engine_needs_no_hyperscan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner_module, "hyperscan", None)
    scanner = Scanner(PREFILTERS, 8192, "plain")
    assert scanner.engine == "plain"
    assert spans_of(scanner, b"") == []
    assert spans_of(scanner, b"x\nInvalid user a from 1.2.3.4\n\x01\n\xff\n") == [
        (2, 29), (30, 31), (32, 33)]


requires_ahocorasick = requires(
    scanner_module.ahocorasick_rs is not None,
    "needs ahocorasick-rs (setup.cfg's test extra installs it)")


def test_plain_engine_without_ahocorasick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ahocorasick-rs has no wheel (FreeBSD), a bytes.find pass per factor."""
    monkeypatch.setattr(scanner_module, "ahocorasick_rs", None)
    chunk = b"x\nInvalid user a\nAUTH FAILED x\nInvalid user auth failed\n\x01\n"
    scanner = Scanner(PREFILTERS, 8192, "plain")
    assert scanner.lines(chunk) == [
        (2, 16, 0b001), (17, 30, 0b010), (31, 55, 0b011), (56, 57, ALL)]
    assert _PLAIN_FIND._automata is None  # and the property test below compares with it


@requires_ahocorasick
@PROPERTY
@given(lines=st.lists(mixed_lines(max_size=300), max_size=25))
def test_plain_engine_finds_the_same_with_and_without_ahocorasick(lines: list[bytes]) -> None:
    chunk = b"".join(line + b"\n" for line in lines)
    assert _PLAIN_FIND.lines(chunk) == signature_scanner("plain", 8192).lines(chunk)


def _find_only() -> Scanner:
    saved, scanner_module.ahocorasick_rs = scanner_module.ahocorasick_rs, None
    try:
        return Scanner(Matcher(SIGNATURES).prefilters(), 8192, "plain")
    finally:
        scanner_module.ahocorasick_rs = saved


_PLAIN_FIND = _find_only()  # the plain engine as on FreeBSD: a pass per factor


def test_auto_engine_prefers_hyperscan() -> None:
    expected = "plain" if scanner_module.hyperscan is None else "hyperscan"
    assert Scanner(PREFILTERS, 8192).engine == expected
    assert Scanner(PREFILTERS, 8192, "auto").engine == expected


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scanner engine"):
        Scanner(PREFILTERS, 8192, "re2")


def test_hyperscan_engine_without_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner_module, "hyperscan", None)
    with pytest.raises(RuntimeError, match="not installed"):
        Scanner(PREFILTERS, 8192, "hyperscan")
    assert Scanner(PREFILTERS, 8192, "auto").engine == "plain"


# ------------------------------------------------------- both engines alike

@pytest.mark.parametrize("engine", ENGINES)
def test_spans_are_exactly_the_matching_lines(engine: str) -> None:
    chunk = (b"Nov 21 10:00:27 mx sshd[1]: Accepted publickey\n"
             b"Nov 21 10:00:27 mx sshd[1]: Invalid user a from 192.0.2.1 port 22\n"
             b"benign\n"
             b"Invalid user at the start\n"
             b"ends with Invalid user \n")
    spans = spans_of(Scanner(PREFILTERS, 8192, engine), chunk)
    assert spans == [line_spans(chunk)[i] for i in (1, 3, 4)]


@pytest.mark.parametrize("engine", ENGINES)
def test_first_and_last_line_and_several_hits_per_line(engine: str) -> None:
    lines = [b"Invalid user Invalid user auth failed \x01", b"x", b"y auth failed"]
    assert scan(engine, lines) == [lines[0], lines[2]]


@requires_hyperscan
def test_each_pattern_is_reported_once_per_line_however_often_it_occurs() -> None:
    """A line full of a signature's words (or of bytes beyond ASCII) made one
    Python call per occurrence: 13 ms for 8 KiB. Now one per pattern and line."""
    scanner = Scanner(PREFILTERS, 8192, "hyperscan")
    lines = [b"Invalid user auth failed " * 40, "é".encode() * 500, b"Invalid user x"]
    found = scanner.lines(b"".join(line + b"\n" for line in lines))
    assert found is not None and len(found) == 3
    assert len(scanner._hits) <= 2 + 1 + 1  # two prefilters, one oddity, one prefilter


@pytest.mark.parametrize("engine", ENGINES)
def test_case_sensitive_prefilter(engine: str) -> None:
    lines = [b"invalid user a", b"INVALID USER a", b"Invalid User a", b"Invalid user a"]
    assert scan(engine, lines) == [b"Invalid user a"]


@pytest.mark.parametrize("engine", ENGINES)
def test_caseless_prefilter(engine: str) -> None:
    lines = [b"auth failed", b"AUTH FAILED", b"Auth Failed", b"auth  failed", b"authfailed"]
    assert scan(engine, lines) == lines[:3]


@pytest.mark.parametrize("engine", ENGINES)
def test_text_split_across_lines_is_not_a_hit(engine: str) -> None:
    assert scan(engine, [b"text Invalid", b"user text"]) == []


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("byte", list(CONTROL_BYTES), ids=lambda b: f"0x{b:02x}")
def test_control_characters_are_candidates(engine: str, byte: int) -> None:
    line = b"benign " + bytes([byte]) + b" text"
    assert scan(engine, [b"a", line, b"b"]) == [line]


@pytest.mark.parametrize("engine", ENGINES)
def test_tab_and_printable_ascii_are_not_candidates(engine: str) -> None:
    printable = bytes(range(0x20, 0x7F))
    assert scan(engine, [b"a\tb", b"\tindented", printable, b"trailing tab\t"]) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_blank_lines_are_candidates(engine: str) -> None:
    lines = [b"a", b"", b" ", b"\t", b" \t \t", b"b", b" x "]
    assert scan(engine, lines) == [b"", b" ", b"\t", b" \t \t"]


@pytest.mark.parametrize("engine", ENGINES)
def test_blank_first_and_consecutive_lines(engine: str) -> None:
    assert scan(engine, [b"", b"", b"a", b"", b""]) == [b"", b"", b"", b""]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("max_size, long", [(8192, LONG), (100, 100), (LONG, LONG)])
def test_long_lines_are_candidates(engine: str, max_size: int, long: int) -> None:
    at_threshold, beyond = b"x" * long, b"y" * (long + 1)
    far_beyond = b"z" * (3 * max_size)
    lines = [b"a", at_threshold, beyond, b"b", far_beyond, b"c" * (long - 1)]
    assert scan(engine, lines, max_size=max_size) == [beyond, far_beyond]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("byte", [0x80, 0x9F, 0xA0, 0xC3, 0xE6, 0xF0, 0xFF],
                         ids=lambda b: f"0x{b:02x}")
def test_bytes_beyond_ascii_are_candidates(engine: str, byte: int) -> None:
    line = b"benign " + bytes([byte]) + b" text"
    assert scan(engine, [b"a", line, b"b"]) == [line]


@pytest.mark.parametrize("engine", ENGINES)
def test_non_utf8_and_non_ascii_lines_go_to_the_parser(engine: str) -> None:
    lines = [b"benign", b"user j\xf6rg", b"benign", b"\xed\xa0\x80",
             *(word.encode() for word in NON_ASCII_WORDS), b"benign again"]
    assert scan(engine, lines) == [line for line in lines if not line.isascii()]


@pytest.mark.parametrize("engine", ENGINES)
def test_state_does_not_leak_between_chunks(engine: str) -> None:
    scanner = Scanner(PREFILTERS, 8192, engine)
    assert spans_of(scanner, b"Invalid user \n" + b"x" * 2000 + b"\n") == [(0, 13), (14, 2014)]
    assert spans_of(scanner, b"benign\nbenign\n") == []
    assert spans_of(scanner, b"") == []


@pytest.mark.parametrize("engine", ENGINES)
def test_no_prefilters_still_finds_oddities(engine: str) -> None:
    assert scan(engine, [b"a", b"", b"\x1b"], prefilters=[]) == [b"", b"\x1b"]


@pytest.mark.parametrize("engine", ENGINES)
def test_prefilters_are_expressions_matched_within_one_line(engine: str) -> None:
    lines = [b"disconnect from x ehlo=1 auth=0/1", b"auth=0/1 disconnect from x",
             b"disconnect from x", b"auth=0/1", b"disconnect from auth=0/"]
    assert scan(engine, lines) == [lines[0], lines[4]]
    assert scan(engine, [b"disconnect from x", b"auth=0/1"]) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_signature_prefilters_are_more_selective_than_their_literal(engine: str) -> None:
    prefilters = Matcher(SIGNATURES).prefilters()
    lines = [b"sshd[1]: Invalid user root from 192.0.2.1 port 22",
             b"sshd[1]: Invalid user root", b"BAD LOGIN from 192.0.2.1",
             b"warning: unknown[192.0.2.1]: SASL PLAIN authentication failed",
             b"SASL PLAIN authentication failed"]
    assert scan(engine, lines, prefilters) == [lines[0], lines[2], lines[3]]


@pytest.mark.parametrize("engine", ENGINES)
@PROPERTY
@given(lines=st.lists(mixed_lines(max_size=1200), max_size=25),
       max_size=st.sampled_from([8192, 1200, 300]))
def test_lines_passed_over_parse_and_match_no_prefilter(engine: str, lines: list[bytes],
                                                        max_size: int) -> None:
    matcher = Matcher(SIGNATURES)
    prefilters = matcher.prefilters()
    chunk = b"".join(line + b"\n" for line in lines)
    spans = spans_of(signature_scanner(engine, max_size), chunk)
    assert spans is not None
    assert spans == sorted(set(spans))
    picked = set(spans)
    parser = RecordParser(max_size, UTC)
    long = min(LONG, max_size)
    for span, line in zip(line_spans(chunk), lines_of(chunk)):
        assert (span in picked) == is_candidate(line, prefilters, long), line
        if span not in picked:
            record = parser.parse(line, NOW)  # must not raise
            assert matcher.match(record, NOW) is None


@requires_hyperscan
def test_compiled_database_is_cached_and_gives_the_same_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSLOGBAN_CACHE_DIR", str(tmp_path))
    prefilters = [("authentication failed", False), ("rip=", True)]
    chunk = b"a\nx authentication failed\nRIP=1\n\x01\n" + b"y" * 2000 + b"\n"
    first = Scanner(prefilters, 8192, "hyperscan")
    [cached] = list(tmp_path.glob("scanner-*.hsdb"))
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    second = Scanner(prefilters, 8192, "hyperscan")  # loaded, not compiled
    assert first.lines(chunk) == second.lines(chunk) == [
        (2, 25, 1 << 0), (26, 31, 1 << 1), (32, 33, ALL), (34, 2034, ALL)]
    cached.write_bytes(b"not a database")  # a broken cache is compiled again
    assert Scanner(prefilters, 8192, "hyperscan").lines(chunk) == first.lines(chunk)
    monkeypatch.setenv("SYSLOGBAN_CACHE_DIR", "")
    assert Scanner(prefilters, 8192, "hyperscan").lines(chunk) == first.lines(chunk)


@pytest.mark.parametrize("engine", ENGINES)
def test_masks_name_the_prefilters_found_in_each_line(engine: str) -> None:
    prefilters = [("aaaa", False), ("bbbb", False), ("cccc", True)]
    scanner = Scanner(prefilters, 8192, engine)
    chunk = b"aaaa bbbb\nCCCC\nbbbb \xc3\xa9\nnone\n"
    assert scanner.lines(chunk) == [(0, 9, 0b011), (10, 14, 0b100), (15, 22, ALL)]


# ------------------------------------------------------ the plain engine's factors

@pytest.mark.parametrize("prefilter, expected", [
    ("Invalid user ", {"Invalid user "}),
    (r"disconnect from [^\n]*auth=0/", {"disconnect from "}),
    (r"lost connection after (?:AUTH|EHLO) from ", {"lost connection after "}),
    (r"(?:Aborted login|Disconnected)[^\n]*\((?:auth failed, [^\n]* attempts|proxy dest)\)",
     {"Aborted login", "Disconnected"}),
    # Python's parser takes the alternatives' common "A" out in front of them
    (r"(?:AUTHENTICATE [^\n]* failure|Authentication failure) host=",
     {"UTHENTICATE ", "uthentication failure"}),
])
def test_factors_are_the_most_selective_texts(prefilter: str, expected: set[str]) -> None:
    assert scanner_module.factors(prefilter) == expected


def test_a_prefilter_without_text_is_refused() -> None:
    with pytest.raises(ValueError, match="no literal text"):
        scanner_module.factors(r"[^\n]*")


@PROPERTY
@given(line=mixed_lines())
def test_every_line_a_prefilter_matches_holds_one_of_its_factors(line: bytes) -> None:
    for text, caseless in Matcher(SIGNATURES).prefilters():
        if re.search(text.encode(), line, re.IGNORECASE if caseless else 0):
            held = line.lower() if caseless else line
            assert any((f.lower() if caseless else f).encode() in held
                       for f in scanner_module.factors(text)), (text, line)
