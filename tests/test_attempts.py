"""Attempt accounting (attempts.py): lines that report one attempt count it once."""

from __future__ import annotations

import tomllib

import pytest

from syslogban.attempts import PER_ADDRESS, Accountant, Counted
from syslogban.examples import check_session_examples, session_attempts
from syslogban.matcher import Attack, Matcher
from syslogban.record import RecordParser
from syslogban.signatures import (ATTEMPT, CORROBORATES, COUNT, SessionExample,
                                  bundled_rules_dir, load_rules, load_session_examples,
                                  rule_files)

ADDR = "198.51.100.7"
DOVECOT_SERVES = ("postfix", "exim")


def line(signature: str, role: str = ATTEMPT, session: str | None = None, count: int = 1,
         serves: tuple[str, ...] = (), danger: int = 10, address: str = ADDR) -> Attack:
    return Attack(address, signature, signature.split(".")[0], danger, role, session, count,
                  serves)


SASL = line("postfix.sasl-auth-failed", session="pid:1")
LOST = line("postfix.lost-after-auth", CORROBORATES, "pid:1", danger=5)
DISCONNECT = line("postfix.auth-disconnect-stats", COUNT, "pid:1")
MISMATCH = line("dovecot.password-mismatch", serves=DOVECOT_SERVES)
PAM_UNIX = line("dovecot.pam-auth-failure", CORROBORATES, serves=DOVECOT_SERVES)
SUMMARY = line("dovecot.auth-failed", COUNT)


def feed(accountant: Accountant, *events: tuple[float, Attack]) -> list[Counted]:
    return [accountant.observe(attack, t, ref) for ref, (t, attack) in enumerate(events, 1)]


def total(counted: list[Counted]) -> int:
    return sum(c.new for c in counted)


def test_one_smtp_auth_failure_through_dovecot_is_one_attempt() -> None:
    counted = feed(Accountant(), (0, MISMATCH), (2, SASL), (2, LOST),
                   (2, DISCONNECT._replace(count=1)))
    # it counts at Postfix's warning, for Postfix: "2 failed SMTP logins" stay SMTP's
    assert [(c.attempt, c.new, c.points) for c in counted] == [
        (1, 0, 0), (1, 1, 10), (1, 0, 0), (1, 0, 0)]


def test_an_auth_line_with_its_login_session_counts_at_once_for_its_service() -> None:
    imap = MISMATCH._replace(session="mx/YADINsQCDs5BH8Pg")
    counted = feed(Accountant(), (0, imap), (2, SUMMARY._replace(session="mx/YADINsQCDs5BH8Pg")))
    assert [(c.attempt, c.new) for c in counted] == [(1, 1), (1, 0)]
    # another login session's summary does not take it
    other = SUMMARY._replace(session="mx/other")
    assert total(feed(Accountant(), (0, imap), (2, other))) == 2


def test_an_auth_line_nobody_claims_never_counts() -> None:
    """A front always follows (the MTA's warning, the login summary); without one
    the attempt's service is unknown, and it is left uncounted, never guessed."""
    assert total(feed(Accountant(), (0, MISMATCH), (1, PAM_UNIX))) == 0


def test_same_signature_twice_is_two_attempts() -> None:
    assert total(feed(Accountant(), (0, SASL), (1, SASL), (2, SASL))) == 3


def test_two_attempt_lines_of_one_service_never_merge() -> None:
    other = line("postfix.auth-not-enabled", session="pid:1")
    assert total(feed(Accountant(), (0, SASL), (0, other))) == 2


def test_count_line_adds_what_its_session_did_not_count() -> None:
    three = DISCONNECT._replace(count=3)
    assert total(feed(Accountant(), (0, SASL), (1, SASL), (2, three))) == 3
    assert total(feed(Accountant(), (2, three))) == 3  # the summary alone counts
    counted = feed(Accountant(), (0, SASL), (5, three))
    assert counted[1] == Counted(1, 2, 20)


def test_count_line_claims_only_its_own_session_of_its_front() -> None:
    other_session = DISCONNECT._replace(session="pid:2")
    # pid 1 counted one; pid 2's statistics are about another connection
    assert total(feed(Accountant(), (0, SASL), (1, other_session))) == 2


def test_corroborating_line_alone_counts_and_raises_to_the_summary() -> None:
    counted = feed(Accountant(), (0, LOST), (0, DISCONNECT))
    assert [(c.new, c.points) for c in counted] == [(1, 5), (0, 5)]


def test_summary_claims_the_auth_lines_of_its_login() -> None:
    pam = line("dovecot.pam-authenticate-failed", serves=DOVECOT_SERVES)
    counted = feed(Accountant(), (0, PAM_UNIX), (0, pam), (2, SUMMARY))
    assert total(counted) == 1
    three = feed(Accountant(), (0, MISMATCH), (2, MISMATCH), (4, MISMATCH),
                 (6, SUMMARY._replace(count=3)))
    assert total(three) == 3


def test_serving_lines_arriving_after_their_front_join_it() -> None:
    # Dovecot's own log file may come later than Postfix's syslog
    assert total(feed(Accountant(), (0, SASL), (1, MISMATCH))) == 1
    assert total(feed(Accountant(), (0, SUMMARY), (1, MISMATCH))) == 1


