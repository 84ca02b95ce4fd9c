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
    assert bad.returncode == 2 and "write <ADDR> (or <HOST>) once" in bad.stderr


def test_replay_lists_who_would_be_blocked(rules: Path, log: Path) -> None:
    result = run("check", "--rules", str(rules), "--replay", str(log))
    assert result.returncode == 0
    assert "replay    1 blocks of 1 addresses" in result.stdout
    assert "policy score 30 (danger per attempt) within 30m: block 2m" in result.stdout
    line = result.stdout.splitlines()[-1]
    assert re.fullmatch(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  192\.0\.2\.1 +1  2m +30  demo\.\S+",
                        line), line


def test_missing_file_and_broken_rules_fail_clearly(rules: Path, tmp_path: Path) -> None:
    missing = run("check", "--rules", str(rules), str(tmp_path / "nope.log"))
    assert missing.returncode == 2
    assert "nope.log" in missing.stderr and "No such file" in missing.stderr
    (rules / "demo.toml").write_text(RULES.replace("pattern = 'probe", "patern = 'probe"))
    broken = run("check", "--rules", str(rules), str(tmp_path / "nope.log"))
    assert broken.returncode == 2
    assert "demo.toml: demo.probe: unknown key 'patern'" in broken.stderr
    assert "Traceback" not in broken.stderr


@pytest.mark.parametrize("args", [("check", str(SAMPLE)), ("check", "--jsonl", str(SAMPLE)),
                                  ("check", "--print-missed", str(SAMPLE)),
                                  ("rules", "list"), ("config", "show")])
