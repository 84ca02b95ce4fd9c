"""Configuration: defaults that work, file and flags, errors that name the key."""

from __future__ import annotations

import argparse
import re
import ipaddress
from pathlib import Path

import pytest

from syslogban.blocker import Policy
from syslogban.config import OPTIONS, ConfigError, add_flags, load, resolve_allow
from syslogban.durations import PERMANENT, format_duration, parse_duration


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(argv)


def test_defaults_without_a_file() -> None:
    config = load(None)
    assert config.policy() == Policy()
    assert config.facilities == ("mail",) and config.backend == "nftables"  # on Linux
    assert config.blocker([]).blacklist is None


def test_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "syslogban.toml"
    path.write_text('threshold = 40\nwindow = "1h"\nblock_time = "10m"\nblacklist = 120\n'
                    'allow = ["192.0.2.0/24"]\n'
                    '[services.sshd]\nattempts = 3\nwindow = "24h"\nblock_time = "1d"\n'
                    '[notify]\nmail_to = ["root@example.org"]\n')
    config = load(str(path), flags("--threshold", "50", "--allow", "198.51.100.1",
                                   "--service", "dovecot.block_time=permanent"))
    assert config.threshold == 50 and config.window == 3600 and config.block_time == 600
    assert config.allow == ("198.51.100.1",)  # a list flag replaces the file's list
    blocker = config.blocker([ipaddress.ip_network("192.0.2.0/24")])
    assert blocker.blacklist == 120
    assert blocker.services["sshd"] == Policy(threshold=3, window=86400, block_time=86400,
                                              max_block_time=86400, count_attempts=True)
    assert blocker.services["dovecot"].block_time == PERMANENT
    assert config.notify == {"mail_to": ["root@example.org"]}


@pytest.mark.parametrize(("text", "message"), [
    ("threshhold = 3", "unknown key threshhold"),
    ('window = "soon"', "window: 'soon' is not a duration"),
    ("threshold = 0", "threshold: must be a whole number from 1"),
    ('facilities = ["mail", "mial"]', "unknown facility mial"),
    ("[services.sshd]\nbantime = 3", "services.sshd: unknown key bantime"),
    ("threshold = ", "not valid TOML"),
])
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert message in str(info.value) and str(path) in str(info.value)


def test_bad_flags_are_reported() -> None:
    with pytest.raises(ConfigError, match="command line: multiplier"):
        load(None, flags("--multiplier", "zero"))
    with pytest.raises(ConfigError, match="NAME.KEY=VALUE"):
        load(None, flags("--service", "sshd=3"))


def test_every_key_has_a_flag_and_a_help() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    known = {a for action in parser._actions for a in action.option_strings}
    for option in OPTIONS:
        assert option.flags in known and option.help


def test_allow_list_literals_and_names() -> None:
    networks = resolve_allow(["192.0.2.0/24", "2001:db8::1", "localhost",
                              "no-such-host.invalid"])
    assert ipaddress.ip_network("192.0.2.0/24") in networks
    assert ipaddress.ip_network("2001:db8::1/128") in networks
    assert ipaddress.ip_network("127.0.0.1/32") in networks  # localhost resolved


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1w", 604800),
    ("90", 90), (45, 45), ("1.5h", 5400), ("permanent", PERMANENT)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_duration_errors_and_formatting() -> None:
    for bad in ("", "-5s", "5 minutes", "1y", True, -1):
        with pytest.raises(ValueError):
            parse_duration(bad)  # type: ignore[arg-type]
    assert [format_duration(s) for s in (7200, 90, 0.4, PERMANENT, 86400 * 7)] == [
        "2h", "90s", "0s", "permanent", "1w"]


def test_the_example_file_documents_every_key_with_its_default() -> None:
    import dataclasses
    import tomllib

    from syslogban.notify import NotifyConfig
    path = Path(__file__).resolve().parent.parent / "contrib" / "syslogban.toml"
    data = tomllib.loads(path.read_text())
    assert {o.key for o in OPTIONS} <= set(data)
    assert {f.name for f in dataclasses.fields(NotifyConfig)} == set(data["notify"])
    example, defaults = load(str(path)), load(None)
    assert example.values == defaults.values


def test_block_time_beyond_the_cap_is_honoured_or_refused_never_capped(tmp_path: Path) -> None:
    path = tmp_path / "syslogban.toml"
    path.write_text('[services.dovecot]\nblock_time = "permanent"\n'
                    '[services.postfix]\nblock_time = "1w"\n')
    services = load(str(path)).blocker([]).services
    assert services["dovecot"].duration(0) == PERMANENT == services["dovecot"].duration(9)
    assert services["postfix"].duration(0) == 7 * 86400  # above the global 1d: honoured
    for text, key in (('block_time = "2d"', "block_time (2d)"),
                      ('[services.sshd]\nblock_time = "1w"\nmax_block_time = "1d"',
                       "services.sshd: block_time (1w)")):
        path.write_text(text + "\n")
        with pytest.raises(ConfigError, match=re.escape(key) + " is longer than max_block_time"):
            load(str(path))
