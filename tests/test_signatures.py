"""Rule files: loading, validation messages, literal extraction, selection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import DEMO_RULES as GOOD

from syslogban.address import normalize_address
from syslogban.examples import check_examples
from syslogban.matcher import Matcher
from syslogban.record import Record
from syslogban.signatures import (
    RuleError, compile_pattern, load_rules, load_session_examples, make_signature, select)



def write(tmp_path: Path, text: str, name: str = "demo.toml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def broken(tmp_path: Path, old: str, new: str) -> str:
    assert old in GOOD
    with pytest.raises(RuleError) as info:
        load_rules([write(tmp_path, GOOD.replace(old, new, 1))])
    return str(info.value)


def test_good_file_loads_with_all_fields(tmp_path: Path) -> None:
    [sig] = load_rules([write(tmp_path, GOOD)])
    assert (sig.id, sig.service, sig.programs, sig.danger, sig.enabled) == (
        "demo.fail", "demo", ("demo",), 10, True)
    assert sig.literal == "login failed for "
    assert [e.kind for e in sig.examples] == ["example", "injection", "counterexample"]
    assert sig.source.endswith("demo.toml")
    assert check_examples([sig]) == []


@pytest.mark.parametrize(("old", "new", "reason"), [
    ('description = "login failed"', 'descripton = "x"', "unknown key 'descripton'"),
    ("from <ADDR>$", "from <ADDR>[$", "bad regular expression"),
    ("from <ADDR>$", "from$", "<ADDR> exactly once"),
    ("from <ADDR>$", "from <ADDR> <ADDR>", "<ADDR> exactly once"),
    ("from <ADDR>$", "from <ADDR> <PORT> <PORT>", "<PORT> only once"),
    ('id = "demo.fail"', 'id = "other.fail"', 'start with the file\'s service "demo."'),
    ('id = "demo.fail"', 'id = "Demo Fail"', "'id' must look like"),
    ("pattern = 'login failed for \\S+ from <ADDR>$'", "pattern = '(?:a|b)<ADDR>'", "fixed text of at least"),
    ('counterexamples = [', 'counterexamples = [] #', "'counterexamples'"),
    ('injections = [', 'injections = [] #', "'injections' is missing"),
    ('address = "192.0.2.1" }]\ninj', 'address = "host.example" }]\ninj', "not an IP address"),
    ('[[signature]]', 'bogus = 1\n[[signature]]', "unknown key 'bogus'"),
])
def test_broken_files_name_file_signature_and_reason(
        tmp_path: Path, old: str, new: str, reason: str) -> None:
    message = broken(tmp_path, old, new)
    assert message.startswith(str(tmp_path / "demo.toml") + ": ")
    assert reason in message
    if "unknown key 'bogus'" not in reason and "look like" not in reason:
        assert ": demo.fail: " in message or ": other.fail: " in message


def test_danger_must_be_a_positive_whole_number(tmp_path: Path) -> None:
    for value in ("0", "true", "2.5", "1001"):
        assert "'danger'" in broken(tmp_path, 'description', f"danger = {value}\ndescription")


def test_duplicate_id_within_a_file(tmp_path: Path) -> None:
    second = GOOD[GOOD.index("[[signature]]"):]
    with pytest.raises(RuleError, match=r"demo\.toml: demo\.fail: duplicate id"):
        load_rules([write(tmp_path, GOOD + second)])


def test_duplicate_id_across_files_names_both(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path])
    assert "b.toml: demo.fail: duplicate id" in str(info.value)
    assert "a.toml" in str(info.value)


def test_invalid_toml_and_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="not valid TOML"):
        load_rules([write(tmp_path, "service = ")])
    with pytest.raises(RuleError, match="not a directory"):
        load_rules([tmp_path / "nope"])


def test_signature_without_programs_anywhere_is_refused(tmp_path: Path) -> None:
    assert "no 'programs'" in broken(tmp_path, 'programs = ["demo"]', "")


@pytest.mark.parametrize(("pattern", "literal", "caseless"), [
    (r"warning: [\w.-]+\[<ADDR>\]: SASL \S+ authentication failed", " authentication failed", False),
    (r"^(?:imap|pop3)-login: .*\(auth failed, .*rip=<ADDR>, lip=", "(auth failed, ", False),
    (r"(?i)invalid USER \S+ from <ADDR>", "invalid user ", True),
    (r"(abc)defg <ADDR>", "abcdefg ", False),  # a plain group is part of the run
    (r"x?abcd <ADDR>", "abcd ", False),         # an optional character breaks it
])
def test_literal_is_the_longest_mandatory_text(pattern: str, literal: str, caseless: bool) -> None:
    regex, found, is_caseless, _ = compile_pattern(pattern)
    assert (found, is_caseless) == (literal, caseless)
    assert isinstance(regex, re.Pattern)


def readable(prefilter: str) -> str:
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), prefilter)


@pytest.mark.parametrize(("pattern", "prefilter"), [
    # Literals and alternatives stay in order, the rest widens to "anything
    # within the line", and weak ends (short runs, "anything") are dropped.
    (r"disconnect from \S+\[<ADDR>\](?: \w+=\d+/\d+)* auth=0/[1-9]",
     r"disconnect from [^\n]*[[^\n]*][^\n]* auth=0/"),
    (r"(?:Aborted login|Disconnected)\s+\((?:auth failed, \d+ attempts?|x)\): rip=<ADDR>",
     r"(?:Aborted login|Disconnected)[^\n]*((?:auth failed, [^\n]* attempt[^\n]*|x)): rip="),
    (r"\w+\(.*,<ADDR>\): unknown user", "): unknown user"),
    (r"abcd(?=x)<ADDR>", "abcd"),
    (r"abcd (?:x|y?)<ADDR>", "abcd "),
])
def test_prefilter_keeps_literals_and_alternatives(pattern: str, prefilter: str) -> None:
    assert readable(compile_pattern(pattern)[3]) == prefilter


def test_bundled_prefilters_accept_every_matching_example() -> None:
    """The scanner relies on it: a line the prefilter rejects is never parsed. A
    failure held until a later record names its address (correlation.py) is
    reported on that record, which a binding signature's prefilter accepts."""
    signatures = load_rules()

    def accepts(sig, line: str) -> bool:
        flags = re.IGNORECASE if sig.caseless else 0
        return re.search(sig.prefilter.encode(), line.encode(), flags) is not None

    for sig in signatures:
        binders = [b for b in signatures if b.binds and b.service == sig.service]
        for example in sig.examples:
            if example.address is not None:
                assert accepts(sig, example.line) or (sig.resolves and any(
                    accepts(b, example.line) for b in binders)), (sig.id, example.line)


