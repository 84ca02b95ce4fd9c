"""The pipeline: every line counted once, 1-based line numbers, engines agree."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import (
    ENGINES, NOW, PROPERTY, SIGNATURES, STAMP, UTC, mixed_lines,
    requires_hyperscan, signature_scanner)
from syslogban.framing import LineFramer
from syslogban.attempts import Accountant, Counted
from syslogban.matcher import Attack, Matcher
from syslogban.pipeline import Detection, Pipeline
from syslogban.record import Malformed, Record, RecordParser
from syslogban.scanner import Scanner
from syslogban.signatures import Signature, load_rules, make_signature, select

HEAD = b"Nov 21 10:00:27 mx "
SASL_LINE = HEAD + b"postfix/smtpd[2]: warning: unknown[192.0.2.7]: SASL LOGIN " \
                   b"authentication failed: UGFzc3dvcmQ6"
SSH_LINE = HEAD + b"sshd[3]: Invalid user admin from ::ffff:198.51.100.4 port 22"
SASL_ATTACK = Attack("192.0.2.7", "postfix.sasl", "postfix", 10)
SSH_ATTACK = Attack("198.51.100.4", "sshd.invalid-user", "sshd", 5)
SASL_RECORD = Record("warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: "
                     "UGFzc3dvcmQ6", "postfix/smtpd", 2, "mx", STAMP)
SSH_RECORD = Record("Invalid user admin from ::ffff:198.51.100.4 port 22",
                    "sshd", 3, "mx", STAMP)
BENIGN = HEAD + b"postfix/smtpd[1]: connect from unknown[192.0.2.7]"


def make_pipeline(engine: str, max_size: int = 8192,
                  signatures: tuple[Signature, ...] = SIGNATURES) -> Pipeline:
    return Pipeline(RecordParser(max_size, UTC), Matcher(signatures),
                    signature_scanner(engine, max_size, signatures))


def chunk_of(*lines: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def run(engine: str, chunks: list[bytes], max_size: int = 8192
        ) -> tuple[list[Detection], Pipeline]:
    pipeline = make_pipeline(engine, max_size)
    found = [d for chunk in chunks for d in pipeline.feed(chunk, NOW)]
    return found, pipeline


def outcome(engine: str, chunks: list[bytes], max_size: int = 8192) -> tuple:
    """Everything the pipeline tells, in a comparable form."""
    found, pipeline = run(engine, chunks, max_size)
    c = pipeline.counters
    return (found, c.lines, c.parsed, dict(c.rejected), dict(c.attacks),
            pipeline.matcher.invalid_addresses, c.untagged, c.untagged_sample)


# ------------------------------------------------------------------- basics

@pytest.mark.parametrize("engine", ENGINES)
def test_detections_and_counters(engine: str) -> None:
    chunk = chunk_of(BENIGN, SASL_LINE, b"", SSH_LINE, b"a\x1bb", b" \t",
                     HEAD + b"sshd[3]: Invalid user x from 999.1.1.1 port 22",
                     HEAD + b"notsshd[3]: Invalid user x from 192.0.2.1 port 22",
                     b"x" * 8193)
    found, pipeline = run(engine, [chunk])
    assert found == [Detection(2, SASL_ATTACK, SASL_RECORD, Counted(2, 1, 10)),
                     Detection(4, SSH_ATTACK, SSH_RECORD, Counted(4, 1, 5))]
    c = pipeline.counters
    assert c.lines == 9
    assert c.rejected == Counter({"empty": 2, "control-char": 1, "too-long": 1})
    assert c.parsed == 5
    assert c.attacks == Counter({"postfix.sasl": 1, "sshd.invalid-user": 1})
    assert pipeline.matcher.invalid_addresses == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_records_without_a_tag_that_hold_a_signatures_text_are_counted(engine: str) -> None:
    lost = b"Nov 21 10:00:27 mx odd header: Invalid user admin from 192.0.2.9 port 22"
    chunk = chunk_of(BENIGN, b"bare text, no signature's words", lost,
                     b"Invalid user root from 192.0.2.10 port 22", SSH_LINE,
                     "Nov 21 10:00:27 mx \u00e4 Invalid user x from 192.0.2.11 port 1".encode())
    found, pipeline = run(engine, [chunk])
    assert found == [Detection(5, SSH_ATTACK, SSH_RECORD, Counted(5, 1, 5))]
    assert (pipeline.counters.untagged, pipeline.counters.untagged_sample) == (3, lost.decode())


@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_utf8_and_nul_are_rejected_and_counted(engine: str) -> None:
    chunk = chunk_of(SASL_LINE, b"user j\xf6rg", b"a\0b", SSH_LINE)
    found, pipeline = run(engine, [chunk])
    assert [d.lineno for d in found] == [1, 4]
    assert pipeline.counters.rejected == Counter({"invalid-utf8": 1, "nul-byte": 1})
    assert (pipeline.counters.lines, pipeline.counters.parsed) == (4, 2)


@pytest.mark.parametrize("engine", ENGINES)
def test_line_numbers_are_one_based_across_chunks(engine: str) -> None:
    chunks = [chunk_of(BENIGN, BENIGN, SASL_LINE),
              chunk_of(BENIGN, SSH_LINE),
              b"",
              chunk_of(SASL_LINE),
              chunk_of(b"", b"", b"", BENIGN),
              chunk_of(BENIGN, b"\x01", SSH_LINE, BENIGN)]
    found, pipeline = run(engine, chunks)
    assert [(d.lineno, d.attack.signature) for d in found] == [
        (3, "postfix.sasl"), (5, "sshd.invalid-user"), (6, "postfix.sasl"),
        (13, "sshd.invalid-user")]
    assert pipeline.counters.lines == 14
    assert pipeline.counters.parsed == 10


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_chunk_changes_nothing(engine: str) -> None:
    found, pipeline = run(engine, [b""])
    assert found == [] and pipeline.counters.lines == 0
    assert pipeline.counters.parsed == 0 and not pipeline.counters.rejected


@pytest.mark.parametrize("engine", ENGINES)
def test_crlf_line_is_detected_without_its_cr(engine: str) -> None:
    found, _ = run(engine, [SASL_LINE + b"\r\n"])
    assert found == [Detection(1, SASL_ATTACK, SASL_RECORD, Counted(1, 1, 10))]


@pytest.mark.parametrize("engine", ENGINES)
def test_overlong_attack_line_is_rejected_and_the_next_one_found(engine: str) -> None:
    long = SASL_LINE + b" " + b"y" * 200
    found, pipeline = run(engine, [chunk_of(long, SSH_LINE)], max_size=200)
    assert found == [Detection(2, SSH_ATTACK, SSH_RECORD, Counted(2, 1, 5))]
    assert pipeline.counters.rejected == Counter({"too-long": 1})


@pytest.mark.parametrize("engine", ENGINES)
def test_non_ascii_attack_line(engine: str) -> None:
    line = HEAD + "sshd[3]: Invalid user jörg from 192.0.2.5 port 22".encode()
    found, _ = run(engine, [chunk_of(BENIGN, "ça va".encode(), line)])
    assert [(d.lineno, d.attack.address, d.record.message) for d in found] == [
        (3, "192.0.2.5", "Invalid user jörg from 192.0.2.5 port 22")]


@pytest.mark.parametrize("engine", ENGINES)
def test_caseless_signature(engine: str) -> None:
    line = (b"<22>" + HEAD + b"dovecot: IMAP-LOGIN: disconnected (AUTH FAILED, 1 attempts"
            b"): rip=2001:DB8::1, x")
    found, _ = run(engine, [chunk_of(BENIGN, line)])
    assert [(d.lineno, d.attack.address, d.record.facility) for d in found] == [
        (2, "2001:db8::1", 2)]


@pytest.mark.parametrize("engine", ENGINES)
def test_tag_free_signature_sees_bare_lines(engine: str) -> None:
    found, _ = run(engine, [chunk_of(b"BAD LOGIN from 192.0.2.9", BENIGN)])
    assert found == [Detection(1, Attack("192.0.2.9", "free.bad-login", "free", 3),
                               Record("BAD LOGIN from 192.0.2.9"), Counted(1, 1, 3))]


# ------------------------------------------------------------ feed_record

def test_feed_record_takes_one_datagram_whole() -> None:
    pipeline = make_pipeline("plain")
    datagram = b"<38>Nov 21 10:00:27 sshd[5]: Invalid user x from 192.0.2.3 port 2"
    assert pipeline.feed_record(datagram, NOW) == Detection(
        1, Attack("192.0.2.3", "sshd.invalid-user", "sshd", 5),
        Record("Invalid user x from 192.0.2.3 port 2", "sshd", 5, None, STAMP, 4, 6),
        Counted(1, 1, 5))
    assert pipeline.feed_record(BENIGN + b"\n", NOW) is None
    assert pipeline.feed_record(SASL_LINE + b"\r\n", NOW) == \
        Detection(3, SASL_ATTACK, SASL_RECORD, Counted(3, 1, 10))
    assert (pipeline.counters.lines, pipeline.counters.parsed) == (3, 3)


def test_feed_record_rejects_and_counts() -> None:
    pipeline = make_pipeline("plain", max_size=200)
    assert pipeline.feed_record(b"", NOW) is None
    assert pipeline.feed_record(BENIGN + b"\n" + SSH_LINE, NOW) is None  # not split
    assert pipeline.feed_record(SASL_LINE + b" " + b"y" * 200, NOW) is None
    assert pipeline.counters.rejected == Counter(
        {"empty": 1, "control-char": 1, "too-long": 1})
    assert (pipeline.counters.lines, pipeline.counters.parsed) == (3, 0)
    assert not pipeline.counters.attacks


@pytest.mark.parametrize("engine", ENGINES)
def test_feed_and_feed_record_share_line_numbers(engine: str) -> None:
    pipeline = make_pipeline(engine)
    assert pipeline.feed(chunk_of(BENIGN, BENIGN), NOW) == []
    assert pipeline.feed_record(SASL_LINE, NOW) == Detection(3, SASL_ATTACK, SASL_RECORD,
                                                             Counted(3, 1, 10))
    assert pipeline.feed(chunk_of(SSH_LINE), NOW) == [
        Detection(4, SSH_ATTACK, SSH_RECORD, Counted(4, 1, 5))]
    assert pipeline.counters.attacks == Counter(
        {"postfix.sasl": 1, "sshd.invalid-user": 1})


# ----------------------------------------------------- engines agree

ODDITIES = [
    BENIGN, SASL_LINE, SSH_LINE, b"", b" ", b"\t", SASL_LINE + b"\r", b"\r",
    b"a\x00b", b"a\x01b", b"\x1b[31mred", b"a\x7f", SSH_LINE + b"\x0c",
    b"user j\xf6rg", b"\xff\xfe", SASL_LINE + b"\xc3(",
    b"x" * 1024, b"x" * 1025, SSH_LINE + b" " + b"y" * 2000, b"BAD LOGIN from 192.0.2.9 " * 40,
    b"y" * 8192, b"y" * 8193, b"BAD LOGIN from 192.0.2.9 " + b"z" * 8200,
    "Grüße \u00a0 日本語".encode(), HEAD + "sshd[3]: Invalid user 日本 from 192.0.2.1 port 1".encode(),
    b"<999>sshd[1]: Invalid user x from 192.0.2.2 port 1", b"BAD LOGIN from 192.0.2.9",
    b"BAD LOGIN from 999.0.2.9", b"<34>1 - mx sshd 1 - - Invalid user a from ::1 port 1",
    HEAD + b"notsshd[3]: Invalid user admin from 192.0.2.1 port 22", b"Invalid user",
]


def chunkings(lines: list[bytes]) -> list[list[bytes]]:
    """The same lines cut into chunks in several ways."""
    return [[chunk_of(*lines)], [chunk_of(line) for line in lines],
            [chunk_of(*lines[i:i + 3]) for i in range(0, len(lines), 3)],
            [chunk_of(*lines[i:i + 7]) for i in range(0, len(lines), 7)]]


def test_corpus_with_oddities_is_meaningful() -> None:
    found, pipeline = run("plain", [chunk_of(*ODDITIES)])
    assert [(d.lineno, d.attack.signature) for d in found] == [
        (2, "postfix.sasl"), (3, "sshd.invalid-user"), (7, "postfix.sasl"),
        (19, "sshd.invalid-user"), (20, "free.bad-login"), (25, "sshd.invalid-user"),
        (27, "free.bad-login"), (29, "sshd.invalid-user")]
    assert set(pipeline.counters.rejected) == {
        "empty", "nul-byte", "control-char", "invalid-utf8", "too-long"}
    assert pipeline.counters.lines == len(ODDITIES)


@requires_hyperscan
@pytest.mark.parametrize("way", range(4))
def test_engines_agree_on_a_corpus_with_oddities(way: int) -> None:
    chunks = chunkings(ODDITIES * 2)[way]
    assert outcome("hyperscan", chunks) == outcome("plain", chunks)


@requires_hyperscan
def test_hyperscan_engine_really_skips_lines_of_the_corpus() -> None:
    chunk = chunk_of(*ODDITIES)
    spans = signature_scanner("hyperscan", 8192).lines(chunk)  # (start, end, mask)
    assert spans is not None and 0 < len(spans) < len(ODDITIES)


@requires_hyperscan
def test_engines_agree_on_unicode_case_folding() -> None:
    # str.lower() and re.IGNORECASE fold KELVIN SIGN U+212A to "k"; Hyperscan's
    # caseless matching is ASCII-only, so such a line must reach the parser
    signature = make_signature("sshd.bad-key", "sshd", "bad key", ("sshd",),
                               r"(?i)bad key from <ADDR>")
    line = HEAD + "sshd[1]: BAD \u212aEY FROM 192.0.2.1".encode() + b"\n"
    results = [make_pipeline(engine, signatures=(signature,)).feed(line, NOW)
               for engine in ("plain", "hyperscan")]
    assert len(results[0]) == 1  # the plain engine does see an attack
    assert results[1] == results[0]


MAX_SIZE = 1200  # small enough that overlong lines stay cheap to generate


@requires_hyperscan
@PROPERTY
@given(lines=st.lists(mixed_lines(max_size=MAX_SIZE), max_size=30),
       cuts=st.lists(st.integers(0, 40), max_size=6))
def test_engines_agree_on_any_mix_of_lines(lines: list[bytes], cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(lines)]
    chunks = [chunk_of(*lines[a:b]) for a, b in zip(bounds, bounds[1:])]
    plain = outcome("plain", chunks, MAX_SIZE)
    assert outcome("hyperscan", chunks, MAX_SIZE) == plain
    assert plain[1] == len(lines)


def reference(lines: list[bytes], max_size: int) -> list[Detection]:
    """Detections the definition gives: parse every line, match every record,
    account its attempt on the record's clock (the last one read, for undated ones)."""
    parser, matcher, found = RecordParser(max_size, UTC), Matcher(SIGNATURES), []
    accountant, clock = Accountant(), NOW
    for lineno, line in enumerate(lines, start=1):
        try:
            record = parser.parse(line, NOW)
        except Malformed:
            continue
        attack = matcher.match(record, NOW)
        if attack is not None:
            clock = record.timestamp or clock
            found.append(Detection(lineno, attack, record,
                                   accountant.observe(attack, clock, lineno)))
    return found


