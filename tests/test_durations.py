"""Durations are bounded where they enter: a block the firewall would refuse
(nftables: ERANGE beyond ~100,000 days) can neither be configured, nor asked
for on the command line or the control socket, nor grown into."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from syslogban.blocker import Policy
from syslogban.config import ConfigError, load
from syslogban.durations import MAX_DURATION, PERMANENT, parse_duration

ROOT = Path(__file__).resolve().parent.parent
ABSURD = ["99999999999999999999d", "100000w", "3651d", "315360001", 1e20, 10**30, math.inf]


@pytest.mark.parametrize("text", ABSURD)
def test_longer_than_ten_years_is_refused_with_a_plain_message(text: str | float) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert "longer than 3650d (10 years): write permanent for good" in str(info.value)


def test_ten_years_and_permanent_are_taken() -> None:
    assert parse_duration("3650d") == MAX_DURATION == parse_duration(315360000)
    assert parse_duration("permanent") == PERMANENT


@pytest.mark.parametrize("key", ["block_time", "max_block_time", "window"])
def test_the_configuration_refuses_them_naming_file_and_key(tmp_path: Path, key: str) -> None:
    path = tmp_path / "syslogban.toml"
    path.write_text(f'{key} = "100000w"\n')
    with pytest.raises(ConfigError, match=f"{path}: {key}: 100000w is longer than 3650d"):
        load(str(path))
    path.write_text(f'[services.dovecot]\n{key} = "100000w"\n')
    with pytest.raises(ConfigError, match=f"{path}: services.dovecot.{key}: 100000w is longer"):
        load(str(path))


def test_the_command_line_refuses_them_before_asking_the_daemon(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "syslogban", "block", "192.0.2.1", "--for",
         "99999999999999999999d", "--control", str(tmp_path / "none.sock")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "99999999999999999999d is longer than 3650d" in result.stderr
    assert "Traceback" not in result.stderr and "none.sock" not in result.stderr
    run = subprocess.run([sys.executable, "-m", "syslogban", "run", "--stdin",
                          "--block-time", "100000w", "--dry-run"], cwd=ROOT, input="",
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2 and "block_time: 100000w is longer" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_escalation_never_grows_past_the_bound() -> None:
    """max_block_time = permanent lets a repeat offender's time grow; it stops
    at ten years instead of reaching numbers the firewall refuses."""
    policy = Policy(block_time=120, multiplier=1000, max_block_time=PERMANENT)
    assert [policy.duration(n) for n in (0, 1, 2)] == [120, 120_000, 120_000_000]
    assert policy.duration(3) == policy.duration(10_000) == MAX_DURATION


def test_a_permanent_block_time_blocks_for_good() -> None:
    """README: block_time = "permanent" bans forever (not for max_block_time)."""
    assert Policy(block_time=PERMANENT).duration(0) == PERMANENT
    assert Policy(block_time=PERMANENT).duration(5) == PERMANENT