def test_select_defaults_enable_disable() -> None:
    on = make_signature("a.one", "a", "d", ("a",), "abcd <ADDR>")
    off = make_signature("a.two", "a", "d", ("a",), "efgh <ADDR>", enabled=False)
    other = make_signature("b.one", "b", "d", ("b",), "ijkl <ADDR>")
    sigs = [on, off, other]
    assert [s.id for s in select(sigs)] == ["a.one", "b.one"]
    assert [s.id for s in select(sigs, enable=["a.two"])] == ["a.one", "a.two", "b.one"]
    assert [s.id for s in select(sigs, enable=["all"], disable=["b"])] == ["a.one", "a.two"]
    assert select(sigs, disable=["all"]) == []
    with pytest.raises(RuleError, match="unknown signature or service 'c'"):
        select(sigs, enable=["c"])


def test_bindings_are_selected_only_with_a_resolving_signature() -> None:
    binds = make_signature("s.bind", "s", "d", ("s",), "conn <ID> from <ADDR>", binds=True)
    resolves = make_signature("s.fail", "s", "d", ("s",), "fail <ID> now", enabled=False)
    other = make_signature("t.fail", "t", "d", ("t",), "fail <ID> now")
    assert [s.id for s in select([binds, resolves, other])] == ["t.fail"]
    assert [s.id for s in select([binds, resolves, other], enable=["s.fail"])] == [
        "s.bind", "s.fail", "t.fail"]


def test_failing_examples_are_reported(tmp_path: Path) -> None:
    text = GOOD.replace('address = "192.0.2.1" }]\ninj', 'address = "192.0.2.2" }]\ninj', 1)
    text = text.replace('"Nov 21 10:00:00 h demo[1]: login ok from 192.0.2.1"',
                        '"Nov 21 10:00:00 h demo[1]: login failed for x from 192.0.2.3"')
    [sig] = load_rules([write(tmp_path, text)])
    failures = check_examples([sig])
    assert len(failures) == 2
    assert "address 192.0.2.1, expected 192.0.2.2" in failures[0]
    assert "must not match, but matched with address 192.0.2.3" in failures[1]