@pytest.mark.parametrize("engine", ENGINES)
@PROPERTY
@given(lines=st.lists(mixed_lines(max_size=MAX_SIZE), max_size=30),
       reads=st.lists(st.integers(1, 3000), min_size=1, max_size=10))
def test_framed_stream_gives_the_reference_detections(engine: str, lines: list[bytes],
                                                      reads: list[int]) -> None:
    stream = chunk_of(*lines)
    framer, pipeline = LineFramer(MAX_SIZE), make_pipeline(engine, MAX_SIZE)
    found, pos, i = [], 0, 0
    while pos < len(stream):
        size = reads[i % len(reads)]
        found += pipeline.feed(framer.feed(stream[pos:pos + size]), NOW)
        pos, i = pos + size, i + 1
    found += pipeline.feed(framer.close(), NOW)
    assert found == reference(lines, MAX_SIZE)
    assert pipeline.counters.lines == len(lines)


# Pattern shapes the prefilter derivation must widen correctly: alternatives,
# optional groups, lookaround, scoped flags, repeats, non-ASCII literals.
TRICKY = [
    (r"SASL (?:LOGIN|PLAIN) authentication failed from <ADDR>",
     ["SASL PLAIN authentication failed from 192.0.2.1"]),
    (r"(?i)auth(?:entication)? failure.*rhost=<ADDR>",
     ["AUTHENTICATION FAILURE; logname= rhost=192.0.2.2", "Auth Failure rhost=192.0.2.2"]),
    (r"lost connection after (?:AUTH|UNKNOWN)(?! x) from [^\[]*\[<ADDR>\]",
     ["lost connection after UNKNOWN from unknown[192.0.2.3]"]),
    (r"(?:|pre)Invalid login from <ADDR>",
     ["Invalid login from 192.0.2.4", "preInvalid login from 192.0.2.4"]),
    (r"Ungültiger Benutzer <USER> von <ADDR>", ["Ungültiger Benutzer x von 192.0.2.5"]),
    (r"(?i:FAILED) login from <ADDR>", ["failed login from 192.0.2.6",
                                        "FaIlEd login from 192.0.2.6"]),
    (r"(?i)bad key from <ADDR>", ["BAD KEY FROM 192.0.2.7", "BAD \u212aEY FROM 192.0.2.7"]),
    (r"x{2}yyyy from (?:host )?<ADDR>\b", ["xxyyyy from 192.0.2.8", "xxyyyy from host ::1"]),
    (r"(?=\w)refused connect from (?P<host>\S+) \(<ADDR>\)",
     ["refused connect from a.example (2001:db8::9)"]),
]
TRICKY_SIGNATURES = tuple(make_signature(f"t.s{i}", "t", "tricky", ("app",), pattern)
                          for i, (pattern, _) in enumerate(TRICKY))
