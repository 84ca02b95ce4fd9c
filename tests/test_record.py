"""The record parser: every header form, year inference, rejections, invariants."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from conftest import BERLIN, NOW, PRINTABLE_ASCII, PROPERTY, STAMP, UTC, at
from syslogban.record import (
    FACILITY_CODES, FUTURE_SLACK, MONTHS, REJECT_REASONS, SEVERITY_CODES, Malformed, Record,
    RecordParser)

LIMIT = 64  # a small size limit keeps the boundary tests readable


def parse(line: bytes | str, now: float = NOW, *, max_size: int = 8192,
          tz=UTC) -> Record:
    data = line.encode() if isinstance(line, str) else line
    return RecordParser(max_size, tz).parse(data, now)


def reject_reason(line: bytes, max_size: int = 8192) -> str:
    with pytest.raises(Malformed) as info:
        RecordParser(max_size, UTC).parse(line, NOW)
    assert info.value.reason in REJECT_REASONS
    return info.value.reason


# ----------------------------------------------------------------- header forms

@pytest.mark.parametrize("line, expected", [
    pytest.param(  # RFC 3164 as a relay forwards it
        "<22>Nov 21 10:00:27 mx postfix/smtpd[123]: connect from unknown[192.0.2.1]",
        Record("connect from unknown[192.0.2.1]", "postfix/smtpd", 123, "mx", STAMP, 2, 6),
        id="3164-pri-host"),
    pytest.param(  # rsyslog's traditional file format: no PRI
        "Nov 21 10:00:27 mx postfix/smtpd[123]: connect from unknown[192.0.2.1]",
        Record("connect from unknown[192.0.2.1]", "postfix/smtpd", 123, "mx", STAMP),
        id="3164-no-pri"),
    pytest.param(  # glibc syslog(3) datagram on /dev/log: no hostname
        "<22>Nov 21 10:00:27 postfix/smtpd[123]: msg",
        Record("msg", "postfix/smtpd", 123, None, STAMP, 2, 6), id="glibc-dev-log"),
    pytest.param(
        "Nov 21 10:00:27 postfix/smtpd[123]: msg",
        Record("msg", "postfix/smtpd", 123, None, STAMP), id="3164-no-pri-no-host"),
    pytest.param(
        "Nov 21 10:00:27 mx1.mail.example.org sshd[9]: Accepted publickey",
        Record("Accepted publickey", "sshd", 9, "mx1.mail.example.org", STAMP),
        id="dotted-host"),
    pytest.param(
        "Nov 21 10:00:27 192.0.2.25 sshd[9]: x",
        Record("x", "sshd", 9, "192.0.2.25", STAMP), id="ipv4-host"),
    pytest.param(
        "Nov 21 10:00:27 2001:db8::25 postfix/smtpd[1]: msg",
        Record("msg", "postfix/smtpd", 1, "2001:db8::25", STAMP), id="ipv6-host"),
    pytest.param(
        "Nov 21 10:00:27 ::1 postfix/smtpd[1]: msg",
        Record("msg", "postfix/smtpd", 1, "::1", STAMP), id="ipv6-loopback-host"),
    pytest.param(
        "<13>Nov 21 10:00:27 ::ffff:192.0.2.1 sshd: msg",
        Record("msg", "sshd", None, "::ffff:192.0.2.1", STAMP, 1, 5), id="ipv6-mapped-host"),
    pytest.param(
        "Nov 21 10:00:27.000 mx sshd[1]: x",
        Record("x", "sshd", 1, "mx", STAMP + 0.0), id="bsd-millis-zero"),
    pytest.param(
        "Nov 21 10:00:27.123456 mx sshd[1]: x",
        Record("x", "sshd", 1, "mx", STAMP + 0.123456), id="bsd-micros"),
    pytest.param(
        "Nov  1 09:08:07 mx sshd[1]: x",
        Record("x", "sshd", 1, "mx", at(2026, 11, 1, 9, 8, 7)), id="day-space-padded"),
    pytest.param(
        "Nov 1 09:08:07 mx sshd[1]: x",
        Record("x", "sshd", 1, "mx", at(2026, 11, 1, 9, 8, 7)), id="day-unpadded"),
    pytest.param(
        "Nov 21 10:00:27 mx dovecot: imap-login: Login: user=<a>, rip=192.0.2.1",
        Record("imap-login: Login: user=<a>, rip=192.0.2.1", "dovecot", None, "mx", STAMP),
        id="tag-without-pid"),
    pytest.param(
        "<30>Nov 21 10:00:27 dovecot: imap-login: Disconnected",
        Record("imap-login: Disconnected", "dovecot", None, None, STAMP, 3, 6),
        id="tag-without-pid-no-host"),
    pytest.param(
        "Nov 21 10:00:27 mx postfix/submission/smtpd[77]: connect from x",
        Record("connect from x", "postfix/submission/smtpd", 77, "mx", STAMP),
        id="multi-slash-tag"),
    pytest.param(
        "Nov 21 10:00:27 mx sshd[1]:no space after colon",
        Record("no space after colon", "sshd", 1, "mx", STAMP), id="colon-no-space"),
    pytest.param(
        # rsyslog's " %msg%" keeps RFC 3164's space: the message starts after both
        "Nov 21 10:00:27 mx sshd[1]:  two spaces",
        Record("two spaces", "sshd", 1, "mx", STAMP), id="colon-two-spaces"),
    pytest.param(
        "Nov 21 10:00:27 mx sshd[1]: ",
        Record("", "sshd", 1, "mx", STAMP), id="empty-message"),
    pytest.param(
        "Nov 21 10:00:27 mx sshd[1]: a: b[2]: c",
        Record("a: b[2]: c", "sshd", 1, "mx", STAMP), id="message-with-tag-lookalike"),
    pytest.param(  # FreeBSD/OpenBSD syslogd hands this to a '|' pipe
        "Nov 21 10:00:27 mx sendmail[123]: 4ALA0R1a: ruleset=check_rcpt, arg1=<a@b>",
        Record("4ALA0R1a: ruleset=check_rcpt, arg1=<a@b>", "sendmail", 123, "mx", STAMP),
        id="bsd-pipe"),
    pytest.param(  # syslog-ng program() destination, ISO dates
        "2026-11-21T10:00:27+00:00 mx dovecot: auth: Error",
        Record("auth: Error", "dovecot", None, "mx", STAMP), id="syslog-ng"),
    pytest.param(  # RSYSLOG_FileFormat
        "2026-11-21T10:00:27.123456+01:00 mx postfix/smtpd[1]: lost connection",
        Record("lost connection", "postfix/smtpd", 1, "mx",
               at(2026, 11, 21, 9, 0, 27) + 0.123456), id="rsyslog-fileformat"),
    pytest.param(
        "2026-11-21T10:00:27Z mx sshd[1]: x",
        Record("x", "sshd", 1, "mx", STAMP), id="iso-z"),
    pytest.param(
        "2026-11-21T10:00:27.5-0230 mx sshd[1]: x",
        Record("x", "sshd", 1, "mx", at(2026, 11, 21, 12, 30, 27) + 0.5),
        id="iso-negative-offset-no-colon"),
    pytest.param(
        "2026-11-21 10:00:27 mx sshd[1]: x",
        Record("x", "sshd", 1, "mx", STAMP), id="iso-space-separator"),
    pytest.param(  # daemontools/runit multilog
        "@400000006a1f4d3b00000000 imap-login: Info: Aborted login",
        Record("Info: Aborted login", "imap-login", None, None, 0x6A1F4D3B - 10.0),
        id="tai64n"),
    pytest.param(  # Dovecot's own log file
        "2026-11-21 10:00:27 auth-worker(default): Info: pam(u,192.0.2.1): unknown user",
        Record("Info: pam(u,192.0.2.1): unknown user", "auth-worker(default)", None, None,
               STAMP), id="dovecot-log-file"),
    pytest.param(  # RFC 3339 date behind a PRI, as some relays send it
        "<38>2026-11-21T10:00:27Z mx sshd[7]: x",
        Record("x", "sshd", 7, "mx", STAMP, 4, 6), id="pri-iso"),
    pytest.param(
        "<0>Nov 21 10:00:27 mx kernel: panic",
        Record("panic", "kernel", None, "mx", STAMP, 0, 0), id="pri-0"),
    pytest.param(
        "<191>Nov 21 10:00:27 mx app: x",
        Record("x", "app", None, "mx", STAMP, 23, 7), id="pri-191"),
    pytest.param(  # a timestamp and a host but no tag
        "Nov 21 10:00:27 mx some text: without a tag",
        Record("some text: without a tag", None, None, "mx", STAMP), id="host-no-tag"),
    pytest.param(
        "Nov 21 10:00:27 mx",
        Record("", None, None, "mx", STAMP), id="host-only"),
])
def test_header_forms(line: str, expected: Record) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize("line, expected", [
    pytest.param(
        '<34>1 2026-11-21T10:00:27.5+01:00 mx app 123 ID47 '
        '[exampleSDID@32473 iut="3" eventSource="App"] msg',
        Record("msg", "app", 123, "mx", at(2026, 11, 21, 9, 0, 27) + 0.5, 4, 2),
        id="full"),
    pytest.param(
        "<34>1 - - - - - -",
        Record("", None, None, None, None, 4, 2), id="all-nil-no-msg"),
    pytest.param(
        "<34>1 - - - - - - hello world",
        Record("hello world", None, None, None, None, 4, 2), id="all-nil-msg"),
    pytest.param(
        '<165>1 2026-11-21T10:00:27Z mx.example.org sshd 42 - '
        '[a@1 x="1"][b@2 y="2" z="3"] Invalid user',
        Record("Invalid user", "sshd", 42, "mx.example.org", STAMP, 20, 5),
        id="multiple-sd-elements"),
    pytest.param(
        r'<34>1 - mx app - - [a@1 x="q\]\"z" y="\\"] real message',
        Record("real message", "app", None, "mx", None, 4, 2), id="escaped-sd-values"),
    pytest.param(
        '<34>1 - mx app - - [a@1 x="evil] sshd[1]: injected"] real',
        Record("real", "app", None, "mx", None, 4, 2), id="bracket-inside-sd-value"),
    pytest.param(
        "<34>1 2026-11-21T10:00:27Z mx app 9 - - \ufeffBOM message",
        Record("BOM message", "app", 9, "mx", STAMP, 4, 2), id="bom"),
    pytest.param(
        "<34>1 2026-11-21T10:00:27Z mx app 123 ID47 -",
        Record("", "app", 123, "mx", STAMP, 4, 2), id="no-msg"),
    pytest.param(
        "<34>1 2026-11-21T10:00:27Z mx app worker-7 - - x",
        Record("x", "app", None, "mx", STAMP, 4, 2), id="non-numeric-procid"),
    pytest.param(
        "<34>1 2026-11-21T10:00:27Z mx postfix/smtpd 1 - - a  b ",
        Record("a  b ", "postfix/smtpd", 1, "mx", STAMP, 4, 2), id="msg-spaces-kept"),
])
def test_rfc5424(line: str, expected: Record) -> None:
    assert parse(line) == expected


def test_rfc5424_unparsable_header_keeps_priority_and_text() -> None:
    # "1 " then no valid RFC 5424 header: a bare message, never a guessed tag
    assert parse("<34>1 notadate mx app - - - msg") == Record(
        "1 notadate mx app - - - msg", facility=4, severity=2)


def test_iso_without_offset_is_in_the_parsers_zone() -> None:
    line = "2026-11-21T10:00:27 mx sshd[1]: x"
    assert parse(line).timestamp == STAMP
    assert parse(line, tz=BERLIN).timestamp == at(2026, 11, 21, 9, 0, 27)
    summer = "2026-07-01T12:00:00 mx sshd[1]: x"
    assert parse(summer, tz=BERLIN).timestamp == at(2026, 7, 1, 10, 0, 0)


def test_bsd_time_is_in_the_parsers_zone() -> None:
    assert parse("Nov 21 10:00:27 mx sshd[1]: x", tz=BERLIN).timestamp == \
        at(2026, 11, 21, 9, 0, 27)
    assert parse("Jul  1 12:00:00 mx sshd[1]: x", tz=BERLIN).timestamp == \
        at(2026, 7, 1, 10, 0, 0)
    # an explicit offset wins over the parser's zone
    assert parse("2026-11-21T10:00:27Z mx sshd[1]: x", tz=BERLIN).timestamp == STAMP


# ------------------------------------------------------ bare and odd headers

@pytest.mark.parametrize("line, expected", [
    pytest.param("hello world", Record("hello world"), id="plain-text"),
    pytest.param(  # a tag with neither PRI nor timestamp: no header
        "dovecot: imap-login: x", Record("dovecot: imap-login: x"), id="tag-only"),
    pytest.param("sshd[1]: Invalid user", Record("sshd[1]: Invalid user"), id="tag-pid-only"),
    pytest.param("  leading spaces", Record("  leading spaces"), id="leading-spaces"),
    pytest.param("1 2 3", Record("1 2 3"), id="digits"),
    pytest.param("<", Record("<"), id="lone-angle"),
    pytest.param("<22", Record("<22"), id="unclosed-pri"),
    pytest.param("<22>hello world", Record("hello world", facility=2, severity=6),
                 id="pri-no-tag"),
    pytest.param("<22>sshd[1]: hi", Record("hi", "sshd", 1, facility=2, severity=6),
                 id="pri-tag-no-timestamp"),
    pytest.param("<22>", Record("", facility=2, severity=6), id="pri-only"),
    pytest.param("<192>Nov 21 10:00:27 mx sshd[1]: x",
                 Record("<192>Nov 21 10:00:27 mx sshd[1]: x"), id="pri-192-invalid"),
    pytest.param("<999>Nov 21 10:00:27 mx sshd[1]: x",
                 Record("<999>Nov 21 10:00:27 mx sshd[1]: x"), id="pri-999-invalid"),
    pytest.param("<1234>x", Record("<1234>x"), id="pri-too-many-digits"),
    pytest.param("<>Nov 21 10:00:27 mx sshd[1]: x",
                 Record("<>Nov 21 10:00:27 mx sshd[1]: x"), id="empty-pri"),
    pytest.param("Nov 21 10:00:27", Record("Nov 21 10:00:27"), id="timestamp-alone"),
])
def test_bare_and_odd_headers(line: str, expected: Record) -> None:
    assert parse(line) == expected


def test_invalid_pri_before_a_tag_is_part_of_the_message() -> None:
    assert parse("<999>sshd[1]: hi") == Record("<999>sshd[1]: hi")


@pytest.mark.parametrize("line, program, hostname", [
    ("Feb 30 10:00:00 mx sshd[1]: x", "sshd", "mx"),
    ("Nov 31 10:00:00 mx sshd[1]: x", "sshd", "mx"),
    ("Nov 21 25:00:00 mx sshd[1]: x", "sshd", "mx"),
    ("Nov 21 10:61:00 mx sshd[1]: x", "sshd", "mx"),
    ("Nov  0 10:00:00 mx sshd[1]: x", "sshd", "mx"),
    ("Foo 21 10:00:00 mx sshd[1]: x", "sshd", "mx"),
    ("<22>Feb 30 10:00:00 postfix/smtpd[1]: x", "postfix/smtpd", None),
    ("2026-02-30T10:00:00Z mx sshd[1]: x", "sshd", "mx"),
    ("2026-13-01T10:00:00Z mx sshd[1]: x", "sshd", "mx"),
    ("2026-11-21T24:00:00Z mx sshd[1]: x", "sshd", "mx"),
    ("2026-11-21T10:00:00+24:00 mx sshd[1]: x", "sshd", "mx"),
    ("2026-11-21T10:00:00+01:60 mx sshd[1]: x", "sshd", "mx"),
])
def test_impossible_date_leaves_timestamp_unknown(line: str, program: str,
                                                  hostname: str | None) -> None:
    record = parse(line)
    assert record.timestamp is None
    assert (record.program, record.pid, record.hostname, record.message) == \
        (program, 1, hostname, "x")


def test_rfc5424_impossible_date_leaves_timestamp_unknown() -> None:
    assert parse("<34>1 2026-02-30T10:00:00Z mx app 1 - - msg") == Record(
        "msg", "app", 1, "mx", None, 4, 2)


# -------------------------------------------------------------- year inference

def year_of(line: str, now: float, tz=UTC) -> int:
    stamp = parse(line, now, tz=tz).timestamp
    assert stamp is not None
    return datetime.fromtimestamp(stamp, tz).year


def test_december_record_seen_in_january_is_last_year() -> None:
    now = at(2027, 1, 1, 0, 0, 10)
    assert parse("Dec 31 23:59:59 mx sshd[1]: x", now).timestamp == \
        at(2026, 12, 31, 23, 59, 59)


def test_january_record_seen_on_new_years_eve_within_slack_is_next_year() -> None:
    now = at(2026, 12, 31, 23, 30)
    assert parse("Jan  1 00:10:00 mx sshd[1]: x", now).timestamp == at(2027, 1, 1, 0, 10)


def test_future_slack_boundary() -> None:
    now = NOW  # 10:00:00
    assert FUTURE_SLACK == 3600.0
    assert year_of("Nov 21 10:59:00 mx a: x", now) == 2026  # clock skew
    assert year_of("Nov 21 11:00:00 mx a: x", now) == 2026  # exactly the slack
    assert year_of("Nov 21 11:00:01 mx a: x", now) == 2025  # beyond it
    assert year_of("Nov 21 11:30:00 mx a: x", now) == 2025
    assert year_of("Dec 25 00:00:00 mx a: x", now) == 2025
    assert year_of("Nov 21 09:00:00 mx a: x", now) == 2026


def test_fractional_seconds_do_not_move_the_year() -> None:
    record = parse("Nov 21 11:00:00.999 mx a: x")
    assert record.timestamp == at(2026, 11, 21, 11) + 0.999


def test_february_29_goes_back_to_the_last_leap_year() -> None:
    assert parse("Feb 29 12:00:00 mx a: x", at(2026, 3, 1)).timestamp == at(2024, 2, 29, 12)
    assert parse("Feb 29 12:00:00 mx a: x", at(2028, 3, 1)).timestamp == at(2028, 2, 29, 12)
    assert parse("Feb 29 12:00:00 mx a: x", at(2028, 2, 28)).timestamp == at(2024, 2, 29, 12)


def test_year_inference_uses_the_parsers_zone() -> None:
    # 23:30 UTC on 31 December is already 00:30 on 1 January in Berlin
    now = at(2026, 12, 31, 23, 30)
    line = "Jan  1 01:20:00 mx a: x"
    assert parse(line, now, tz=BERLIN).timestamp == at(2027, 1, 1, 1, 20, tz=BERLIN)
    assert parse(line, now, tz=UTC).timestamp == at(2026, 1, 1, 1, 20)


def test_same_line_follows_the_clock_across_hours() -> None:
    parser = RecordParser(8192, UTC)
    line = b"Nov 21 11:30:00 mx a: x"
    assert parser.parse(line, NOW).timestamp == at(2025, 11, 21, 11, 30)
    later = at(2026, 11, 21, 11, 0)  # next hour: the record is now in the past
    assert parser.parse(line, later).timestamp == at(2026, 11, 21, 11, 30)


def test_result_does_not_depend_on_earlier_calls() -> None:
    line = b"Nov 21 10:30:00 mx a: x"
    early, late = at(2026, 11, 21, 9, 0), at(2026, 11, 21, 9, 45)
    used = RecordParser(8192, UTC)
    used.parse(line, early)  # 90 minutes ahead: last year
    # 45 minutes ahead is clock skew: this year, as a fresh parser says
    assert RecordParser(8192, UTC).parse(line, late).timestamp == at(2026, 11, 21, 10, 30)
    assert used.parse(line, late).timestamp == at(2026, 11, 21, 10, 30)


# ------------------------------------------------------------------ rejections

@pytest.mark.parametrize("line, reason", [
    pytest.param(b"x" * (LIMIT + 1), "too-long", id="limit+1"),
    pytest.param(b"x" * (LIMIT + 1) + b"\r\n", "too-long", id="limit+1-crlf"),
    pytest.param(b"x" * LIMIT + b"\n\n", "too-long", id="limit-two-newlines"),
    pytest.param(b"x" * LIMIT + b" \n", "too-long", id="limit-space-newline"),
    pytest.param(b"a\0b", "nul-byte", id="nul"),
    pytest.param(b"\0", "nul-byte", id="nul-alone"),
    pytest.param(b"a\x01b", "control-char", id="soh"),
    pytest.param(b"a\x1b[31mb", "control-char", id="escape"),
    pytest.param(b"a\nb", "control-char", id="embedded-lf"),
    pytest.param(b"a\rb", "control-char", id="embedded-cr"),
    pytest.param(b"a\r\r\n", "control-char", id="double-cr"),
    pytest.param(b"a\x0bb", "control-char", id="vt"),
    pytest.param(b"a\x0cb", "control-char", id="ff"),
    pytest.param(b"a\x7f", "control-char", id="del"),
    pytest.param(b"\x08", "control-char", id="backspace-alone"),
    pytest.param(b"a\n\n", "control-char", id="two-trailing-newlines"),
    pytest.param(b"\xff", "invalid-utf8", id="ff-byte"),
    pytest.param(b"user j\xf6rg", "invalid-utf8", id="latin1"),
    pytest.param(b"a\xc3(b", "invalid-utf8", id="bad-continuation"),
    pytest.param(b"\xc0\xaf", "invalid-utf8", id="overlong-encoding"),
    pytest.param(b"\xed\xa0\x80", "invalid-utf8", id="surrogate"),
    pytest.param(b"\xe6\x97", "invalid-utf8", id="truncated-sequence"),
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"\n", "empty", id="newline"),
    pytest.param(b"\r\n", "empty", id="crlf"),
    pytest.param(b"   ", "empty", id="spaces"),
    pytest.param(b" \t\t ", "empty", id="spaces-tabs"),
    pytest.param(b"\t\r\n", "empty", id="tab-crlf"),
])
def test_rejections(line: bytes, reason: str) -> None:
    assert reject_reason(line, LIMIT) == reason


@pytest.mark.parametrize("line", [
    b"x" * LIMIT, b"x" * LIMIT + b"\n", b"x" * LIMIT + b"\r\n", b"x" * LIMIT + b"\r",
    "é".encode() * (LIMIT // 2),
])
def test_size_limit_is_inclusive_and_a_line_ending_does_not_count(line: bytes) -> None:
    assert RecordParser(LIMIT, UTC).parse(line, NOW).message == \
        line.rstrip(b"\r\n").decode()


def test_size_limit_counts_bytes_not_characters() -> None:
    assert reject_reason("é".encode() * (LIMIT // 2) + b"x", LIMIT) == "too-long"


def test_malformed_carries_reason_and_description() -> None:
    for reason, text in REJECT_REASONS.items():
        error = Malformed(reason)
        assert isinstance(error, ValueError)
        assert error.reason == reason and text in str(error)


def test_tab_inside_message_is_allowed() -> None:
    assert parse(b"Nov 21 10:00:27 mx sshd[1]: a\tb\t") == \
        Record("a\tb\t", "sshd", 1, "mx", STAMP)


def test_non_ascii_utf8_is_allowed() -> None:
    line = "Nov 21 10:00:27 mx sshd[1]: Invalid user jörg日本 from 192.0.2.1 port 22"
    assert parse(line.encode()) == Record(
        "Invalid user jörg日本 from 192.0.2.1 port 22", "sshd", 1, "mx", STAMP)


def test_unicode_non_printables_other_than_c0_are_allowed() -> None:
    for text in ("a\u00a0b", "a\u0085b", "a\u2028b", "a\u200bb"):
        assert parse(f"Nov 21 10:00:27 mx a: {text}").message == text


def test_crlf_is_not_part_of_the_message() -> None:
    assert parse(b"Nov 21 10:00:27 mx sshd[1]: x\r\n") == Record("x", "sshd", 1, "mx", STAMP)


# ----------------------------------------------------------- property tests

TRICKY_PREFIXES = [
    "", "<", "<1", "<22>", "<191>", "<192>", "<999>", "<0>", "<34>1 ", "<34>1 - ",
    "<34>1 - - - - - ", "<34>1 - - - - - [", '<34>1 - - - - - [a x="', "1 ", "1", " ",
    "Nov 21 10:00:27 ", "Nov  1 10:00:27", "Feb 29 00:00:00 ", "Feb 30 25:61:61 ",
    "Nov 21 10:00:27.", "Nov 21 10:00:27 mx ", "Nov 21 10:00:27 2001:db8::1 ",
    "Nov 21 10:00:27 ::: ", "2026-11-21T10:00:27", "2026-11-21T10:00:27.1234567890",
    "2026-11-21T10:00:27+99:99 ", "0000-00-00T00:00:00 ", "9999-12-31T23:59:59-23:59 ",
    "0001-01-01 00:00:00+23:59 ", "<13>2026-11-21T10:00:27Z ", "sshd[", "sshd[1]",
    "x: ", "[", "]", ":", "auth.info: ", "auth.info: Nov 21 10:00:27 ",
    "@400000006a1f4d3b00000000 mail.err: ", "2026-11-21_10:00:27.12345 mail.err: ",
    "2026-11-21 10:00:27.123456789 local7.warn: ", "Nov 21 10:00:27 <4.6> ",
    "Nov 21 10:00:27 <auth.notice> mx ", "Nov 21 10:00:27 mx auth.info ", "Nov 21 10:00:27 [",
    "Nov 21 10:00:27 mx sshd[1] ",
]


@st.composite
def printable_lines(draw: st.DrawFn, max_size: int) -> str:
    prefix = draw(st.sampled_from(TRICKY_PREFIXES))
    body = draw(st.text(alphabet=PRINTABLE_ASCII, max_size=max_size))
    line = (prefix + body)[:max_size]
    assume(line.strip(" \t"))
    return line


@PROPERTY
@given(data=st.binary(max_size=300), prefix=st.sampled_from(TRICKY_PREFIXES),
       now=st.floats(0, 2**33, allow_nan=False))
def test_random_bytes_only_ever_raise_malformed(data: bytes, prefix: str, now: float) -> None:
    for line in (data, prefix.encode() + data):
        try:
            record = RecordParser(200, UTC).parse(line, now)
        except Malformed as exc:
            assert exc.reason in REJECT_REASONS
        else:
            assert isinstance(record.message, str)


@PROPERTY
@given(text=st.text(max_size=200), prefix=st.sampled_from(TRICKY_PREFIXES),
       tz=st.sampled_from([UTC, BERLIN, None]))
def test_random_text_only_ever_raises_malformed(text: str, prefix: str, tz) -> None:
    try:
        RecordParser(8192, tz).parse((prefix + text).encode("utf-8", "replace"), NOW)
    except Malformed as exc:
        assert exc.reason in REJECT_REASONS


def test_rfc5424_superscript_procid_does_not_crash() -> None:
    assert parse("<34>1 - mx app \u00b2 - - msg") == Record("msg", "app", None, "mx",
                                                           None, 4, 2)


def check_printable_line(line: str, parser: RecordParser, now: float) -> None:
    record = parser.parse(line.encode(), now)  # must not raise: the scanner relies on it
    assert line.endswith(record.message)  # the message is what the line ends with
    if record.program is not None:
        assert record.program in line
    if record.hostname is not None:
        assert record.hostname in line


@PROPERTY
@given(data=st.data(), tz=st.sampled_from([UTC, BERLIN, None]),
       now=st.one_of(st.just(NOW), st.floats(0, 2**33, allow_nan=False)))
def test_every_printable_ascii_line_within_the_limit_parses(data, tz, now: float) -> None:
    for max_size in (LIMIT, 8192):
        line = data.draw(printable_lines(max_size), label=f"line<={max_size}")
        check_printable_line(line, RecordParser(max_size, tz), now)


@PROPERTY
@given(line=st.text(alphabet=" <>[]:.-0123456789TZNovFeb1sd\t", min_size=1, max_size=80))
def test_every_header_alphabet_line_parses(line: str) -> None:
    assume(line.strip(" \t"))
    check_printable_line(line, RecordParser(8192, UTC), NOW)


def test_printable_lines_at_exactly_the_limit_parse() -> None:
    parser = RecordParser(LIMIT, UTC)
    for prefix in TRICKY_PREFIXES:
        line = (prefix + "x" * LIMIT)[:LIMIT]
        check_printable_line(line, parser, NOW)


HOSTNAMES = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.-]{0,30}", fullmatch=True),
    st.ip_addresses().map(str))
PROGRAMS = st.from_regex(r"[A-Za-z0-9_./-]{1,30}", fullmatch=True)
MESSAGES = st.text(alphabet=PRINTABLE_ASCII + "\täö", max_size=60)


@PROPERTY
@given(pri=st.none() | st.integers(0, 191), month=st.sampled_from(sorted(MONTHS)),
       day=st.integers(1, 28), hms=st.tuples(st.integers(0, 23), st.integers(0, 59),
                                             st.integers(0, 59)),
       pad=st.booleans(), host=st.none() | HOSTNAMES, program=PROGRAMS,
       pid=st.none() | st.integers(0, 9_999_999_999), message=MESSAGES)
def test_rfc3164_headers_round_trip(pri, month, day, hms, pad, host, program, pid,
                                    message) -> None:
    hour, minute, second = hms
    day_text = f"{day:2d}" if pad else str(day)
    line = (("" if pri is None else f"<{pri}>")
            + f"{month} {day_text} {hour:02d}:{minute:02d}:{second:02d} "
            + ("" if host is None else f"{host} ")
            + program + ("" if pid is None else f"[{pid}]") + ": " + message)
    record = parse(line)
    assert (record.program, record.pid, record.hostname, record.message) == \
        (program, pid, host, message.lstrip(" "))  # spaces after ": " are no text
    assert (record.facility, record.severity) == \
        ((None, None) if pri is None else divmod(pri, 8))
    assert record.timestamp is not None and record.timestamp <= NOW + FUTURE_SLACK
    when = datetime.fromtimestamp(record.timestamp, UTC)
    assert (when.month, when.day, when.hour, when.minute, when.second) == \
        (MONTHS[month], day, hour, minute, second)
    assert when.year in (2025, 2026)


@PROPERTY
@given(when=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 1, 1),
                         timezones=st.sampled_from([UTC, BERLIN])),
       zulu=st.booleans(), host=HOSTNAMES, program=PROGRAMS,
       pid=st.none() | st.integers(0, 99999), message=MESSAGES)
def test_iso_headers_round_trip(when: datetime, zulu: bool, host: str, program: str,
                                pid, message: str) -> None:
    when = when.replace(microsecond=when.microsecond // 1000 * 1000)  # exact in a float
    stamp = when.isoformat(timespec="milliseconds")
    if zulu:
        stamp = when.astimezone(UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
    line = f"{stamp} {host} {program}{'' if pid is None else f'[{pid}]'}: {message}"
    record = parse(line)
    assert (record.program, record.pid, record.hostname, record.message) == \
        (program, pid, host, message.lstrip(" "))
    assert record.timestamp == pytest.approx(when.timestamp(), abs=1e-6)


@pytest.mark.parametrize(("line", "record"), [
    ("2026-11-21 10:00:27 login authenticator failed for (x) [192.0.2.1]: 535 Incorrect",
     Record("login authenticator failed for (x) [192.0.2.1]: 535 Incorrect", "exim", None,
            None, STAMP)),
    ("2026-11-21 10:00:27.250 +0100 [4711] H=(x) [192.0.2.1] rejected RCPT <a@b>: relay",
     Record("H=(x) [192.0.2.1] rejected RCPT <a@b>: relay", "exim", 4711, None,
            STAMP - 3600 + 0.25)),
    # The date with a space is Exim's own format: what follows is never a
    # syslog host and tag, even when a client's HELO makes it look like one.
    ("2026-11-21 10:00:27 H=(x sshd[1]: Failed password for 6.6.6.6) [192.0.2.1]",
     Record("H=(x sshd[1]: Failed password for 6.6.6.6) [192.0.2.1]", "exim", None, None,
            STAMP)),
    ("2026-11-21 10:00:27 1VxPit-000MMd-U4 SA: Action: scanned",
     Record("1VxPit-000MMd-U4 SA: Action: scanned", "exim", None, None, STAMP)),
])
def test_exim_main_log_lines_are_exims(line: str, record: Record) -> None:
    assert RecordParser(tz=UTC).parse(line.encode(), NOW) == record


# ------------------------------------------- other daemons' header forms

def tai64n(stamp: float) -> str:
    """The TAI64N label of a time, as svlogd -t and multilog t write it."""
    seconds = int(stamp)
    return f"@{(1 << 62) + 10 + seconds:016x}{round((stamp - seconds) * 1e9):08x}"


@pytest.mark.parametrize("line, expected", [
    # busybox syslogd (sysklogd/syslogd.c, timestamp_and_log): "%s %.64s %s %s",
    # timestamp, host, "facility.level" (parse_fac_prio_20), message
    pytest.param("Nov 21 10:00:27 vps auth.info sshd[13482]: Invalid user admin from 192.0.2.2",
                 Record("Invalid user admin from 192.0.2.2", "sshd", 13482, "vps", STAMP, 4, 6),
                 id="busybox"),
    pytest.param("Nov 21 10:00:27 mx mail.warn postfix/smtpd: warning: x",
                 Record("warning: x", "postfix/smtpd", None, "mx", STAMP, 2, 4),
                 id="busybox-no-pid"),
    pytest.param("Nov 21 10:00:27 mx authpriv.notice bb: y",
                 Record("y", "bb", None, "mx", STAMP, 10, 5), id="busybox-authpriv"),
    pytest.param("Nov 21 10:00:27 mx local7.err x[1]: y",
                 Record("y", "x", 1, "mx", STAMP, 23, 3), id="busybox-local7"),
    # FreeBSD syslogd -v / -vv (usr.sbin/syslogd/syslogd.c, fprintlog_first):
    # "<%d.%d> " (numbers), "<%s.%s> " (names, a number where there is none)
    pytest.param("Nov 21 10:00:27 <10.5> foxtrot sshd[1234]: Invalid user admin from 192.0.2.3",
                 Record("Invalid user admin from 192.0.2.3", "sshd", 1234, "foxtrot", STAMP, 10, 5),
                 id="freebsd-v"),
    pytest.param("Nov 21 10:00:27 <auth.notice> foxtrot sshd[1234]: x",
                 Record("x", "sshd", 1234, "foxtrot", STAMP, 4, 5), id="freebsd-vv"),
    pytest.param("Nov 21 10:00:27 <security.warning> fw kernel: x",
                 Record("x", "kernel", None, "fw", STAMP, 13, 4), id="freebsd-vv-security"),
    pytest.param("Nov 21 10:00:27 <12.err> fw ntpd[7]: x",
                 Record("x", "ntpd", 7, "fw", STAMP, 12, 3), id="freebsd-vv-number-and-name"),
    pytest.param("Nov 21 10:00:27 <2.6> mx last message repeated 3 times",
                 Record("last message repeated 3 times", None, None, "mx", STAMP, 2, 6),
                 id="freebsd-v-no-tag"),
    # socklog: "facility.level: " and the datagram as glibc's syslog(3) sent it
    pytest.param("auth.info: Nov 21 10:00:27 sshd[30993]: Invalid user admin from 192.0.2.4",
                 Record("Invalid user admin from 192.0.2.4", "sshd", 30993, None, STAMP, 4, 6),
                 id="socklog"),
    pytest.param("authpriv.notice: Nov 21 10:00:27 vm sshd[21971]: x",
                 Record("x", "sshd", 21971, "vm", STAMP, 10, 5), id="socklog-rfc3164-host"),
    pytest.param("local7.warn: Nov 21 10:00:27 x: hello",
                 Record("hello", "x", None, None, STAMP, 23, 4), id="socklog-warn"),
    pytest.param("auth.info: sshd[30993]:  Invalid user admin",
                 Record("Invalid user admin", "sshd", 30993, None, None, 4, 6),
                 id="socklog-stripped-timestamp"),
    pytest.param("auth.info: Invalid user admin from 192.0.2.5",
                 Record("Invalid user admin from 192.0.2.5", None, None, None, None, 4, 6),
                 id="socklog-no-tag"),
    # ... behind svlogd -t / multilog t (TAI64N), svlogd -tt and -ttt (UTC,
    # five digits of fraction) and tai64nlocal (local time, nine digits)
    pytest.param(f"{tai64n(STAMP + 0.5)} auth.info: Nov 21 10:00:20 sshd[1]: x",
                 Record("x", "sshd", 1, None, STAMP + 0.5, 4, 6), id="svlogd-t"),
    pytest.param("2026-11-21_10:00:27.52291 auth.info: Nov 21 10:00:20 sshd[1]: x",
                 Record("x", "sshd", 1, None, STAMP + 0.52291, 4, 6), id="svlogd-tt"),
    pytest.param("2026-11-21T10:00:27.55042 mail.err: Nov 21 10:00:20 postfix/smtpd[2]: y",
                 Record("y", "postfix/smtpd", 2, None, STAMP + 0.55042, 2, 3), id="svlogd-ttt"),
    pytest.param("2026-11-21 10:00:27.559253500 auth.info: Nov 21 10:00:20 sshd[3]: z",
                 Record("z", "sshd", 3, None, STAMP + 0.5592535, 4, 6), id="tai64nlocal"),
    pytest.param("2026-11-21T10:00:27.46667 auth.info: Invalid user admin",
                 Record("Invalid user admin", None, None, None, STAMP + 0.46667, 4, 6),
                 id="svlogd-socklog-no-tag"),
    # rsyslog templates that drop the colon after TAG[PID]
    pytest.param("2026-11-21T10:00:27+00:00 bastion sshd[20974] error: PAM: x",
                 Record("error: PAM: x", "sshd", 20974, "bastion", STAMP), id="no-colon"),
    pytest.param("Nov 21 10:00:27 sshd[20974] Invalid user x",
                 Record("Invalid user x", "sshd", 20974, None, STAMP), id="no-colon-no-host"),
    # metalog: "[TAG] MSG" right after the date
    pytest.param("Nov 21 10:00:27 [sshd] User root from 192.0.2.6 not allowed",
                 Record("User root from 192.0.2.6 not allowed", "sshd", None, None, STAMP),
                 id="metalog"),
    pytest.param("Nov 21 10:00:27 [sshd]: User root",
                 Record("User root", "sshd", None, None, STAMP), id="metalog-colon"),
])
def test_other_daemons_header_forms(line: str, expected: Record) -> None:
    assert parse(line) == expected


def test_tai64nlocal_is_in_the_parsers_zone() -> None:
    line = "2026-11-21 10:00:27.000000000 auth.info: sshd[3]: z"
    assert parse(line, tz=BERLIN).timestamp == at(2026, 11, 21, 9, 0, 27)
    # svlogd's own stamps are UTC whatever the zone
    assert parse("2026-11-21T10:00:27.00000 auth.info: sshd[3]: z", tz=BERLIN).timestamp == STAMP


@pytest.mark.parametrize("line, expected", [
    # names that are no facility or level: the word is the message's, never a tag's
    pytest.param("Nov 21 10:00:27 mx nofacility.info sshd[1]: x",
                 Record("nofacility.info sshd[1]: x", None, None, "mx", STAMP),
                 id="unknown-facility-name"),
    pytest.param("Nov 21 10:00:27 mx auth.loud sshd[1]: x",
                 Record("auth.loud sshd[1]: x", None, None, "mx", STAMP), id="unknown-level"),
    pytest.param("Nov 21 10:00:27 <99.5> mx sshd[1]: x",
                 Record("mx sshd[1]: x", None, None, "<99.5>", STAMP),
                 id="freebsd-impossible-facility"),
    pytest.param("nofacility.info: Nov 21 10:00:27 sshd[1]: x",
                 Record("nofacility.info: Nov 21 10:00:27 sshd[1]: x"), id="socklog-unknown"),
    # busybox always writes the host: a name alone is a host, not a facility
    pytest.param("Nov 21 10:00:27 mail.info sshd[1]: x",
                 Record("x", "sshd", 1, "mail.info", STAMP), id="host-that-looks-like-a-facility"),
    # without the colon only TAG[PID] is a tag: a bare word stays message text
    pytest.param("Nov 21 10:00:27 mx sshd Invalid user x",
                 Record("sshd Invalid user x", None, None, "mx", STAMP), id="no-colon-needs-pid"),
    # metalog's brackets only right after the date
    pytest.param("Nov 21 10:00:27 mx [sshd] x", Record("[sshd] x", None, None, "mx", STAMP),
                 id="brackets-after-host"),
    pytest.param("2026-11-21T10:00:27Z [sshd] x", Record("x", None, None, "[sshd]", STAMP),
                 id="brackets-after-iso"),
])
def test_other_forms_take_no_free_word_for_a_tag(line: str, expected: Record) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize("line", [
    "Nov 21 10:00:27 mx postfix/smtpd[1]: auth.info sshd[2]: Failed password",
    "Nov 21 10:00:27 <4.6> mx postfix/smtpd[1]: [sshd] x sshd[2] y",
    "auth.info: Nov 21 10:00:27 postfix/smtpd[1]: <auth.info> mx sshd[2]: x",
    "Nov 21 10:00:27 mx mail.info postfix/smtpd[1]: sshd[2] x",
    "Nov 21 10:00:27 mx postfix/smtpd[1] sshd[2]: x",
])
def test_message_text_never_picks_the_tag(line: str) -> None:
    assert parse(line).program == "postfix/smtpd"


@PROPERTY
@given(facility=st.sampled_from(sorted(FACILITY_CODES)),
       level=st.sampled_from(sorted(SEVERITY_CODES)), host=HOSTNAMES,
       name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.-]{0,30}", fullmatch=True),
       program=PROGRAMS, pid=st.none() | st.integers(0, 9_999_999_999), message=MESSAGES)
def test_busybox_socklog_and_freebsd_headers_round_trip(facility, level, host, name, program,
                                                        pid, message) -> None:
    tag = program + ("" if pid is None else f"[{pid}]")
    codes = (FACILITY_CODES[facility], SEVERITY_CODES[level])
    text = message.lstrip(" ")  # spaces after the tag's colon are no text
    # busybox writes its own host name (gethostname), never an address
    busybox = parse(f"Nov 21 10:00:27 {name} {facility}.{level} {tag}: {message}")
    assert busybox == Record(text, program, pid, name, STAMP, *codes)
    socklog = parse(f"2026-11-21T10:00:27.00000 {facility}.{level}: Nov 21 10:00:20 {tag}: "
                    f"{message}")
    assert socklog == Record(text, program, pid, None, STAMP, *codes)
    freebsd = parse(f"Nov 21 10:00:27 <{facility}.{level}> {host} {tag}: {message}")
    assert freebsd == Record(text, program, pid, host, STAMP, *codes)


# ------------------------------------------------------ lines the scanner vouched for

@PROPERTY
@given(data=st.data(), tz=st.sampled_from([UTC, BERLIN]),
       now=st.one_of(st.just(NOW), st.floats(0, 2**33, allow_nan=False)))
def test_a_clean_line_parses_as_it_would_unchecked(data, tz, now: float) -> None:
    """parse(clean=True) skips the byte checks the scanner did: same record."""
    line = data.draw(printable_lines(8192)).encode()  # not blank, within the limit
    assert RecordParser(8192, tz).parse(line, now, clean=True) == \
        RecordParser(8192, tz).parse(line, now)


def test_rfc3164_stamps_looked_up_agree_with_a_fresh_parser() -> None:
    """A stamp is kept for its minute only where every `now` of it gives the same
    year: near the future slack and late in December it is computed each time."""
    used = RecordParser(8192, UTC)
    minute = at(2026, 11, 21, 9, 59)
    lines = [b"Nov 21 10:59:30 mx a: x", b"Nov 21 11:00:00 mx a: x",
             b"Nov 21 10:58:59 mx a: x", b"Dec 31 23:59:59 mx a: x", b"Nov 21 09:00:00 mx a: x"]
    for second in range(0, 60, 7):
        for line in lines:
            now = minute + second
            assert used.parse(line, now).timestamp == \
                RecordParser(8192, UTC).parse(line, now).timestamp, (line, second)