def test_a_reader_that_leaves_early_is_no_error(args: tuple[str, ...]) -> None:
    """`syslogban ... | head`: quiet, the status of a program SIGPIPE stopped."""
    process = subprocess.Popen([sys.executable, "-m", "syslogban", *args], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first line
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, errors
    assert errors == ""


def test_a_reader_gone_before_the_output_is_flushed_is_no_error() -> None:
    """All of the output in stdout's buffer (a pipe's buffer size depends on the
    machine): the write happens when main flushes, not at exit ('Exception
    ignored ... BrokenPipeError', status 120)."""
    code = ("import io, sys; from syslogban.cli import main; sys.stdout = io.TextIOWrapper("
            "io.BufferedWriter(io.FileIO(1, 'w', closefd=False), 1 << 20)); "
            "sys.exit(main(['config', 'show']))")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, errors
    assert errors == ""


def test_rules_list_show_check(rules: Path) -> None:
    listing = run("rules", "list", "--rules", str(rules))
    assert re.search(r"^on +demo\.fail +10  login failed$", listing.stdout, re.M)
    assert re.search(r"^off +demo\.probe +10  probe", listing.stdout, re.M)
    assert listing.stdout.endswith("\n1 of 2 signatures in use\n")
    show = run("rules", "show", "demo.probe", "--rules", str(rules))
    assert re.search(r"^pattern +probe from <ADDR>\$$", show.stdout, re.M)
    assert re.search(r"^enabled +no \(turn on with --enable\)$", show.stdout, re.M)
    assert re.search(r"^role +attempt; session: none \(time ties its lines\)$", show.stdout,
                     re.M)
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
    assert re.search(r"^  STARTED +TARGET +NTH +FOR +SCORE +SIGNATURES$", result.stdout, re.M)


def test_python_dash_m_and_version() -> None:
    assert run("--version").stdout.startswith("syslogban ")


def test_replay_takes_the_policy_of_a_configuration(rules: Path, log: Path,
                                                   tmp_path: Path) -> None:
    config = tmp_path / "syslogban.toml"
    config.write_text('[services.demo]\nattempts = 2\nblock_time = "permanent"\n')
    result = run("check", "--rules", str(rules), "--replay", "--config", str(config), str(log))
    assert result.returncode == 0, result.stderr
    assert "[services.demo] 2 attempts within 30m: block permanent" in result.stdout
    line = result.stdout.splitlines()[-1]
    assert "192.0.2.1" in line and " permanent " in line
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


def test_config_check_lists_every_problem_with_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "syslogban.toml"
    path.write_text('threshhold = 3\nwindow = "0s"\nallow = ["192.0.2.0/33"]\n'
                    'backend = "iptables"\n'
                    f'log_file = "{tmp_path}/missing/syslogban.log"\n'
                    f'metrics_file = "{tmp_path}"\n'
                    '[services.dovcot]\nattempts = 3\n')
    result = run("config", "check", "--config", str(path))
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert all(line.startswith(f"syslogban: error: {path}: ") for line in lines)
    keys = [line.split(": ")[3] for line in lines]
    assert keys == ["threshhold", "window", "allow", "services.dovcot", "backend",
                    "log_file", "metrics_file"]
    assert "did you mean dovecot?" in lines[3] and "iptables" in lines[4]
    assert "Traceback" not in result.stderr


def test_config_check_takes_a_good_file_and_run_refuses_a_bad_one(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('backend = "null"\n[services.sshd]\nattempts = 3\n'
                    '[backend_options]\n')
    result = run("config", "check", "--config", str(good))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "sshd" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('backend = "null"\n[services.sshdd]\nattempts = 3\n')
    result = run("run", "--config", str(bad), "--stdin", "--dry-run",
                 "--control", "", "--state", str(tmp_path / "state.db"))
    assert result.returncode == 2 and "services.sshdd" in result.stderr
    result = run("config", "check", "--backend", "nftables", "--backend-option", "hooks=output")
    assert result.returncode == 2
    assert "defaults: backend_options: nftables: hooks may be input and forward" in result.stderr


def test_config_show_prints_the_effective_configuration(tmp_path: Path) -> None:
    path = tmp_path / "syslogban.toml"
    path.write_text('window = "1h"\n[services.sshd]\nattempts = 3\n')
    result = run("config", "show", "--config", str(path), "--threshold", "40")
    assert result.returncode == 0, result.stderr
    assert 'window = "1h"' in result.stdout and "threshold = 40" in result.stdout
    assert "[services.sshd]\nthreshold = 40\nattempts = 3\nwindow = \"1h\"" in result.stdout


def test_fail2ban_regex_parity_host_and_printed_lines(log: Path) -> None:
    pattern = r"login failed for \S+ from <HOST>$"
    for source, stdin in ((str(log), None), ("-", LOG)):
        result = run("check", "--pattern", pattern, "--print-matched", "--print-missed",
                     source, stdin=stdin)
        out = result.stdout if stdin is None else result.stdout.decode()
        assert result.returncode == 0
        matched, missed = out.split("missed lines")
        assert matched.startswith("matched lines (5)\n")
        assert [line.split()[0] for line in matched.splitlines()[1:]] == ["1", "3", "5", "8", "9"]
        assert "       4  \\xff\\xfe broken bytes" in missed  # made printable, not raw
        assert "login ok for b" in missed and "login ok" not in matched
    help_text = run("check", "--help").stdout
    assert "<HOST>" in " ".join(help_text.split()) and "anchored at the start of the message" \
        in " ".join(help_text.split())
    names = run("check", "--pattern", pattern, "--print-missed", "-",
                stdin=b"Nov 21 10:00:00 h demo[1]: login failed for a from mail.example.org\n")
    assert b"missed lines (1)" in names.stdout  # <HOST> takes no host name, unlike fail2ban


def test_the_default_configuration_file_is_read_when_none_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """/etc/syslogban/syslogban.toml (here a file in its place) is what `run`,
    `config check` and the daemon's commands read without --config."""
    from syslogban import cli, config
    path = tmp_path / "syslogban.toml"
    path.write_text(f'threshold = 50\ncontrol = "{tmp_path}/control.sock"\n')
    monkeypatch.setattr(config, "DEFAULT_PATH", str(path))
    assert cli.main(["config", "check"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok (backend ")
    assert cli.main(["config", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["threshold"] == 50
    assert cli.main(["config", "show", "--json", "--config", ""]) == 0  # '': no file at all
    assert json.loads(capsys.readouterr().out)["threshold"] == 30
    assert cli.main(["status"]) == 2
    assert f"{tmp_path}/control.sock: no such control socket" in capsys.readouterr().err
    path.write_text(f'windw = "1h"\ncontrol = "{tmp_path}/control.sock"\n')
    assert cli.main(["config", "check"]) == 2
    assert f"{path}: windw: unknown key (did you mean window?)" in capsys.readouterr().err
    assert cli.main(["status"]) == 2  # a typo elsewhere does not hide the socket
    assert f"{tmp_path}/control.sock: no such control socket" in capsys.readouterr().err
    monkeypatch.setattr(config, "DEFAULT_PATH", str(tmp_path / "absent.toml"))
    assert cli.main(["config", "check"]) == 0
    assert capsys.readouterr().out.startswith(
        f"no configuration file ({tmp_path}/absent.toml does not exist), the defaults: ok")


@pytest.mark.parametrize(("backend", "options", "said"), [
    ("nftables", 'priority = "x"', "nftables: priority 'x': a whole number"),
    ("nftables", "priority = 1e30", "nftables: priority 1e+30: a whole number"),
    ("nftables", "ports = {smtp = 1}", "nftables: ports: a list or a text of names"),
    ("nftables", "hooks = 7", "nftables: hooks: a list or a text of names"),
    ("nftables", "zzz = 1", "nftables: no option 'zzz' (options: table, hooks, action, ports,"
                            " priority)"),
    ("nftables", "table = 5", "nftables: table name 5: letters, digits and _ only"),
    ("ipset", "maxelem = [1]", "ipset: maxelem [1] is not a number"),
    ("ipset", "set_name = 5", "ipset: set_name 5: a letter, then letters"),
    ("null", "zzz = 1", "null: no option 'zzz' (it takes none)"),
])
def test_a_driver_option_of_the_wrong_kind_is_one_line_naming_it(
        tmp_path: Path, backend: str, options: str, said: str) -> None:
    """Before: a traceback (priority = "x"), a check that passed and a start that
    failed (priority = 1e30, ports = {...}), or ') got an unexpected keyword'."""
    path = tmp_path / "syslogban.toml"
    path.write_text(f'backend = "{backend}"\n[backend_options]\n{options}\n')
    result = run("config", "check", "--config", str(path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"syslogban: error: {path}: backend_options: {said}")
