"""Session correlation: bounded bindings, never a guess, the same in every range."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from syslogban import check as check_module
from syslogban.check import check, check_path
from syslogban.correlation import LATE, Correlator
from syslogban.examples import check_examples
from syslogban.matcher import Attack, Matcher
from syslogban.record import Record
from syslogban.signatures import COUNT, RuleError, make_signature, parse_rules

NOW = 1_800_000_000.0

CONNECTED = make_signature("smtpd.connected", "smtpd", "binds", ("smtpd",),
                           r"<ID> smtp connected address=<ADDR> host=", binds=True)
FAILED = make_signature("smtpd.auth-failed", "smtpd", "auth failed", ("smtpd",),
                        r'<ID> smtp failed-command command="AUTH [A-Z]+" result="535 ')
SIGS = [FAILED, CONNECTED]  # the binding one comes last on purpose


def rec(message: str, host: str | None = "mx") -> Record:
    return Record(message, "smtpd", 1, host)


def connected(session: str, address: str) -> str:
    return f"{session} smtp connected address={address} host=unknown"


def failed(session: str) -> str:
    return f'{session} smtp failed-command command="AUTH LOGIN" result="535 Authentication failed"'


# ------------------------------------------------------------- the correlator

def test_bind_then_resolve_and_counts() -> None:
    c = Correlator(size=10, ttl=60)
    key = ("smtpd", "mx", "abcd1234")
    assert c.resolve(key, 0) is None
    c.bind(key, "192.0.2.1", 0)
    assert c.resolve(key, 30) == "192.0.2.1"
    assert c.resolve(key, 61) is None  # expired: too old to trust
    assert (c.counters.bound, c.counters.resolved, c.counters.unresolved,
            c.counters.expired) == (1, 1, 2, 1)


def test_least_recently_bound_is_evicted_and_counted() -> None:
    c = Correlator(size=3, ttl=1e9)
    for n in range(5):
        c.bind(("s", None, f"id{n}"), f"192.0.2.{n}", n)
    assert len(c) == 3 and c.counters.evicted == 2
    assert c.resolve(("s", None, "id0"), 9) is None
    assert c.resolve(("s", None, "id4"), 9) == "192.0.2.4"
    c.bind(("s", None, "id2"), "192.0.2.22", 10)  # rebinding makes it the youngest
    c.bind(("s", None, "id5"), "192.0.2.5", 11)
    assert c.addresses() == ["192.0.2.4", "192.0.2.22", "192.0.2.5"]


def test_resolving_does_not_refresh() -> None:
    c = Correlator(size=2, ttl=1e9)
    c.bind(("s", None, "a"), "192.0.2.1", 0)
    c.bind(("s", None, "b"), "192.0.2.2", 0)
    assert c.resolve(("s", None, "a"), 1) == "192.0.2.1"
    c.bind(("s", None, "c"), "192.0.2.3", 2)
    assert c.resolve(("s", None, "a"), 3) is None  # still the oldest binding


def test_absorb_puts_the_earlier_stretch_first_and_keeps_the_size() -> None:
    earlier, later = Correlator(size=3), Correlator(size=3)
    for n in range(3):
        earlier.bind(("s", None, f"e{n}"), f"192.0.2.{n}", 0)
    later.bind(("s", None, "e2"), "198.51.100.2", 1)
    later.bind(("s", None, "l"), "198.51.100.9", 1)
    later.absorb(earlier)
    assert later.addresses() == ["192.0.2.1", "198.51.100.2", "198.51.100.9"]


# ---------------------------------------------------------------- the matcher

def test_failure_resolves_to_the_bound_address() -> None:
    m = Matcher(SIGS)
    assert m.match(rec(connected("aaaa0001", "::ffff:192.0.2.7")), NOW) is None
    assert m.match(rec(failed("aaaa0001")), NOW) == Attack(
        "192.0.2.7", "smtpd.auth-failed", "smtpd", 10, session="mx/aaaa0001")


def test_unseen_session_is_counted_never_guessed() -> None:
    m = Matcher(SIGS)
    m.match(rec(connected("aaaa0001", "192.0.2.7")), NOW)
    assert m.match(rec(failed("bbbb0002")), NOW) is None
    assert m.correlator.counters.unresolved == 1


def test_sessions_of_other_hosts_never_meet() -> None:
    m = Matcher(SIGS)
    m.match(rec(connected("aaaa0001", "192.0.2.7"), host="mx1"), NOW)
    assert m.match(rec(failed("aaaa0001"), host="mx2"), NOW) is None
    assert m.match(rec(failed("aaaa0001"), host="mx1"), NOW) is not None


def test_binding_signatures_bind_even_when_an_attack_matches_first() -> None:
    noisy = make_signature("smtpd.any-connect", "smtpd", "d", ("smtpd",),
                           r"\w+ smtp connected address=<ADDR>")
    m = Matcher([noisy, *SIGS])
    attack = m.match(rec(connected("aaaa0001", "192.0.2.7")), NOW)
    assert attack is not None and attack.signature == "smtpd.any-connect"
    assert m.correlator.addresses() == ["192.0.2.7"]


def test_bindings_age_with_the_clock() -> None:
    m = Matcher(SIGS, Correlator(ttl=60))
    m.match(rec(connected("aaaa0001", "192.0.2.7")), NOW)
    assert m.match(rec(failed("aaaa0001")), NOW + 61) is None
    assert m.correlator.counters.expired == 1


# -------------------------------------------------------------- rule format

RULES = {
    "service": "smtpd", "programs": ["smtpd"],
    "signature": [
        {"id": "smtpd.connected", "description": "binds", "binds": True,
         "pattern": "<ID> smtp connected address=<ADDR> host=",
         "examples": [{"line": "Nov 21 10:00:00 mx smtpd[1]: " + connected("ab12cd34", "192.0.2.1"),
                       "address": "192.0.2.1"}],
         "injections": [{"line": "Nov 21 10:00:00 mx smtpd[1]: ab12cd34 smtp connected "
                                 "address=192.0.2.1 host=[192.0.2.66]", "address": "192.0.2.1"}],
         "counterexamples": ["Nov 21 10:00:00 mx smtpd[1]: ab12cd34 smtp disconnected"]},
        {"id": "smtpd.auth-failed", "description": "resolves",
         "pattern": '<ID> smtp failed-command command="AUTH [A-Z]+" result="535 ',
         "examples": [{"line": "Nov 21 10:00:01 mx smtpd[1]: " + failed("ab12cd34"),
                       "address": "192.0.2.1",
                       "context": ["Nov 21 10:00:00 mx smtpd[1]: " + connected("ab12cd34", "192.0.2.1")]}],
         "injections": [{"line": "Nov 21 10:00:01 mx smtpd[1]: " + failed("ab12cd34")}],
         "counterexamples": ['Nov 21 10:00:01 mx smtpd[1]: ab12cd34 smtp failed-command '
                             'command="RCPT TO:<x>" result="550 Invalid recipient"']},
    ],
}


def test_examples_with_context_and_bindings_pass() -> None:
    assert check_examples(parse_rules(RULES, "smtpd.toml")) == []


def test_an_example_without_its_binding_context_fails() -> None:
    rules = {**RULES, "signature": [RULES["signature"][0],
                                    {**RULES["signature"][1], "examples": [
                                        {"line": "Nov 21 10:00:01 mx smtpd[1]: " + failed("ab12cd34"),
                                         "address": "192.0.2.1"}]}]}
    [failure] = check_examples(parse_rules(rules, "smtpd.toml"))
    assert "session id was never bound" in failure


@pytest.mark.parametrize(("pattern", "binds"), [
    ("<ID> and <ADDR> and <ID>", True),
    ("no id here <ADDR>", True),
    ("both <ID> <ADDR> without binds", False),
])
def test_placeholder_rules_for_bindings(pattern: str, binds: bool) -> None:
    with pytest.raises(RuleError):
        make_signature("x.y", "x", "d", ("x",), pattern, binds=binds)


# ------------------------------------------------- check: ranges see it all

def session_log(tmp_path: Path, sessions: int = 400) -> Path:
    """Sessions whose binding and failure lines lie far apart, across any cut."""
    rng = random.Random(7)
    lines = []
    for n in range(sessions):
        lines.append(f"Nov 21 10:00:00 mx smtpd[1]: {connected(f'se{n:06d}', f'192.0.2.{n % 250}')}")
        lines.extend(f"Nov 21 10:00:00 mx smtpd[1]: {n} smtp noise" for _ in range(rng.randrange(30)))
    lines += [f"Nov 21 10:00:01 mx smtpd[1]: {failed(f'se{n:06d}')}" for n in range(sessions)]
    rng.shuffle(lines[len(lines) // 2:])
    path = tmp_path / "sessions.log"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("processes", "block", "size"), [
    (2, 4 << 20, 65536), (5, 512, 65536), (4, 300, 50)])
def test_parallel_ranges_resolve_what_one_process_resolves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int, block: int,
        size: int) -> None:
    path = session_log(tmp_path)
    serial_out = io.StringIO()
    with open(path, "rb") as stream:
        serial = check(stream, SIGS, jsonl=serial_out, replay=None, max_size=8192,
                       sessions=size, now=NOW)
    monkeypatch.setattr(check_module, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(check_module, "WARM_UP_BLOCK", block)
    with open(tmp_path / "out", "w+") as out:
        parallel = check_path(str(path), SIGS, jsonl=out, replay=None, max_size=8192,
                              sessions=size, processes=processes, now=NOW)
        out.seek(0)
        assert out.read() == serial_out.getvalue()
    assert parallel.processes == processes
    assert parallel.correlation.resolved == serial.correlation.resolved
    assert parallel.correlation.unresolved == serial.correlation.unresolved
    if size == 65536:
        assert serial.correlation.resolved == 400 and serial.correlation.unresolved == 0
    else:
        assert serial.correlation.evicted > 0 and serial.correlation.unresolved > 0


# ------------------------------------------------------- sessions by process id

CONNECTION = make_signature("sshd.connection", "sshd", "binds", ("sshd",),
                            r"Connection from <ADDR> port \d+", binds=True, by_pid=True)
TOO_MANY = make_signature("sshd.too-many", "sshd", "resolves", ("sshd",),
                          r"Disconnecting: Too many authentication failures", by_pid=True)


def test_sessions_by_process_id() -> None:
    m = Matcher([CONNECTION, TOO_MANY])
    m.match(Record("Connection from 192.0.2.5 port 4444", "sshd", 26713, "mx"), NOW)
    m.match(Record("Connection from 198.51.100.6 port 5555", "sshd", 26714, "mx"), NOW)
    attack = m.match(Record("Disconnecting: Too many authentication failures [preauth]",
                            "sshd", 26713, "mx"), NOW)
    assert attack is not None and attack.address == "192.0.2.5"
    # no pid, no session: never one shared by every record without a pid
    m.match(Record("Connection from 203.0.113.7 port 1", "sshd", None, "mx"), NOW)
    assert m.match(Record("Disconnecting: Too many authentication failures", "sshd", None,
                          "mx"), NOW) is None
    assert m.correlator.counters.unresolved == 1 and len(m.correlator) == 2


def test_pid_sessions_never_meet_id_sessions() -> None:
    by_id = make_signature("sshd.by-id", "sshd", "resolves", ("sshd",),
                           r"session <ID> failed")
    m = Matcher([CONNECTION, by_id])
    m.match(Record("Connection from 192.0.2.5 port 4444", "sshd", 1234, "mx"), NOW)
    assert m.match(Record("session 1234 failed", "sshd", 9, "mx"), NOW) is None


@pytest.mark.parametrize(("pattern", "binds"), [("x <ADDR> <ID>", True), ("xxxx", True),
                                                ("xxxx <ID>", False),
                                                ("xxxx <ADDR> <ADDR>", False)])
def test_pid_session_placeholders(pattern: str, binds: bool) -> None:
    with pytest.raises(RuleError, match="session"):
        make_signature("x.y", "x", "d", ("x",), pattern, binds=binds, by_pid=True)


# ------------------------------------- failures named after the fact (held)

def test_a_held_failure_is_handed_to_the_later_binding() -> None:
    c = Correlator(size=10, ttl=60)
    key = ("sshd", "mx", "pid:8148")
    assert c.resolve(key, 0) is None
    c.hold(key, "sshd.too-many", 0)
    c.hold(key, "sshd.too-many", 1)
    held = c.bind(key, "192.0.2.9", 2)
    assert held is not None and (held.signature, held.count) == ("sshd.too-many", 2)
    assert c.bind(key, "192.0.2.9", 3) is None  # handed over once
    assert (c.counters.resolved, c.counters.late, c.counters.unresolved) == (2, 2, -1)


def test_a_held_failure_waits_only_so_long() -> None:
    c = Correlator(size=10, ttl=1e9)
    key = ("sshd", "mx", "pid:1")
    c.hold(key, "sshd.too-many", 0)
    assert c.bind(key, "192.0.2.9", LATE + 1) is None  # a recycled pid's connection
    assert c.counters.late == 0


def test_held_failures_are_bounded() -> None:
    c = Correlator(size=2, ttl=1e9)
    for n in range(5):
        c.hold(("s", None, f"id{n}"), "s.fail", n)
    assert c.bind(("s", None, "id0"), "192.0.2.1", 9) is None  # forgotten first
    assert c.bind(("s", None, "id4"), "192.0.2.4", 9) is not None


def test_absorb_keeps_held_failures_only_where_no_binding_resolved_them() -> None:
    earlier, later = Correlator(), Correlator()
    earlier.hold(("s", None, "a"), "s.fail", 0)   # bound in the later stretch: resolved there
    earlier.hold(("s", None, "b"), "s.fail", 0)   # still waiting
    earlier.bind(("s", None, "c"), "192.0.2.3", 0)
    later.bind(("s", None, "a"), "192.0.2.1", 1)
    later.hold(("s", None, "c"), "s.fail", 1)     # bound earlier: resolved forwards, never held
    later.absorb(earlier)
    assert later.bind(("s", None, "a"), "192.0.2.1", 2) is None
    assert later.bind(("s", None, "c"), "192.0.2.3", 2) is None
    assert later.bind(("s", None, "b"), "192.0.2.2", 2) is not None


def test_the_binding_record_reports_the_held_failure() -> None:
    m = Matcher([CONNECTION, TOO_MANY, CLOSED])
    assert m.match(Record("Disconnecting: Too many authentication failures [preauth]",
                          "sshd", 8148, "mx"), NOW) is None
    # another process's close does not name it
    assert m.match(Record("Connection closed by 198.51.100.9 [preauth]", "sshd", 7148, "mx"),
                   NOW) is None
    attack = m.match(Record("Connection closed by 192.0.2.8 [preauth]", "sshd", 8148, "mx"), NOW)
    assert attack == Attack("192.0.2.8", "sshd.too-many", "sshd", 10, session="mx/pid:8148")
    assert m.correlator.counters.late == 1 and m.correlator.counters.unresolved == 0


def test_held_lines_of_one_signature_are_as_many_attempts() -> None:
    m = Matcher([QUEUED, USER_UNKNOWN])
    for _ in range(3):
        assert m.match(Record("ab12cd34ef: <x@example.org>... User unknown", "sm-mta", 7, "mx"),
                       NOW) is None
    attack = m.match(Record("ab12cd34ef: from=<s@example.net>, relay=[192.0.2.4]", "sm-mta", 7,
                            "mx"), NOW)
    assert attack is not None and (attack.address, attack.role, attack.count) == \
        ("192.0.2.4", COUNT, 3)


CLOSED = make_signature("sshd.closed", "sshd", "binds", ("sshd",),
                        r"Connection closed by <ADDR> \[preauth\]", binds=True, by_pid=True)
QUEUED = make_signature("sm.session", "sm", "binds", ("sm-mta",),
                        r"<ID>: from=<.*, relay=\[<ADDR>\]", binds=True)
USER_UNKNOWN = make_signature("sm.user-unknown", "sm", "unknown", ("sm-mta",),
                              r"<ID>: <.*>\.\.\. User unknown")


def late_log(tmp_path: Path, sessions: int = 300) -> Path:
    """Failures whose session is named only afterwards, across any cut."""
    lines = []
    for n in range(sessions):
        lines.append(f"Nov 21 10:00:00 mx smtpd[1]: {failed(f'la{n:06d}')}")
        lines.extend(f"Nov 21 10:00:00 mx smtpd[1]: {n} smtp noise" for _ in range(n % 7))
        lines.append(f"Nov 21 10:00:00 mx smtpd[1]: {connected(f'la{n:06d}', f'192.0.2.{n % 250}')}")
    path = tmp_path / "late.log"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("processes", "block"), [(2, 4 << 20), (5, 300)])
def test_parallel_ranges_report_held_failures_as_one_process_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int, block: int) -> None:
    path = late_log(tmp_path)
    serial_out = io.StringIO()
    with open(path, "rb") as stream:
        serial = check(stream, SIGS, jsonl=serial_out, replay=None, max_size=8192, now=NOW)
    assert serial.correlation.late == 300 and serial.correlation.unresolved == 0
    monkeypatch.setattr(check_module, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(check_module, "WARM_UP_BLOCK", block)
    with open(tmp_path / "out", "w+") as out:
        parallel = check_path(str(path), SIGS, jsonl=out, replay=None, max_size=8192,
                              processes=processes, now=NOW)
        out.seek(0)
        assert out.read() == serial_out.getvalue()
    assert (parallel.correlation.late, parallel.correlation.unresolved) == (300, 0)