TRICKY_MESSAGES = [message for _, messages in TRICKY for message in messages]


def tricky_outcome(engine: str, lines: list[bytes]) -> tuple:
    pipeline = make_pipeline(engine, signatures=TRICKY_SIGNATURES)
    found = pipeline.feed(chunk_of(*lines), NOW)
    return found, dict(pipeline.counters.attacks), pipeline.matcher.invalid_addresses


def app_line(message: str) -> bytes:
    return HEAD + b"app[1]: " + message.encode()


@pytest.mark.parametrize("engine", ENGINES)
def test_tricky_patterns_detect_their_lines(engine: str) -> None:
    lines = [app_line(message) for message in TRICKY_MESSAGES]
    found, attacks, _ = tricky_outcome(engine, [BENIGN, *lines])
    assert [d.lineno for d in found] == list(range(2, len(lines) + 2))
    assert sum(attacks.values()) == len(lines)


EDITS = st.lists(st.tuples(st.sampled_from(["delete", "insert", "swapcase"]),
                           st.integers(0, 80),
                           st.sampled_from(list("aAkK .:[]()x1\u212a\u017fü"))),
                 max_size=4)


def edited(message: str, edits: list[tuple[str, int, str]]) -> str:
    for op, index, char in edits:
        i = index % (len(message) + 1)
        if op == "delete":
            message = message[:i] + message[i + 1:]
        elif op == "insert":
            message = message[:i] + char + message[i:]
        else:
            message = message[:i] + message[i:i + 1].swapcase() + message[i + 1:]
    return message


