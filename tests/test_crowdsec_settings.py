"""The [crowdsec] table: the keys as the issue gives them, clear errors, secrets hidden."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from syslogban.config import ConfigError, add_flags, load
from syslogban.crowdsec.settings import CrowdSecSettings

def test_settings_as_the_issue_writes_them() -> None:
    s = CrowdSecSettings.from_mapping({"url": "http://127.0.0.1:8080/", "bouncer_key": "k",
                                       "machine_id": "mx1", "machine_password": "pw",
                                       "poll": "10s"})
    assert (s.url, s.poll, s.pulls, s.pushes) == ("http://127.0.0.1:8080/", 10.0, True, True)
    assert s.shown() == {"url": "http://127.0.0.1:8080/", "bouncer_key": "***",
                         "machine_id": "mx1", "machine_password": "***", "poll": 10.0}
    assert not s.plain_remote


def test_one_role_is_enough_and_no_table_is_off() -> None:
    assert not CrowdSecSettings.from_mapping({}).enabled
    pull = CrowdSecSettings.from_mapping({"url": "https://lapi.example:8080", "bouncer_key": "k"})
    assert pull.pulls and not pull.pushes and pull.url == "https://lapi.example:8080/"
    push = CrowdSecSettings.from_mapping({"url": "http://10.0.0.5:8080/", "machine_id": "mx1",
                                          "machine_password": "pw", "poll": 60})
    assert push.pushes and not push.pulls and push.poll == 60 and push.plain_remote


@pytest.mark.parametrize(("table", "message"), [
    ({"url": "http://127.0.0.1:8080/", "bouncer": "k"},
     r"crowdsec.bouncer: unknown key in \[crowdsec\]"),
    ({"bouncer_key": "k"}, "url is missing"),
    ({"url": "ftp://127.0.0.1/", "bouncer_key": "k"}, "write http://HOST:PORT/"),
    ({"url": "127.0.0.1:8080", "bouncer_key": "k"}, "write http://HOST:PORT/"),
    ({"url": "http://127.0.0.1:99999/", "bouncer_key": "k"}, "url"),
    ({"url": "http://u:secret@127.0.0.1/", "bouncer_key": "k"}, "no query, fragment or user"),
    ({"url": "http://127.0.0.1/"}, "set bouncer_key to pull decisions"),
    ({"url": "http://127.0.0.1/", "machine_id": "mx1"}, "go together"),
    ({"url": "http://127.0.0.1/", "bouncer_key": ""}, "set bouncer_key to pull decisions"),
    ({"url": "http://127.0.0.1/", "bouncer_key": 5}, "bouncer_key: must be a string"),
    ({"url": "http://127.0.0.1/", "bouncer_key": "k\n"}, "control character"),
    ({"url": "http://127.0.0.1/", "bouncer_key": "k", "poll": "0.5s"}, "from 1s to 1h"),
    ({"url": "http://127.0.0.1/", "bouncer_key": "k", "poll": "soon"}, "poll: 'soon'"),
])
def test_bad_settings_say_which_key_and_why(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        CrowdSecSettings.from_mapping(table)
    assert "secret" not in str(caught.value)


def test_the_configuration_file_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "syslogban.toml"
    path.write_text('[crowdsec]\nurl = "http://127.0.0.1:8080/"   # the Local API\n'
                    'bouncer_key = "k"\nmachine_id = "mx1"\nmachine_password = "pw"\n'
                    'poll = "10s"\n')
    config = load(str(path))
    assert config.crowdsec == CrowdSecSettings("http://127.0.0.1:8080/", "k", "mx1", "pw", 10.0)
    assert config.effective()["crowdsec"]["machine_password"] == "***"
    parser = argparse.ArgumentParser()
    add_flags(parser)
    flags = parser.parse_args(["--crowdsec", "poll=1m", "--crowdsec", "bouncer_key=other"])
    assert load(str(path), flags).crowdsec.poll == 60
    assert load(str(path), flags).crowdsec.bouncer_key == "other"
    assert not load(None).crowdsec.enabled


def test_a_broken_table_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "syslogban.toml"
    path.write_text('[crowdsec]\nurl = "http://127.0.0.1:8080/"\nbouncer_key = "k"\n'
                    'poll = "often"\n')
    with pytest.raises(ConfigError, match=f"^{path}: crowdsec.poll: 'often' is not a duration"):
        load(str(path))
    path.write_text('crowdsec = "http://127.0.0.1:8080/"\n')
    with pytest.raises(ConfigError, match=r"crowdsec: must be a table \(\[crowdsec\]\)"):
        load(str(path))


def test_the_contrib_example_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "contrib/crowdsec/syslogban-crowdsec.toml"
    config = load(str(example))
    assert config.crowdsec.pulls and config.crowdsec.pushes and config.crowdsec.poll == 10