def test_lines_without_a_common_session_must_be_close_in_time() -> None:
    counted = feed(Accountant(pair=15.0), (0, MISMATCH), (60, SASL))
    assert counted[1] == Counted(2, 1, 10)  # an attempt of its own


def test_a_session_stays_open_longer_than_the_pair_window() -> None:
    auth = line("sendmail.auth-failure", session="pid:9")
    no_mail = line("sendmail.no-mail-transaction", CORROBORATES, "pid:9", danger=5)
    assert total(feed(Accountant(), (0, auth), (40, no_mail))) == 1
    elsewhere = no_mail._replace(session="pid:10")
    assert total(feed(Accountant(), (0, auth), (1, elsewhere))) == 2


def test_a_line_of_another_service_never_joins() -> None:
    ssh = line("sshd.failed-auth")
    ssh_pam = line("sshd.pam-auth-error", CORROBORATES)
    assert total(feed(Accountant(), (0, SASL), (0, ssh), (0, ssh_pam))) == 2
    # Dovecot's auth lines serve Postfix and Exim, not sshd
    assert feed(Accountant(), (0, MISMATCH), (1, ssh))[1] == Counted(2, 1, 10)


def test_closed_attempts_take_no_more_front_lines() -> None:
    # the next connection of the same smtpd process begins afresh
    assert total(feed(Accountant(), (0, SASL), (0, DISCONNECT), (1, LOST))) == 2


def test_a_connection_line_never_joins_an_attempt_of_no_connection() -> None:
    """postscreen serves every client in one process (no session): its PREGREET
    is an attempt of its own, not the AUTH failure smtpd reports seconds later."""
    pregreet = line("postfix.postscreen-pregreet")
    too_many = line("postfix.too-many-errors", CORROBORATES, "pid:7", danger=5)
    counted = feed(Accountant(), (0, pregreet), (4, too_many))
    assert [(c.attempt, c.new) for c in counted] == [(1, 1), (2, 1)]


def test_a_summary_claims_the_newest_attempts_of_its_process() -> None:
    """smtpd serves connection after connection in one process: auth=0/1 is the
    last connection's, not one whose statistics line never came."""
    counted = feed(Accountant(), (0, SASL), (1, LOST), (30, SASL), (30, DISCONNECT))
    assert [c.attempt for c in counted] == [1, 1, 3, 3]
    assert total(counted) == 2


def test_addresses_are_apart() -> None:
    other = SASL._replace(address="192.0.2.9")
    assert feed(Accountant(), (0, MISMATCH), (1, other))[1] == Counted(2, 1, 10)


def test_memory_is_bounded() -> None:
    accountant = Accountant(size=100, ttl=60)
    for i in range(1000):
        accountant.observe(line("sshd.failed-auth", address=f"10.0.{i // 256}.{i % 256}"),
                           float(i), i)
    assert len(accountant) == 100 and accountant.counters.forgotten == 900
    for i in range(1000):
        accountant.observe(SASL, float(i), i)
    assert len(accountant._open[ADDR]) <= PER_ADDRESS
    accountant.observe(SASL, 5000.0, 5000)
    assert len(accountant._open[ADDR]) == 1  # the rest left the ttl


def test_counters() -> None:
    accountant = Accountant()
    feed(accountant, (0, MISMATCH), (2, SASL), (3, SASL))
    assert (accountant.counters.attempts, accountant.counters.joined) == (2, 1)


# ------------------------------------------------------ session examples

SIGNATURES = load_rules()


def test_bundled_session_examples_pass_and_cover_every_service() -> None:
    examples = load_session_examples()
    assert check_session_examples(SIGNATURES, examples) == []
    services = {e.source.rsplit("/", 1)[-1].removesuffix(".toml") for e in examples}
    assert services >= {"postfix", "dovecot", "sshd", "sendmail", "exim", "opensmtpd",
                        "courier", "cyrus"}


@pytest.mark.parametrize("example", load_session_examples(), ids=lambda e: e.description[:40])
def test_a_wrong_count_fails(example: SessionExample) -> None:
    address, count = example.attempts[0]
    wrong = SessionExample(example.description, example.lines,
                           ((address, count + 1), *example.attempts[1:]), example.source)
    [message] = check_session_examples(SIGNATURES, [wrong])
    assert f"expected {{'{address}': {count + 1}" in message


def test_lines_counted_one_by_one_would_be_more() -> None:
    """Without accounting (one attempt per line) most examples would count more:
    the accounting is what makes them pass."""
    matcher, parser = Matcher(SIGNATURES), RecordParser()
    more = 0
    for example in load_session_examples():
        attempts = session_attempts(example.lines, matcher, parser)
        lines = sum(1 for text in example.lines
                    if matcher.match(parser.parse(text.encode(), 1.8e9), 1.8e9) is not None)
        more += lines > sum(attempts.values())
    assert more >= 10


def test_every_bundled_signature_says_its_role() -> None:
    """The default (attempt) keeps other rule files loading; the bundled ones say
    what each line is, so that a reader never has to guess."""
    silent = [f"{path.name}: {table['id']}" for path in rule_files([bundled_rules_dir()])
              for table in tomllib.loads(path.read_text())["signature"]
              if not table.get("binds") and "role" not in table]
    assert silent == []