@requires_hyperscan
@PROPERTY
@given(picks=st.lists(st.tuples(st.sampled_from(TRICKY_MESSAGES), EDITS), max_size=12))
def test_engines_agree_on_tricky_patterns(picks) -> None:
    lines = [app_line(edited(message, edits)) for message, edits in picks]
    assert tricky_outcome("hyperscan", lines) == tricky_outcome("plain", lines)


# ------------------------------------------------- the bundled rules, at random

BUNDLED = tuple(select(load_rules(), enable=["all"]))


@PROPERTY
@given(data=st.binary(max_size=4000))
def test_random_bytes_never_yield_an_attack_from_the_bundled_rules(data: bytes) -> None:
    pipeline = make_pipeline("plain", signatures=BUNDLED)
    framer = LineFramer(8192)
    found = pipeline.feed(framer.feed(data) + framer.close(), NOW)
    assert found == []
    unterminated = bool(data) and not data.endswith(b"\n")
    assert pipeline.counters.lines == data.count(b"\n") + unterminated


@PROPERTY
@given(tag=st.sampled_from(["postfix/smtpd", "dovecot", "sm-mta", "postfix/postscreen"]),
       words=st.lists(st.sampled_from([
           "warning:", "unknown[192.0.2.1]:", "SASL", "LOGIN", "authentication", "failed",
           "rip=198.51.100.2,", "lip=", "(auth failed, 1 attempts)", "from", "[203.0.113.3]",
           "relay=[2001:db8::4]", "disconnect", "auth=0/1", "Relay access denied", ":", "x",
       ]), max_size=14))
