"""Property tests over hostile input: rule data, patterns, byte streams.

Why: rule files come from admins (and their typos), byte streams from the
network. Loading must turn every broken rule into a RuleError naming it, never
a traceback; the pipeline and the framers must take any bytes without raising,
and take addresses only from where they are written. The pipeline invariants
are the fuzz target's (tests/fuzz/fuzz_pipeline.py), so both check the same.
"""

from __future__ import annotations

import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DEMO_RULES
from syslogban.record import Malformed, RecordParser
from syslogban.signatures import (
    RuleError, Signature, load_rules, make_signature, parse_rules, risks)

sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))
import fuzz_pipeline  # noqa: E402  (the fuzz target: importable without atheris)
from fuzz_pipeline import check, encode, frame_lines, frame_octets  # noqa: E402

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NOW = fuzz_pipeline.NOW
# Random patterns with "[[" make re warn that this may mean a nested set one day.
pytestmark = pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")


# --- rule data ---------------------------------------------------------------------------

FILE_KEYS = ["service", "programs", "signature"]
SIGNATURE_KEYS = ["id", "description", "programs", "pattern", "danger", "enabled", "binds",
                  "session", "examples", "injections", "counterexamples"]
EXAMPLE_KEYS = ["line", "address", "context"]
KEYS = st.sampled_from(FILE_KEYS + SIGNATURE_KEYS + EXAMPLE_KEYS) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
           | st.text(max_size=30) | st.sampled_from(["id", "pid", "demo", "demo.x", "192.0.2.1",
                                                     "::1", "<ADDR>", "x <ADDR>"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=5), max_leaves=25)


def _paths(value: object, path: tuple = ()) -> list[tuple]:
    """Every place in nested dicts and lists, as a tuple of keys and indices."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, path + (index,))
    return found


@st.composite
def mutated_rules(draw: st.DrawFn) -> dict:
    """A valid rule file with a few places replaced, removed or added to: it
    gets past the first checks, where purely random data stops."""
    data = tomllib.loads(DEMO_RULES)
    for _ in range(draw(st.integers(1, 4))):
        places = _paths(data)[1:]
        if not places:
            break  # all removed
        path = draw(st.sampled_from(places))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
        else:
            parent.append(draw(VALUES))
    return data


@FAST
@given(data=st.dictionaries(KEYS, VALUES, max_size=6) | mutated_rules())
def test_rule_data_raises_only_rule_error(data: dict) -> None:
    try:
        signatures = parse_rules(data, "x.toml")
    except RuleError as exc:
        assert str(exc).startswith("x.toml: ")
    else:
        assert all(isinstance(s, Signature) for s in signatures)


# Pieces of patterns: placeholders, syntax (balanced or not), repeats, flags.
FRAGMENTS = st.sampled_from([
    "<ADDR>", "<ADDR>", "<PORT>", "<USER>", "<ID>", "login from ", "failed ", " port ",
    "(", ")", "(?:", "(?P<addr>", "(?P<x>", "(?P=user)", "(?P=x)", "[", "]", "[^", "\\",
    "\\d", "\\S", "\\w", ".", "*", "+", "?", "*?", "++", "|", "{", "}", "{2}", "{0,300}",
    "{20000}", "{0,4294967294}", "$", "^", "\\b", "(?i)", "(?i:", "(?=", "(?!", "(?<=",
    "(?<!", "(?>", "(?(1)", "(?(x)", "#", "\\x00", "é", "\\N{EM DASH}", "\\1", "\\9",
])
PATTERNS = (st.lists(FRAGMENTS | st.text(max_size=4), max_size=16).map("".join)
            | st.text(max_size=40))


@FAST
@given(pattern=PATTERNS, binds=st.booleans(), by_pid=st.booleans())
def test_any_pattern_loads_or_raises_rule_error(pattern: str, binds: bool, by_pid: bool) -> None:
    try:
        signature = make_signature("demo.x", "demo", "fuzzed", ("demo",), pattern,
                                   binds=binds, by_pid=by_pid)
    except RuleError:
        return
    assert all(isinstance(r, str) for r in risks(signature))  # and the warnings work too


def test_repeat_count_beyond_what_re_holds_is_a_rule_error() -> None:
    with pytest.raises(RuleError):
        make_signature("demo.x", "demo", "d", ("demo",), "login from <ADDR> x{4294967296}")


def test_deeply_nested_pattern_is_a_rule_error() -> None:
    with pytest.raises(RuleError):
        make_signature("demo.x", "demo", "d", ("demo",), "(?:" * 2000 + "login from <ADDR>"
                       + ")" * 2000)


# --- the pipeline ---------------------------------------------------------------------------

@cache
def example_lines() -> tuple[str, ...]:
    """Every line of every shipped signature's examples: real records of every service."""
    return tuple(sorted({line for s in load_rules() for e in s.examples
                         for line in (*e.context, e.line)}))


