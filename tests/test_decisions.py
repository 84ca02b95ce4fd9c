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
    assert "2001:db8::18f" in kept.evidence and "2001:db8::0" not in kept.evidence
    newest = kept.evidence["2001:db8::18f"][-1].message
    assert newest.startswith("warning: unknown[2001:db8::18f]") and newest.endswith("...")
