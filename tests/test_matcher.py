"""The matcher: tag dispatch, literal prefilter, anchored patterns, addresses."""

from __future__ import annotations

from syslogban.matcher import Attack, Matcher
from syslogban.record import Record
from syslogban.signatures import COUNT, make_signature

NOW = 1_800_000_000.0

SASL = make_signature("postfix.sasl", "postfix", "d", ("postfix*/smtpd",),
                      r"warning: [\w.-]+\[<ADDR>\](?::<PORT>)?: SASL \S+ authentication failed")
ANY = make_signature("free.any", "free", "tag-free", (), r"BAD LOGIN from <ADDR>", danger=5)


def rec(message: str, program: str | None = "postfix/smtpd") -> Record:
    return Record(message, program)


def test_match_returns_attack_with_normalised_address() -> None:
    m = Matcher([SASL])
    msg = "warning: unknown[::ffff:192.0.2.7]:4455: SASL LOGIN authentication failed: x"
    assert m.match(rec(msg), NOW) == Attack("192.0.2.7", "postfix.sasl", "postfix", 10)


def test_program_glob_dispatch() -> None:
    m = Matcher([SASL])
    msg = "warning: unknown[192.0.2.7]: SASL PLAIN authentication failed:"
    for tag in ("postfix/smtpd", "postfix/submission/smtpd", "postfix-out/smtpd"):
        assert m.match(rec(msg, tag), NOW) is not None, tag
    for tag in ("postfix/smtp", "smtpd", "postfix/smtpd-x", None):
        assert m.match(rec(msg, tag), NOW) is None, tag


def test_pattern_is_anchored_at_message_start() -> None:
    m = Matcher([SASL])
    assert m.match(rec("user said warning: unknown[192.0.2.7]: SASL LOGIN "
                       "authentication failed"), NOW) is None


def test_tag_free_signature_sees_bare_and_tagged_records() -> None:
    m = Matcher([SASL, ANY])
    assert m.match(rec("BAD LOGIN from 2001:DB8::1", None), NOW) == Attack(
        "2001:db8::1", "free.any", "free", 5)
    assert m.match(rec("BAD LOGIN from 192.0.2.1", "whatever"), NOW) is not None


def test_invalid_address_is_dropped_and_counted() -> None:
    m = Matcher([SASL])
    assert m.match(rec("warning: unknown[999.1.1.1]: SASL LOGIN authentication failed"), NOW) is None
    assert m.match(rec("warning: unknown[1:2:3]: SASL LOGIN authentication failed"), NOW) is None
    assert m.invalid_addresses == 2


def test_zone_id_is_stripped() -> None:
    m = Matcher([SASL])
    attack = m.match(rec("warning: unknown[2001:db8::1%eth0]: SASL LOGIN authentication failed"),
                     NOW)
    assert attack is not None and attack.address == "2001:db8::1"


def test_addresses_never_blocked_are_dropped_and_counted_as_invalid() -> None:
    """A forged record naming the unspecified, broadcast, multicast or
    link-local address (a local `logger` suffices) blocks nothing."""
    m = Matcher([SASL, ANY])
    never = ["0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "ff02::1", "fe80::1%eth0",
             "::ffff:224.0.0.251", "169.254.169.254"]
    for address in never:
        assert m.match(rec(f"warning: unknown[{address}]: SASL LOGIN authentication failed"),
                       NOW) is None, address
        assert m.match(rec(f"BAD LOGIN from {address}", None), NOW) is None, address
    assert m.invalid_addresses == 2 * len(never)
    assert m.match(rec("BAD LOGIN from 192.0.2.1", None), NOW) is not None  # documentation: blocked


def test_first_signature_in_order_wins() -> None:
    broad = make_signature("postfix.broad", "postfix", "d", ("postfix/smtpd",),
                           r"warning: \S+\[<ADDR>\]: SASL")
    msg = "warning: unknown[192.0.2.7]: SASL LOGIN authentication failed"
    assert Matcher([broad, SASL]).match(rec(msg), NOW).signature == "postfix.broad"
    assert Matcher([SASL, broad]).match(rec(msg), NOW).signature == "postfix.sasl"


def test_caseless_literal() -> None:
    sig = make_signature("x.ci", "x", "d", ("x",), r"(?i)login failure from <ADDR>")
    m = Matcher([sig])
    assert m.prefilters() == [(sig.prefilter, True)]
    assert sig.literal == "login failure from "
    assert m.match(rec("LOGIN Failure FROM 192.0.2.9", "x"), NOW).address == "192.0.2.9"


def test_dispatch_cache_is_bounded() -> None:
    m = Matcher([SASL])
    for n in range(10_000):
        m.candidates(f"tag{n}")
    assert len(m._dispatch) <= 4096


def test_a_count_line_reports_at_most_max_count_attempts() -> None:
    """A forged `auth=0/999999` (any local user can log one) counted 999,999
    failed logins: one record went from nothing to a permanent blacklist."""
    from syslogban.signatures import MAX_COUNT, load_rules
    m = Matcher(s for s in load_rules() if s.id == "postfix.auth-disconnect-stats")
    line = "disconnect from unknown[203.0.113.5] ehlo=1 auth=0/{} quit=1 commands=1/{}"
    assert m.match(rec(line.format(3, 5)), NOW).count == 3  # type: ignore[union-attr]
    attack = m.match(rec(line.format(999999, 999999)), NOW)
    assert attack is not None and attack.count == MAX_COUNT == 100


def test_rsyslog_repeated_message_is_matched_inside_and_counts_its_copies() -> None:
    """runtime/ratelimit.c: " message repeated %d times: [%.800s]" (Ubuntu's rsyslog)."""
    sig = make_signature("sshd.failed", "sshd", "d", ("sshd",),
                         r"Failed password for <USER> from <ADDR> port \d+ ssh2$")
    m = Matcher([sig])
    attack = m.match(Record("message repeated 3 times: [ Failed password for root from "
                            "192.0.2.9 port 22 ssh2]", "sshd", 7), 0)
    assert attack is not None and (attack.address, attack.role, attack.count) == \
        ("192.0.2.9", COUNT, 4)
    # the wrapper is rsyslog's: a program's own text that merely starts so is not unwrapped
    assert m.match(Record("message repeated 3 times: Failed password for root from "
                          "192.0.2.9 port 22 ssh2", "sshd", 7), 0) is None
    # and its count is a count like any other: at most MAX_COUNT
    attack = m.match(Record("message repeated 999999999 times: [ Failed password for root "
                            "from 192.0.2.9 port 22 ssh2]", "sshd", 7), 0)
    assert attack is not None and attack.count == 100


def test_solaris_message_id_is_the_systems_not_the_programs() -> None:
    sig = make_signature("sshd.invalid", "sshd", "d", ("sshd",),
                         r"Invalid user <USER> from <ADDR> port \d+$")
    attack = Matcher([sig]).match(Record("[ID 800047 auth.info] Invalid user a from 192.0.2.8 "
                                         "port 22", "sshd", 7), 0)
    assert attack is not None and attack.address == "192.0.2.8"