@cache
def example_records() -> tuple[tuple[str, str, str], ...]:
    """(program, pid text, message) of the example lines that parse with a tag."""
    parser, found = RecordParser(), []
    for line in example_lines():
        try:
            record = parser.parse(line.encode(), NOW)
        except Malformed:
            continue
        if record.program is not None:
            found.append((record.program, "" if record.pid is None else str(record.pid),
                          record.message))
    return tuple(found)


ADDRESSES = st.sampled_from(["192.0.2.7", "198.51.100.4", "::ffff:198.51.100.4", "2001:DB8::1",
                             "2001:db8:0:0::1", "fe80::1%eth0", "999.1.1.1", "1.2.3", "::",
                             "::ffff:C000:0207", "[6.6.6.6]", "1:2:3:4:5:6:7:8:9"])
TOKENS = (ADDRESSES | st.sampled_from([" ", ",", "[", "]", "(", ")", "<", ">", "=", ": ", "\t",
                                       " port 22", " from ", ", rip=", " [preauth]", "\r",
                                       "user=<", "relay=", "é", "\x00", "\n"])
          | st.text(max_size=6))
HEADERS = st.sampled_from([
    "Nov 21 10:00:27 mx1 {tag}: ", "<22>Nov  1 10:00:27 {tag}: ", "2026-11-21T10:00:27Z mx1 {tag}: ",
    "2026-11-21 10:00:27 mx1 {tag}: ", "<38>1 2026-11-21T10:00:27.5+01:00 mx1 {prog} {pid} - - ",
    '<38>1 - - {prog} - ID1 [a@1 b="]\\"x"] ', "{tag}: ", "{tag}:", "<13>{tag}: ", "",
])


@st.composite
def syslog_lines(draw: st.DrawFn) -> bytes:
    """A record of a real service, re-headed and with tokens spliced in."""
    program, pid, message = draw(st.sampled_from(example_records()))
    if draw(st.booleans()):
        program = draw(st.sampled_from([program, program.upper(), program + "x", "sshd",
                                        "postfix/smtpd", "dovecot", ""]))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(message)))
        cut = draw(st.integers(0, 3))
        message = message[:at] + draw(TOKENS) + message[at + cut:]
    tag = f"{program}[{pid}]" if pid else program
    header = draw(HEADERS).format(tag=tag, prog=program or "-", pid=pid or "-")
    return (header + message).encode()


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Lines, mostly syslog-shaped, some raw bytes, joined with LF or CRLF."""
    lines = draw(st.lists(syslog_lines() | st.binary(max_size=80)
                          | st.sampled_from([line.encode() for line in example_lines()]),
                          min_size=1, max_size=6))
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    return end.join(lines) + draw(st.sampled_from([end, b""]))


FRAMING = {"octet": st.booleans(),
           "max_size": st.sampled_from([64, 128, 512, 8192]),
           "piece": st.integers(1, 4096)}


@FAST
@given(stream=streams(), **FRAMING)
def test_pipeline_on_syslog_shaped_lines(stream: bytes, octet: bool, max_size: int,
                                         piece: int) -> None:
    if octet:  # the same records as a TCP sender frames them
        stream = b"".join(b"%d %s" % (len(line), line) for line in stream.split(b"\n"))
    check(encode(stream, octet=octet, max_size=max_size, piece=piece))


@FAST
@given(stream=st.binary(max_size=600), **FRAMING)
def test_pipeline_on_random_bytes(stream: bytes, octet: bool, max_size: int, piece: int) -> None:
    check(encode(stream, octet=octet, max_size=max_size, piece=piece))


def test_syslog_shaped_lines_do_reach_the_signatures() -> None:
    """The strategy is worth its time: unmodified, its lines are attacks."""
    lines = b"".join(line.encode() + b"\n" for line in example_lines())
    detections, _, _ = fuzz_pipeline.run_lines(lines, 8192, 4096, "plain")
    assert len(detections) > 500


# --- framers ----------------------------------------------------------------------------------

FRAMES = st.lists(
    st.binary(max_size=40).map(lambda b: b"%d %s" % (len(b), b))               # well counted
    | st.tuples(st.integers(0, 10**10), st.binary(max_size=40)).map(
        lambda t: b"%d %s" % t)                                                 # any count
    | st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"") + b"\n")       # LF frame
    | st.binary(max_size=20),                                                   # junk
    max_size=8).map(b"".join)


@FAST
@given(stream=FRAMES | st.binary(max_size=300), max_size=st.sampled_from([16, 64, 100]),
       piece=st.integers(1, 120))
def test_framers_never_raise_and_stay_bounded(stream: bytes, max_size: int, piece: int) -> None:
    """frame_lines and frame_octets check the bounds as they go (see fuzz_pipeline);
    what is longer than the limit the parser rejects whole."""
    parser = RecordParser(max_size)
    lines = b"".join(frame_lines(stream, max_size, piece)).split(b"\n")[:-1]
    for record in lines + frame_octets(stream, max_size, piece):
        if len(record.removesuffix(b"\n").removesuffix(b"\r")) > max_size:  # as the parser
            with pytest.raises(Malformed, match="longer"):
                parser.parse(record, NOW)