def test_example_with_wrong_program_tag_fails(tmp_path: Path) -> None:
    text = GOOD.replace("h demo[1]: login failed for bob", "h other[1]: login failed for bob", 1)
    [sig] = load_rules([write(tmp_path, text)])
    assert "program tag 'other' is not one of ['demo']" in check_examples([sig])[0]


# The bundled rules: every signature loads, every example passes, and the
# issue's minimum (an injection example for each signature) holds.

def test_bundled_rules_pass_their_examples() -> None:
    signatures = load_rules()
    assert len(signatures) >= 20
    assert check_examples(signatures) == []


def test_bundled_signatures_each_have_injection_and_counterexample() -> None:
    for sig in load_rules():
        kinds = {e.kind for e in sig.examples}
        assert {"example", "injection", "counterexample"} <= kinds, sig.id
        assert sig.programs, f"{sig.id}: bundled signatures must name program tags"


def test_bundled_injection_examples_carry_a_second_address() -> None:
    """An injection example is only one if user text holds another address."""
    addr = re.compile(r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]*:[0-9a-fA-F:.]*:[0-9a-fA-F.]+)")
    for sig in load_rules():
        if sig.resolves:
            continue  # its line holds no address; its binding signature's injections do
        for example in sig.examples:
            if example.kind != "injection":
                continue
            found = {normalize_address(a) for a in addr.findall(example.line)} - {None}
            others = found - {example.address}
            assert others, f"{sig.id}: injection line has no foreign address: {example.line}"


def test_directory_without_rule_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no rule files"):
        load_rules([tmp_path])


# ------------------------------------------------------------ roles (attempts)

def test_role_defaults_to_attempt_and_is_checked(tmp_path: Path) -> None:
    [sig] = load_rules([write(tmp_path, GOOD)])
    assert (sig.role, sig.serves, sig.by_pid) == ("attempt", (), False)
    assert "'role' must be one of attempt, corroborates, count" in broken(
        tmp_path, 'description', 'role = "counts"\ndescription')
    assert "'serves' must be a list" in broken(tmp_path, 'description',
                                                'serves = "postfix"\ndescription')


def test_count_role_and_count_placeholder_go_together(tmp_path: Path) -> None:
    assert "<COUNT>" in broken(tmp_path, 'description', 'role = "count"\ndescription')
    assert "<COUNT>" in broken(tmp_path, "from <ADDR>$", "from <ADDR> <COUNT>$")
    counting = GOOD.replace('description', 'role = "count"\ndescription', 1).replace(
        "from <ADDR>$'", "from <ADDR>(?: <COUNT> times)?$'", 1)
    [sig] = load_rules([write(tmp_path, counting)])
    assert sig.role == "count"
    [attack] = [Matcher([sig]).match(Record(text, "demo", 1), 0) for text in
                ["login failed for bob from 192.0.2.1 3 times"]]
    assert attack is not None and attack.count == 3
    assert Matcher([sig]).match(Record("login failed for bob from 192.0.2.1", "demo"), 0).count == 1


def test_file_session_default_and_binding_without_role(tmp_path: Path) -> None:
    [sig] = load_rules([write(tmp_path, GOOD.replace('programs = ["demo"]',
                                                     'programs = ["demo"]\nsession = "pid"'))])
    assert sig.by_pid and not sig.resolves
    attack = Matcher([sig]).match(Record("login failed for bob from 192.0.2.1", "demo", 42,
                                         "mx"), 0)
    assert attack is not None and attack.session == "mx/pid:42"
    assert "no 'role'" in broken(tmp_path, 'description',
                                 'binds = true\nrole = "attempt"\ndescription')


@pytest.mark.parametrize(("table", "reason"), [
    ('description = "x"\nlines = []\nattempts = { "192.0.2.1" = 1 }', "'lines'"),
    ('lines = ["x"]\nattempts = { "192.0.2.1" = 1 }', "'description'"),
    ('description = "x"\nlines = ["x"]\nattempts = { "host" = 1 }', "not an IP address"),
    ('description = "x"\nlines = ["x"]\nattempts = { "192.0.2.1" = -1 }', "whole number"),
    ('description = "x"\nlines = ["x"]\nattempts = {}', "'attempts'"),
    ('description = "x"\nlines = ["x"]\nattempt = { "192.0.2.1" = 1 }', "has the keys"),
])
def test_broken_session_examples(tmp_path: Path, table: str, reason: str) -> None:
    write(tmp_path, GOOD + "\n[[session_example]]\n" + table + "\n")
    with pytest.raises(RuleError, match="session_example #1: .*" + re.escape(reason)):
        load_session_examples([tmp_path])
