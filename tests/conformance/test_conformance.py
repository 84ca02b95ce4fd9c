"""The conformance run: syslogban's bundled signatures against fail2ban's corpus.

Skipped, with the reason, when the fail2ban package cannot be downloaded
(`pytest -rs` shows it). The report is printed (`pytest -s` shows it) and is
the assertion message when a target is missed.
"""

from __future__ import annotations

from conformance.fetch import Package
from conformance.run import load_filters, render
from conformance.score import score_all


def test_conformance(package: Package) -> None:
    """The attacks found in each run reach score.TARGET_PERCENT, no false positive in any filter."""
    report = score_all(load_filters(package), package.version)
    text = render(report)
    print(text)
    assert not report.failures(), text
