"""What an admin reads: every command's output, human and --json, holds no Python repr."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from test_daemon import ROOT, SYSLOGBAN, Daemon, attack_lines, daemons, start

from syslogban.blocker import Block
from syslogban.display import (because, block_said, blocks, human_duration, local_time,
                               table, why)
from syslogban.durations import PERMANENT

__all__ = ["daemons"]  # the fixture, shared with test_daemon

# What leaks when Python objects are printed instead of words: dict/list/tuple
# reprs, None/True/False, a float infinity in JSON, object and dataclass reprs.
REPR = re.compile(r"\{'[^'\n]*': |\['[^'\n]*'[,\]]|\('[^'\n]*',"
                  r"|\bNone\b|\bTrue\b|\bFalse\b|\bInfinity\b|\bNaN\b|\binf\b"
                  r"|object at 0x|<[\w.]+ object|\b[A-Z]\w+\(\w+=|Traceback")
SAMPLE = ROOT / "contrib" / "sample" / "mail.log"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SYSLOGBAN, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def no_repr(result: subprocess.CompletedProcess[str], *args: str) -> str:
    for stream in (result.stdout, result.stderr):
        leak = REPR.search(stream)
        assert leak is None, f"{' '.join(args)}: {leak.group()!r} in:\n{stream}"
    return result.stdout


def test_human_durations_and_times() -> None:
    assert [human_duration(s) for s in (0, 59, 120, 3660, 97200, 691200, PERMANENT, None)] == [
        "0s", "59s", "2m", "1h 1m", "1d 3h", "1w 1d", "permanent", "permanent"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", local_time(time.time()))
    assert local_time(None) == "-"
    assert table(("NAME", "N"), [("a", 1), ("long name", 100)]) == [
        "NAME         N", "a            1", "long name  100"]


def test_a_block_reads_as_one_sentence() -> None:
    """The log line, the CrowdSec alert and the digest say a block the same way."""
    score = Block("192.0.2.30", 0.0, 120.0, "score", 30,
                  ("postfix.improper-pipelining", "dovecot.auth-failed"), 1, 30)
    assert block_said(score) == ("192.0.2.30 for 2m: score 30 from "
                                 "postfix.improper-pipelining, dovecot.auth-failed (1st block)")
    forever = Block("192.0.2.30", 0.0, PERMANENT, "blacklist", 30, ("sshd.failed",), 22, 130)
    assert block_said(forever) == ("192.0.2.30 for good: blacklisted, lifetime danger 130 "
                                   "from sshd.failed (22nd block)")
    adaptive = Block("192.0.2.0/24", 0.0, 240.0, "adaptive", 3,
                     ("192.0.2.1", "192.0.2.2", "192.0.2.3"), 2, 0)
    assert block_said(adaptive) == ("192.0.2.0/24 for 4m: 3 of its hosts blocked: "
                                    "192.0.2.1, 192.0.2.2, 192.0.2.3 (2nd block)")
    manual = Block("203.0.113.0/24", 0.0, 86400.0, "manual", 0, (), 3, 0)
    assert block_said(manual) == "203.0.113.0/24 for 1d: by an admin (3rd block)"
    remote = Block("198.51.100.7", 0.0, 3600.0, "crowdsec", 0, (), 11, 0,
                   "crowdsec:cscli/manual 'ban' from 'admin'")
    assert block_said(remote) == ("198.51.100.7 for 1h: decided by crowdsec:cscli/manual "
                                  "'ban' from 'admin' (11th block)")
    assert because("score", 30, ("postfix.sasl",), origin="fleet:mx2") == \
        "score 30 from postfix.sasl, decided by fleet:mx2"


def test_list_names_who_decided_a_block_made_elsewhere() -> None:
    local = {"target": "192.0.2.1", "reason": "score", "score": 30, "nth": 1, "since": 0.0,
             "until": 120.0, "signatures": ["postfix.sasl"], "origin": ""}
    remote = {**local, "target": "198.51.100.7", "reason": "crowdsec", "score": 0,
              "signatures": [], "origin": "crowdsec:cscli/manual 'ban' from 'admin'"}
    assert "ORIGIN" not in blocks([local], 60.0)
    lines = blocks([local, remote], 60.0).splitlines()
    assert lines[0].endswith("  SIGNATURES    ORIGIN")
    assert lines[1].endswith("  postfix.sasl  -")
    assert lines[2].endswith("  -             crowdsec:cscli/manual 'ban' from 'admin'")


def test_why_says_its_evidence_is_the_last_lines_seen() -> None:
    """Evidence is bounded (decisions.py): an admin must not read it as all there was."""
    lines = ["warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x"] * 2
    grouped = why({"target": "192.0.2.1", "evidence": lines,
                   "per_attempt": [{"service": "postfix", "lines": lines}]}, 0.0)
    assert "evidence (the last lines seen: 1 attempt, oldest first)\n  1. postfix\n" in grouped
    assert "evidence (the last 2 lines seen)\n" in why({"target": "192.0.2.1",
                                                        "evidence": lines}, 0.0)


def test_no_command_prints_a_python_repr(tmp_path: Path, daemons: list[Daemon]) -> None:
    config = tmp_path / "syslogban.toml"
    config.write_text('backend = "null"\nblacklist = 100\n[services.sshd]\nattempts = 3\n'
                      'block_time = "permanent"\n[notify]\nmail_to = ["root@example.org"]\n')
    offline = [("check", str(SAMPLE)), ("check", "--json", str(SAMPLE)),
               ("check", "--replay", str(SAMPLE)), ("check", "--jsonl", str(SAMPLE)),
               ("rules", "list"), ("rules", "list", "--json"),
               ("rules", "show", "postfix.sasl-auth-failed"),
               ("rules", "show", "--json", "postfix.sasl-auth-failed"),
               ("rules", "check"), ("rules", "check", "--json"),
               ("config", "check", "--config", str(config)),
               ("config", "check", "--json", "--config", str(config)),
               ("config", "show", "--config", str(config)),
               ("config", "show", "--json", "--config", str(config)),
               ("--version",), ("--help",)]
    for args in offline:
        result = run(*args)
        assert result.returncode == 0, (args, result.stderr)
        no_repr(result, *args)
    shown = json.loads(run("config", "show", "--json", "--config", str(config)).stdout)
    assert shown["services"]["sshd"]["block_time"] == "permanent"

    d = start(daemons, tmp_path, "--config", str(config), "--service", "postfix.attempts=2")
    d.send(attack_lines("192.0.2.1", count=3) + attack_lines("198.51.100.9", count=1))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the block")
    assert d.ctl("block", "203.0.113.0/24").returncode == 0  # permanent
    online = [("status",), ("list",), ("why", "192.0.2.1"), ("why", "198.51.100.9"),
              ("why", "203.0.113.0/24"), ("block", "198.51.100.7", "--for", "1d"),
              ("unblock", "198.51.100.7"), ("reload",)]
    for extra in ((), ("--json",)):
        for args in online:
            result = d.ctl(*args, *extra)
            assert result.returncode == 0, (args, result.stderr)
            out = no_repr(result, *args, *extra)
            if extra:
                json.loads(out, parse_constant=pytest.fail)  # NaN or Infinity: not JSON
    listed = d.ctl("list").stdout
    assert re.search(r"^192\.0\.2\.1 +score +\d+ +1 +\d{4}-\S+ \S+ +\d{4}-\S+ \S+ +"
                     r"(2m|1m|1m \d+s) +postfix", listed, re.M), listed
    assert re.search(r"^203\.0\.113\.0/24 +manual .* permanent +permanent", listed, re.M)
    for bad in (("why", "mail.example.org"), ("unblock", "198.51.100.200")):
        no_repr(d.ctl(*bad), *bad)
