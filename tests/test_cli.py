"""The command line end to end, as a mail admin runs it (a real subprocess)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_RULES

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "contrib" / "sample" / "mail.log"

RULES = DEMO_RULES + '''
[[signature]]
id = "demo.probe"
description = "probe (off by default)"
enabled = false
pattern = 'probe from <ADDR>$'
examples = [{ line = "Nov 21 10:00:00 h demo[1]: probe from 192.0.2.5", address = "192.0.2.5" }]
injections = [{ line = "Nov 21 10:00:00 h demo[1]: probe 192.0.2.9 from 192.0.2.5" }]
counterexamples = ["Nov 21 10:00:00 h demo[1]: probed from 192.0.2.5"]
'''

LOG = b"""Nov 21 10:00:00 h demo[1]: login failed for a from 192.0.2.1
Nov 21 10:00:01 h demo[1]: login ok for b from 192.0.2.2
Nov 21 10:00:02 h other[1]: login failed for a from 192.0.2.3
\xff\xfe broken bytes
Nov 21 10:00:03 h demo[1]: login failed for c from 2001:db8::7
Nov 21 10:00:04 h demo[1]: probe from 192.0.2.5

Nov 21 10:01:00 h demo[1]: login failed for a from 192.0.2.1
Nov 21 10:02:00 h demo[1]: login failed for a from 192.0.2.1"""


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syslogban", *args], input=stdin,
                          capture_output=True, check=False, cwd=ROOT,
                          **({} if stdin is not None else {"text": True}))


@pytest.fixture()
def rules(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "demo.toml").write_text(RULES)
    return directory


@pytest.fixture()
def log(tmp_path: Path) -> Path:
    path = tmp_path / "mail.log"
    path.write_bytes(LOG)
    return path


def test_check_jsonl_reports_each_attack_with_its_line_number(rules: Path, log: Path) -> None:
    result = run("check", "--rules", str(rules), "--jsonl", str(log))
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert objects == [
        {"lineno": n, "service": "demo", "signature": "demo.fail", "address": a, "danger": 10,
         "attempt": n, "attempts": 1}
        for n, a in [(1, "192.0.2.1"), (5, "2001:db8::7"), (8, "192.0.2.1"), (9, "192.0.2.1")]]
    assert "9 read, 7 parsed, 2 rejected" in result.stderr
    assert "invalid-utf8" in result.stderr and "empty" in result.stderr


def test_check_summary_on_stdout_and_stdin_input(rules: Path) -> None:
    result = run("check", "--rules", str(rules), "-", stdin=LOG)
    out = result.stdout.decode()
    assert result.returncode == 0
    assert "syslogban check: <stdin>" in out
    assert "attacks   4 from 2 addresses" in out
    assert "top addresses" in out
    assert re.search(r"192\.0\.2\.1 +3 +3\n", out)  # lines, attempts


def test_check_reports_records_without_a_program_tag(rules: Path) -> None:
    # a header form syslogban does not know loses the tag: no signature can apply
    lost = b"Nov 21 10:00:05 h {demo} login failed for a from 192.0.2.1"
    result = run("check", "--rules", str(rules), "-", stdin=LOG + b"\n" + lost + b"\n" + lost)
    out = result.stdout.decode()
    assert "untagged  2 records without a program tag (no signature can apply)" in out
    assert f"  e.g. {lost.decode()}" in out
    assert "untagged" not in run("check", "--rules", str(rules), "-", stdin=LOG).stdout.decode()


def test_enable_and_disable(rules: Path, log: Path) -> None:
    on = run("check", "--rules", str(rules), "--jsonl", "--enable", "demo.probe", str(log))
    assert '"signature": "demo.probe"' in on.stdout
    off = run("check", "--rules", str(rules), "--jsonl", "--disable", "demo", str(log))
    assert off.returncode == 0 and off.stdout == ""
    typo = run("check", "--rules", str(rules), "--enable", "demo.prob", str(log))
    assert typo.returncode == 2 and "unknown signature or service 'demo.prob'" in typo.stderr


def test_ad_hoc_pattern_with_program(log: Path) -> None:
    result = run("check", "--jsonl", "--pattern", r"login failed for \S+ from <ADDR>",
                 "--program", "other", str(log))
    assert [json.loads(x)["address"] for x in result.stdout.splitlines()] == ["192.0.2.3"]
    bad = run("check", "--pattern", "no address here", str(log))
    assert bad.returncode == 2 and "<ADDR> exactly once" in bad.stderr


def test_replay_lists_who_would_be_blocked(rules: Path, log: Path) -> None:
    result = run("check", "--rules", str(rules), "--replay", str(log))
    assert result.returncode == 0
    assert "replay    1 blocks of 1 addresses" in result.stdout
    line = [x for x in result.stdout.splitlines() if "block #1" in x][0]
    assert "192.0.2.1" in line and "for 2m" in line and "score 30" in line


def test_missing_file_and_broken_rules_fail_clearly(rules: Path, tmp_path: Path) -> None:
    missing = run("check", "--rules", str(rules), str(tmp_path / "nope.log"))
    assert missing.returncode == 2
    assert "nope.log" in missing.stderr and "No such file" in missing.stderr
    (rules / "demo.toml").write_text(RULES.replace("pattern = 'probe", "patern = 'probe"))
    broken = run("check", "--rules", str(rules), str(tmp_path / "nope.log"))
    assert broken.returncode == 2
    assert "demo.toml: demo.probe: unknown key 'patern'" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_rules_list_show_check(rules: Path) -> None:
    listing = run("rules", "list", "--rules", str(rules))
    assert "on   demo.fail" in listing.stdout and "off  demo.probe" in listing.stdout
    show = run("rules", "show", "demo.probe", "--rules", str(rules))
    assert "pattern      probe from <ADDR>$" in show.stdout
    assert "enabled      no" in show.stdout
    assert run("rules", "show", "nope", "--rules", str(rules)).returncode == 2
    check = run("rules", "check", "--rules", str(rules))
    assert check.returncode == 0 and "2 signatures, 6 examples, 0 session examples, 0 failed" in check.stdout
    (rules / "demo.toml").write_text(RULES.replace("probed from", "probe from"))
    failing = run("rules", "check", "--rules", str(rules))
    assert failing.returncode == 1 and "must not match" in failing.stdout


def test_bundled_rules_check_passes() -> None:
    result = run("rules", "check")
    assert result.returncode == 0, result.stdout
    assert " 0 failed" in result.stdout


@pytest.mark.skipif(not SAMPLE.exists(), reason="contrib/sample/mail.log not generated yet")
def test_demo_sample_shows_attacks_and_blocks() -> None:
    result = run("check", "--replay", str(SAMPLE))
    assert result.returncode == 0
    assert " 0 rejected" in result.stdout
    assert "block #1" in result.stdout


def test_python_dash_m_and_version() -> None:
    assert run("--version").stdout.startswith("syslogban ")


def test_replay_takes_the_policy_of_a_configuration(rules: Path, log: Path,
                                                   tmp_path: Path) -> None:
    config = tmp_path / "syslogban.toml"
    config.write_text('[services.demo]\nattempts = 2\nblock_time = "permanent"\n')
    result = run("check", "--rules", str(rules), "--replay", "--config", str(config), str(log))
    assert result.returncode == 0, result.stderr
    assert "[services.demo] 2 attempts within 30m: block permanent" in result.stdout
    [line] = [x for x in result.stdout.splitlines() if "block #1" in x]
    assert "192.0.2.1" in line and "for permanent" in line
    assert line.lstrip().startswith("2026-11-21 10:01:00")  # the 2nd failed login
    config.write_text("allow = [\"192.0.2.0/24\"]\n")
    allowed = run("check", "--rules", str(rules), "--replay", "--config", str(config), str(log))
    assert "replay    0 blocks" in allowed.stdout
    alone = run("check", "--rules", str(rules), "--config", str(config), str(log))
    assert alone.returncode == 2 and "--config goes with --replay" in alone.stderr


def test_replay_windows_follow_the_records_own_zones(rules: Path, tmp_path: Path) -> None:
    """The same wall-clock time in three zones is three hours apart each."""
    log = tmp_path / "zones.log"
    log.write_text("".join(f"2026-11-21T10:00:00{zone} h demo[1]: login failed for a "
                           "from 192.0.2.1\n" for zone in ("+06:00", "+03:00", "Z")))
    result = run("check", "--rules", str(rules), "--replay", str(log))
    assert "replay    0 blocks" in result.stdout
    log.write_text("".join(f"2026-11-21T{hour}:00:00{zone} h demo[1]: login failed for a "
                           "from 192.0.2.1\n" for hour, zone in (("16", "+06:00"),
                                                                 ("13", "+03:00"),
                                                                 ("10", "Z"))))
    assert "replay    1 blocks" in run("check", "--rules", str(rules), "--replay",
                                      str(log)).stdout
