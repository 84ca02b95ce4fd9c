"""risks(): the constructs `syslogban rules check` warns about (ReDoS).

Why: a pattern runs on text an attacker writes; the shapes that make Python's
backtracking engine slow should be pointed out to the rule author when the
rule is checked, before a client finds them. Each rule has risky patterns it
must catch and safe look-alikes it must leave alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DEMO_RULES
from syslogban.cli import main
from syslogban.signatures import HUGE_REPEAT, load_rules, make_signature, risks


def warnings_for(pattern: str) -> list[str]:
    return risks(make_signature("demo.x", "demo", "test", ("demo",), pattern))


@pytest.mark.parametrize("pattern, shown", [
    (r"login: (a+)+ from <ADDR>", "'(a+)+'"),
    (r"login: (?:\w+\s?)* from <ADDR>", r"'(?:\w+\s?)*'"),
    (r"login: (?:x|\d+)+ from <ADDR>", r"'(?:x|\d+)+'"),
    (r"login: (?:[a-z]+,){2,5} from <ADDR>", "'(?:[a-z]+,){2,5}'"),
    (r"login: (?:(?:a.*)?b){0,3}? from <ADDR>", "'(?:(?:a.*)?b){0,3}?'"),
    (r"from <ADDR> login: (?:\S+ )+$", r"'(?:\S+ )+'"),
])
def test_nested_quantifiers(pattern: str, shown: str) -> None:
    [warning] = warnings_for(pattern)
    assert warning.startswith(f"nested quantifiers: {shown} ")


@pytest.mark.parametrize("pattern", [
    r"login: .*<ADDR>",
    r"login: .+,<ADDR>",
    r"login: \S*<ADDR>",
    r"login: [^,]* <ADDR>",
    r"login: .*?x<ADDR>",
    r"login: (?P<rest>.*) <ADDR>",           # in a group of the top-level sequence
    r"login: (?:.*)?<ADDR>",                 # optional: still in the sequence
    r"login: .*[ ,]\w{1,5}rip=<ADDR>",       # a repeat before the fixed text
    r"login: .*(?:rip|ip)=<ADDR>",           # an alternative is no fixed text
    r"login: (?:(?!given ).)*,<ADDR>",       # a tempered dot is still a dot
])
def test_unanchored_broad_repeat_before_addr(pattern: str) -> None:
    [warning] = warnings_for(pattern)
    assert warning.startswith("unanchored .* before <ADDR>: ")


@pytest.mark.parametrize("pattern", [r"login: x{0,20000} <ADDR>", r"login: x{20001,} <ADDR>",
                                     r"login: x{10001} <ADDR>", r"login: (?:ab){1,65535}+ <ADDR>"])
def test_huge_repeat_bounds(pattern: str) -> None:
    [warning] = warnings_for(pattern)
    assert warning.startswith("huge repeat bound: ") and str(HUGE_REPEAT) in warning


@pytest.mark.parametrize("pattern", [
    r"warning: [\w.-]+\[<ADDR>\](?::<PORT>)?: SASL \S+ authentication failed",
    r"login: .*, rip=<ADDR>",                # bounded by a fixed text
    r"login: (?:.*[ ,])?rip=<ADDR>",         # one character, then the fixed text
    r"login: .*\b, relay=<ADDR>",            # zero-width assertions do not count
    r"login: (?:(?!given ).)*, rip=<ADDR>",  # tempered, and bounded
    r"login: (?:(?!given ).|x)*, <ADDR>",    # not one broad class: an alternative
    r"login: \w+ from <ADDR>",               # \w stops at the first delimiter
    r"login: [^,]{0,100},<ADDR>",            # bounded
    r"login from <ADDR> .*$",                # after <ADDR>: the address is fixed by then
    r"login: (?:x|y.*)<ADDR>",               # inside an alternative: not the top level
    r"login: (?:\.[0-9]{1,3}){3} <ADDR>",     # nested, but bounded inside
    r"login: (?>(?:a+)+) <ADDR>",            # atomic: never backtracks into itself
    r"login: (?:a+)++ <ADDR>",               # possessive
    r"login: .*+<ADDR>",                     # possessive
    r"login: (?:a+)? <ADDR>",                # a group that can only occur once
    r"login: x{0,10000} <ADDR>",             # at the limit
    r"<ID> smtp failed-command command=\"[^\"]{0,1000}\" result=\"535 ",  # no <ADDR>
])
def test_safe_patterns_have_no_warning(pattern: str) -> None:
    assert warnings_for(pattern) == []


def test_several_risks_in_one_pattern_by_kind() -> None:
    found = warnings_for(r"login: (a+)* .*<ADDR> x{0,99999}")
    assert [w.split(":")[0] for w in found] == [
        "nested quantifiers", "unanchored .* before <ADDR>", "huge repeat bound"]


def test_placeholders_are_shown_by_name() -> None:
    [warning] = warnings_for(r"login: (?:<USER>\w+)+ from <ADDR>")
    assert r"'(?:<USER>\w+)+'" in warning


def test_long_constructs_are_cut() -> None:
    [warning] = warnings_for(r"login: (?:" + "abcdefghij" * 10 + r"\w+)+ from <ADDR>")
    assert "...'" in warning


def test_bundled_rules_have_no_nested_or_huge_repeats() -> None:
    """The two kinds that are always worth fixing; `.*` before <ADDR> is timed by
    tests/test_redos.py instead (it is linear when a comma follows, as in dovecot)."""
    found = [f"{s.id}: {w}" for s in load_rules() for w in risks(s)]
    assert not [w for w in found if "nested quantifiers" in w or "huge repeat" in w]


RISKY_RULES = DEMO_RULES + '''
[[signature]]
id = "demo.risky"
description = "nested quantifiers"
pattern = 'probe: (?:\\w+\\s?)+ from <ADDR>$'
examples = [{ line = "Nov 21 10:00:00 h demo[1]: probe: a b from 192.0.2.5", address = "192.0.2.5" }]
injections = [{ line = "Nov 21 10:00:00 h demo[1]: probe 192.0.2.9 from 192.0.2.5" }]
counterexamples = ["Nov 21 10:00:00 h demo[1]: probed from 192.0.2.5"]
'''


def test_rules_check_prints_warnings_without_failing(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo.toml").write_text(RISKY_RULES)
    assert main(["rules", "check", "--rules", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{tmp_path / 'demo.toml'}: demo.risky: warning: nested quantifiers: "
                             r"'(?:\w+\s?)+' ")
    assert out[-1] == "2 signatures, 6 examples, 0 session examples, 0 failed, 1 warnings"


def test_rules_check_warnings_do_not_hide_failures(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo.toml").write_text(RISKY_RULES.replace("probed from", "probe: x from"))
    assert main(["rules", "check", "--rules", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "must not match" in out and out.endswith("1 failed, 1 warnings\n")


def test_rules_check_on_the_bundled_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = [f"{s.source}: {s.id}: warning: {w}" for s in load_rules() for w in risks(s)]
    assert out[:-1] == expected
    assert out[-1].endswith(f" 0 failed, {len(expected)} warnings")
