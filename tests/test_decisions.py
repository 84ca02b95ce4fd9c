"""Decisions: evidence kept behind each address, bounded whatever the lines."""

from __future__ import annotations

import pytest

from syslogban import decisions
from syslogban.attempts import Counted
from syslogban.blocker import BlockerConfig
from syslogban.decisions import Decisions
from syslogban.matcher import Attack
from syslogban.pipeline import Detection
from syslogban.record import Record

NOW = 1_800_000_000.0


def detection(address: str, message: str, ref: int) -> Detection:
    return Detection(ref, Attack(address, "postfix.sasl", "postfix", 10), Record(message,
                     "postfix/smtpd"), Counted(ref, 1, 10))


def test_evidence_is_bounded_in_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records of 8 KiB from 65,536 addresses kept 5 GiB of evidence: now a line
    keeps EVIDENCE_WIDTH characters, and all of it at most EVIDENCE_CHARACTERS."""
    monkeypatch.setattr(decisions, "EVIDENCE_CHARACTERS", 1 << 20)  # 1 Mi characters here
    kept = Decisions(BlockerConfig())
    line = "warning: unknown[{}]: SASL LOGIN authentication failed: " + "A" * 8000
    ref = 0
    for n in range(400):  # 400 addresses x 3 lines x 8 KiB: 9.6 Mi characters offered
        address = f"2001:db8::{n:x}"
        for _ in range(3):
            ref += 1
            kept.decide(detection(address, line.format(address), ref), NOW)
    lengths = [len(e.message) for lines in kept.evidence.values() for e in lines]
    assert max(lengths) == decisions.EVIDENCE_WIDTH
    assert (1 << 20) - decisions.EVIDENCE_WIDTH * 3 < sum(lengths) <= 1 << 20
    assert kept._characters == sum(lengths)  # the running total never drifts
    assert "2001:db8::18f" in kept.evidence and "2001:db8::0" not in kept.evidence
    newest = kept.evidence["2001:db8::18f"][-1].message
    assert newest.startswith("warning: unknown[2001:db8::18f]") and newest.endswith("...")


def test_the_character_count_follows_lines_that_make_way() -> None:
    """Past EVIDENCE_LINES an address's oldest line goes: its characters with it."""
    kept = Decisions(BlockerConfig())
    for ref in range(1, 3 * decisions.EVIDENCE_LINES):
        kept.decide(detection("192.0.2.7", "x" * ref, ref), NOW)
    lines = kept.evidence["192.0.2.7"]
    assert [len(e.message) for e in lines] == list(
        range(2 * decisions.EVIDENCE_LINES, 3 * decisions.EVIDENCE_LINES))
    assert kept._characters == sum(len(e.message) for e in lines)
