"""Tests that need something of the machine: root, the kernel, a command, a
real server (nftables, ipset, rsyslog, syslog-ng, PostgreSQL, CrowdSec, mail
daemons, ...).

Where that cannot exist they skip, saying why. On CI they must not skip: CI
is a root Debian machine set up by contrib/setup-venv.sh alone, so a skip
there hides an install step missing from the setup. With CI=true (.ci/run
sets it) such a test fails instead, naming itself and what it missed.

Declare a requirement, never a bare skipif:

    requires_nft = requires(shutil.which("nft") is not None,
                            "needs the nft command (Debian package nftables)")
    pytestmark = [requires_netns, requires_nft]      # or @requires_nft on a test

or, where it is only known inside a test or fixture:

    need(rsyslogd.exists(), "rsyslogd is not installed")
    missing(f"fail2ban corpus unavailable: {exc}")     # once it is known missing

Any other skip of a test marked this way (a pytest.skip() in its body or a
fixture) fails on CI too: conftest.py's hooks call the functions below.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

MARK = "system"
MARKER_HELP = (f"{MARK}(available, reason): the test needs something of the machine; "
               "it skips without it, and fails on CI (CI=true)")


def on_ci() -> bool:
    """True on CI, where nothing a test needs may be missing."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def requires(available: object, reason: str) -> pytest.MarkDecorator:
    """A mark for a test (or module, through pytestmark) that needs what
    `reason` names; `available` says whether this machine has it."""
    return getattr(pytest.mark, MARK)(available=bool(available), reason=reason)


def ci_failure(nodeid: str, reason: str) -> str:
    """The one message a CI run shows for a test that would have skipped."""
    return (f"{nodeid} skipped on CI: {reason} (CI=true: everything a test needs "
            "must be installed by contrib/setup-venv.sh; see tests/README.md)")


def need(available: object, reason: str) -> None:
    """Inside a test or fixture: skip without it, fail on CI."""
    if not available:
        missing(reason)


def missing(reason: str) -> NoReturn:
    """Inside a test or fixture that found something missing: skip, or fail on CI."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "this test").rsplit(" ", 1)[0]
    _skip_or_fail(current, reason)


def check_marks(item: pytest.Item) -> None:
    """pytest_runtest_setup: every requirement mark of the test, in order."""
    for mark in item.iter_markers(MARK):
        if not mark.kwargs["available"]:
            _skip_or_fail(item.nodeid, mark.kwargs["reason"])


def _skip_or_fail(nodeid: str, reason: str) -> NoReturn:
    if on_ci():
        pytest.fail(ci_failure(nodeid, reason), pytrace=False)
    pytest.skip(reason)


def report_skip(item: pytest.Item, report: pytest.TestReport) -> None:
    """pytest_runtest_makereport, for a skipped test. On CI, a test marked
    as needing the machine that skipped anyway (pytest.skip in its body or a
    fixture) fails. Elsewhere a skip raised here is shown at the test's own
    line, as pytest shows a skipif's."""
    longrepr = report.longrepr
    if not (report.skipped and isinstance(longrepr, tuple)) or hasattr(report, "wasxfail"):
        return
    path, _, reason = longrepr
    if on_ci() and item.get_closest_marker(MARK) is not None:
        report.outcome = "failed"
        report.longrepr = ci_failure(item.nodeid, reason.removeprefix("Skipped: "))
    elif path == __file__:
        test_path, line, _ = item.reportinfo()
        report.longrepr = (str(test_path), (line or 0) + 1, reason)
