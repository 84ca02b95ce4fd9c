"""Shared helpers for the tests of the pure core (record, scanner, pipeline, ...).

Test modules import the plain helpers from here (`from conftest import ...`);
pytest puts this directory on sys.path because tests/ is not a package.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import system
from syslogban import scanner as scanner_module
from syslogban.matcher import Matcher
from syslogban.scanner import Scanner
from syslogban.signatures import Signature, make_signature

# A valid rule file of one signature, for the loader and command-line tests.
DEMO_RULES = '''
service = "demo"
programs = ["demo"]

[[signature]]
id = "demo.fail"
description = "login failed"
pattern = 'login failed for \\S+ from <ADDR>$'
examples = [{ line = "Nov 21 10:00:00 h demo[1]: login failed for bob from 192.0.2.1", address = "192.0.2.1" }]
injections = [{ line = "Nov 21 10:00:00 h demo[1]: login failed for 192.0.2.9 from 192.0.2.1", address = "192.0.2.1" }]
counterexamples = ["Nov 21 10:00:00 h demo[1]: login ok from 192.0.2.1"]
'''


# The CI guard of system.py: a test that needs the machine skips without it,
# and fails on CI.
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", system.MARKER_HELP)


def pytest_runtest_setup(item: pytest.Item) -> None:
    system.check_marks(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    system.report_skip(item, outcome.get_result())


UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")

# One setting for every property test: thorough, yet the suite stays fast.
PROPERTY = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))

requires_hyperscan = system.requires(
    scanner_module.hyperscan is not None,
    "needs the hyperscan wheel (installed by setup.cfg on x86-64 Linux)")
ENGINES = ["plain", pytest.param("hyperscan", marks=requires_hyperscan)]


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
       second: int = 0, tz: tzinfo = UTC) -> float:
    """Seconds since the epoch of a wall-clock time in `tz`."""
    return datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp()


# The receiver's clock in most tests: Saturday 21 November 2026, 10:00:00 UTC,
# and what "Nov 21 10:00:27" means at that time.
NOW = at(2026, 11, 21, 10, 0, 0)
STAMP = at(2026, 11, 21, 10, 0, 27)


def lines_of(chunk: bytes) -> list[bytes]:
    """The newline-terminated lines of a chunk, without their newlines."""
    return chunk.split(b"\n")[:-1]


def line_spans(chunk: bytes) -> list[tuple[int, int]]:
    """(start, end) of every line of `chunk`; chunk[end] is its newline."""
    spans, start = [], 0
    for line in lines_of(chunk):
        spans.append((start, start + len(line)))
        start += len(line) + 1
    return spans


# Signatures of the scanner and pipeline tests: case-sensitive and caseless
# patterns, a tag-free signature and one with <USER>.
SASL = make_signature(
    "postfix.sasl", "postfix", "SASL failure", ("postfix*/smtpd",),
    r"warning: [\w.-]+\[<ADDR>\](?::<PORT>)?: SASL \S+ authentication failed")
SSH_USER = make_signature(
    "sshd.invalid-user", "sshd", "unknown user", ("sshd",),
    r"Invalid user <USER> from <ADDR> port <PORT>", danger=5)
DOVECOT = make_signature(
    "dovecot.auth-failed", "dovecot", "login failure", ("dovecot",),
    r"(?i)imap-login: Disconnected \(auth failed, \d+ attempts.*rip=<ADDR>,")
TAG_FREE = make_signature(
    "free.bad-login", "free", "tag-free", (), r"BAD LOGIN from <ADDR>", danger=3)
SIGNATURES: tuple[Signature, ...] = (SASL, SSH_USER, DOVECOT, TAG_FREE)


@cache
def signature_scanner(engine: str, max_size: int,
                      signatures: tuple[Signature, ...] = SIGNATURES) -> Scanner:
    """A scanner for `signatures`, compiled once (Hyperscan takes ~10 ms) and
    shared: it keeps no state between chunks."""
    return Scanner(Matcher(signatures).prefilters(), max_size, engine)


# Texts beyond ASCII (valid UTF-8) that match no signature.
NON_ASCII_WORDS = ("jörg", "Grüße", "日本語", "\u00a0nbsp", "emoji\U0001F600", "ça")

# The pieces of mixed_lines().
ADDRESSES = ("192.0.2.7", "2001:db8::1", "::ffff:198.51.100.4", "999.1.1.1", "fe80::1%eth0")
USERS = ("root", "", "jörg", "a b", "x]: [y", "日本語", "from 192.0.2.66 port 1", "ADMIN")
WORDS = st.text(alphabet=PRINTABLE_ASCII, max_size=30)
_HEAD = "Nov 21 10:00:27 mx "
# Line kinds: a format (for str.format with addr, user, word) or a special kind.
_KINDS = {
    "benign": _HEAD + "postfix/smtpd[1]: connect from unknown[{addr}] {word}",
    "sasl": _HEAD + "postfix/smtpd[2]: warning: unknown[{addr}]: SASL LOGIN "
                    "authentication failed: {word}",
    "ssh": _HEAD + "sshd[3]: Invalid user {user} from {addr} port 22",
    "dovecot": _HEAD + "dovecot: imap-login: Disconnected (auth failed, 3 attempts in "
                       "9 secs): user=<{user}>, rip={addr}, lip=10.0.0.1",
    "dovecot-upper": "<22>" + _HEAD + "dovecot: IMAP-LOGIN: disconnected (AUTH FAILED, 1 "
                                      "attempts): rip={addr}, x",
    "tag-free": "BAD LOGIN from {addr} {word}",
    "wrong-tag": _HEAD + "notsshd[3]: Invalid user {user} from {addr} port 22",
    "crlf": _HEAD + "sshd[4]: Invalid user {user} from {addr} port 22\r",
    "non-ascii": _HEAD + "sshd[5]: {user} {word}",
    "literals-only": _HEAD + "sshd[6]: SASL x authentication failed Invalid user {word}",
    "bare": "x{word}",
    "blank": None, "control": None, "bad-utf8": None, "long": None, "overlong": None,
}


@st.composite
def mixed_lines(draw: st.DrawFn, max_size: int = 8192) -> bytes:
    """One log line (bytes, no newline) of a kind a receiver meets: benign or
    attack records of every signature, and every oddity the scanner and the
    parser must agree on."""
    kind = draw(st.sampled_from(sorted(_KINDS)))
    template = _KINDS[kind]
    if template is not None:
        return template.format(addr=draw(st.sampled_from(ADDRESSES)),
                               user=draw(st.sampled_from(USERS + NON_ASCII_WORDS)),
                               word=draw(WORDS)).encode()
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t", b" \t  "]))
    if kind == "control":
        return b"a " + draw(st.sampled_from(b"\x00\x01\x08\x0b\x0c\r\x1b\x1f\x7f")
                            .map(lambda byte: bytes([byte]))) + b" BAD LOGIN from 192.0.2.8"
    if kind == "bad-utf8":
        return b"BAD LOGIN from 192.0.2.9 " + draw(st.sampled_from([b"\xff", b"\xc3(",
                                                                     b"\xed\xa0\x80"]))
    size = draw(st.integers(1000, 1100) if kind == "long"
                else st.integers(max_size - 2, max_size + 3))
    filler = b"BAD LOGIN from 192.0.2.10 " if draw(st.booleans()) else b"y"
    return (filler * size)[:size]