def test_any_attack_address_occurs_literally_in_the_record(tag: str, words: list[str]) -> None:
    line = f"Nov 21 10:00:27 mx {tag}[1]: {' '.join(words)}".encode()
    for detection in make_pipeline("plain", signatures=BUNDLED).feed(line + b"\n", NOW):
        assert detection.attack.address.encode() in line


def test_a_line_written_to_two_logs_reports_one_attempt() -> None:
    """Exim with log_file_path = syslog writes a refusal to its main and reject
    log: the same record twice, at two severities (syslog_duplication)."""
    exim = make_signature("exim.auth", "exim", "auth failed", ("exim",),
                          r"\S+ authenticator failed for \S+ \[<ADDR>\]")
    matcher = Matcher([exim])
    pipeline = Pipeline(RecordParser(8192, UTC), matcher, Scanner(matcher.prefilters(), 8192,
                                                                  "plain"))
    line = b"exim[9350]: LOGIN authenticator failed for (vm) [198.51.100.41]: 535 Incorrect"
    chunk = b"<22>Dec  3 10:13:38 " + line + b"\n<21>Dec  3 10:13:38 " + line + b"\n"
    found = pipeline.feed(chunk + chunk.replace(b"10:13:38", b"10:13:40"), NOW)
    assert [(d.counted.attempt, d.counted.new) for d in found] == [(1, 1), (1, 0), (3, 1),
                                                                     (3, 0)]
    # the same line at the same severity is a second attempt (sshd repeats itself)
    again = pipeline.feed(b"<22>Dec  3 10:13:41 " + line + b"\n<22>Dec  3 10:13:41 "
                          + line + b"\n", NOW)
    assert [d.counted.new for d in again] == [1, 1]
    # another daemon's line between the two copies (the records of all processes
    # interleave): still one attempt, the copy is of its own process's line
    other = b"<22>Dec  3 10:13:42 exim[9351]: LOGIN authenticator failed for (vm) [192.0.2.9]:"
    between = pipeline.feed(b"<22>Dec  3 10:13:42 " + line + b"\n" + other + b"\n<21>Dec  3 "
                            b"10:13:42 " + line + b"\n", NOW)
    assert [(d.attack.address, d.counted.new) for d in between] == [
        ("198.51.100.41", 1), ("192.0.2.9", 1), ("198.51.100.41", 0)]
    assert between[2].counted.attempt == between[0].counted.attempt
