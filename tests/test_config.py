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
    assert config.notify["mail_to"] == ("root@example.org",)
    assert config.notify["smtp_port"] == 25  # every key of a table, defaults included


@pytest.mark.parametrize(("text", "message"), [
    ("threshhold = 3", "threshhold: unknown key (did you mean threshold?)"),
    ('window = "soon"', "window: 'soon' is not a duration"),
    ('window = "0s"', 'window: must be longer than 0s, not "0s"'),
    ("threshold = 0", "threshold: must be a whole number from 1"),
    ('allow = ["192.0.2.0/33"]', 'allow: "192.0.2.0/33" is not an address or a prefix'),
    ('allow = ["10.0.0.300"]', 'allow: "10.0.0.300" is not an address or a prefix'),
    ('allow = ["mail relay"]', 'allow: "mail relay" is not an address, a prefix (CIDR) or a '
                               'host name'),
    ('listen_allow = ["localhost"]', 'listen_allow: "localhost" is not an address'),
    ("[fleeet]\ndsn = 1", "fleeet: unknown table (did you mean fleet?)"),
    ("[mail]\nto = 1", "mail: unknown table (one of services, notify, backend_options, fleet, "
                       "crowdsec)"),
    ("services = 3", "services: must be a table"),
    ("[notify]\nsmtp_port = 0", "notify.smtp_port: must be a whole number from 1 to 65535"),
    ('facilities = ["mail", "mial"]', "unknown facility mial"),
    ("[services.sshd]\nbantime = 3", "services.sshd.bantime: unknown key in [services.sshd] "
                                     "(one of threshold, attempts"),
    ("threshold = ", "not valid TOML"),
])
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert message in str(info.value) and str(path) in str(info.value)


def test_every_problem_is_listed_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('threshhold = 3\nwindow = "0s"\nallow = ["192.0.2.0/33", "10.0.0.300"]\n'
                    '[services.sshd]\nbantime = 3\n[notify]\nsmtp_port = 0\n')
    with pytest.raises(ConfigError) as info:
        load(str(path), flags("--multiplier", "zero"))
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "threshhold", "window", "allow", "services.sshd.bantime", "notify.smtp_port",
        "multiplier"]
    assert all(line.startswith(f"{path}: ") for line in lines[:-1])
    assert lines[-1].startswith("command line: multiplier: ")
    assert "192.0.2.0/33" in lines[2] and "10.0.0.300" in lines[2]


def test_config_show_is_a_file_that_loads_to_the_same(tmp_path: Path) -> None:
    import tomllib
    path = tmp_path / "syslogban.toml"
    path.write_text('window = "1h"\nblacklist = 120\nallow = ["192.0.2.0/24"]\n'
                    '[services.sshd]\nattempts = 3\nblock_time = "permanent"\n'
                    '[notify]\nmail_to = ["root@example.org"]\n'
                    '[backend_options]\nports = ["smtp", "submission"]\n')
    config = load(str(path), flags("--service", "dovecot.block_time=1d"))
    text = config.toml()
    assert 'window = "1h"' in text and 'block_time = "permanent"' in text
    assert "[services.sshd]\nthreshold = 30\nattempts = 3" in text  # the whole policy
    shown = tmp_path / "shown.toml"
    shown.write_text(text)
    again = load(str(shown))
    assert again.values == {**config.values, "services": again.services}
    assert again.blocker([]) == config.blocker([])
    assert tomllib.loads(text)["backend_options"] == {"ports": ["smtp", "submission"]}


def test_bad_flags_are_reported() -> None:
    with pytest.raises(ConfigError, match="command line: multiplier"):
        load(None, flags("--multiplier", "zero"))
    with pytest.raises(ConfigError, match="NAME.KEY=VALUE"):
        load(None, flags("--service", "sshd=3"))
    with pytest.raises(ConfigError, match="services.sshd.bantime: unknown key"):
        load(None, flags("--service", "sshd.bantime=3"))
    with pytest.raises(ConfigError, match="notify.smtp_port: must be a whole number"):
        load(None, flags("--notify", "smtp_port=x"))


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
    import tomllib

    from syslogban.config import NOTIFY_OPTIONS
    path = Path(__file__).resolve().parent.parent / "contrib" / "syslogban.toml"
    data = tomllib.loads(path.read_text())
    assert {o.key for o in OPTIONS} <= set(data)
    assert {o.key for o in NOTIFY_OPTIONS} == set(data["notify"])
    example, defaults = load(str(path)), load(None)
    assert example.values == defaults.values


def test_block_time_beyond_the_cap_is_honoured_or_refused_never_capped(tmp_path: Path) -> None:
    path = tmp_path / "syslogban.toml"
    path.write_text('[services.dovecot]\nblock_time = "permanent"\n'
                    '[services.postfix]\nblock_time = "1w"\n')
    services = load(str(path)).blocker([]).services
    assert services["dovecot"].duration(0) == PERMANENT == services["dovecot"].duration(9)
    assert services["postfix"].duration(0) == 7 * 86400  # above the global 1d: honoured
    for text, key in (('block_time = "2d"', "block_time: 2d"),
                      ('[services.sshd]\nblock_time = "1w"\nmax_block_time = "1d"',
                       "services.sshd.block_time: 1w")):
        path.write_text(text + "\n")
        with pytest.raises(ConfigError, match=re.escape(key) + " is longer than max_block_time"):
            load(str(path))


def test_a_reload_knows_which_changes_need_a_restart(tmp_path: Path) -> None:
    from syslogban.config import restart_needed
    old = load(None)
    new = load(None, flags("--listen", "udp://127.0.0.1:5514", "--threshold", "40",
                           "--backend", "ipset", "--notify", "smtp_port=2525"))
    assert restart_needed(old, new) == ["listen", "backend", "notify"]  # not threshold
    assert restart_needed(old, load(None, flags("--window", "1h"))) == []
