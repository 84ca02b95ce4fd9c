"""A block as a CrowdSec alert (pure)."""

from __future__ import annotations

import pytest

from conftest import NOW
from syslogban.blocker import Block
from syslogban.crowdsec.alerts import FOREVER, alert, scenario
from syslogban.durations import PERMANENT


def block(target: str = "192.0.2.7", until: float = NOW + 120, reason: str = "score",
          signatures: tuple[str, ...] = ("postfix.sasl", "dovecot.auth")) -> Block:
    return Block(target, NOW, until, reason, 30, signatures, 2, 30)


def test_a_block_becomes_one_alert_with_its_decision() -> None:
    body = alert(block(), evidence=3, now=NOW + 20)
    assert body is not None
    assert body["scenario"] == "syslogban/postfix.sasl"
    assert body["events_count"] == 3
    assert body["source"] == {"scope": "Ip", "value": "192.0.2.7", "ip": "192.0.2.7"}
    assert body["decisions"] == [{"origin": "syslogban", "type": "ban", "scope": "Ip",
                                  "value": "192.0.2.7", "duration": "100s",
                                  "scenario": "syslogban/postfix.sasl"}]
    assert body["start_at"] == "2026-11-21T10:00:00Z" and body["stop_at"] == "2026-11-21T10:00:20Z"
    assert "blocked 192.0.2.7 for 2m: score 30 from postfix.sasl, dovecot.auth (2nd block)" \
        in body["message"]
    # every field 1.4's LAPI requires (pkg/models/localapi_swagger.yaml, Alert)
    assert {"scenario", "scenario_hash", "scenario_version", "message", "events_count",
            "start_at", "stop_at", "capacity", "leakspeed", "simulated", "events",
            "source"} <= set(body)


def test_no_log_text_leaves_the_host() -> None:
    body = alert(block(), evidence=5, now=NOW)
    assert body is not None and body["events"] == [] and "meta" not in body


def test_prefixes_are_ranges_and_permanent_blocks_ask_for_long() -> None:
    body = alert(block("198.51.100.0/24", PERMANENT, "adaptive", ("198.51.100.1",)), 0, NOW)
    assert body is not None
    assert body["source"] == {"scope": "Range", "value": "198.51.100.0/24",
                              "range": "198.51.100.0/24"}
    assert body["decisions"][0]["duration"] == f"{FOREVER}s"
    assert body["scenario"] == "syslogban/adaptive" and body["events_count"] == 1


def test_a_block_already_over_makes_no_alert() -> None:
    assert alert(block(until=NOW + 120), 3, NOW + 119.5) is None
    assert alert(block(until=NOW + 120), 3, NOW + 500) is None


@pytest.mark.parametrize(("reason", "signatures", "name"), [
    ("score", ("sshd.fail",), "syslogban/sshd.fail"),
    ("blacklist", ("sshd.fail",), "syslogban/sshd.fail"),
    ("manual", (), "syslogban/manual"),
    ("adaptive", ("192.0.2.1", "192.0.2.2"), "syslogban/adaptive"),
])
def test_scenario_names(reason: str, signatures: tuple[str, ...], name: str) -> None:
    assert scenario(block(reason=reason, signatures=signatures)) == name
