"""The daemon's own log: journal priorities without a second timestamp, a file reopened."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syslogban import logs


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("syslogban", level, __file__, 1, message, None, None)


def test_journal_lines_carry_the_priority_and_no_time() -> None:
    formatter = logs.JournalFormatter()
    assert formatter.format(record(logging.WARNING, "blocked 192.0.2.1 for 2m")) == \
        "<4>syslogban: blocked 192.0.2.1 for 2m"
    assert formatter.format(record(logging.ERROR, "a\nb")) == "<3>syslogban: a\n<3>b"
    assert formatter.format(record(logging.DEBUG, "x")).startswith("<7>")


def test_journal_is_recognised_only_by_our_own_stderr(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with open(tmp_path / "stream", "w") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert logs.under_journal(stream)
        with open(tmp_path / "other", "w") as other:
            assert not logs.under_journal(other)  # inherited by a child, say: not ours
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    assert not logs.under_journal(sys.stderr)


def test_a_child_under_the_journal_writes_prefixed_lines(tmp_path: Path) -> None:
    out = tmp_path / "journal"
    script = ("import os, logging, sys\n"
              "info = os.fstat(2)\n"
              "os.environ['JOURNAL_STREAM'] = f'{info.st_dev}:{info.st_ino}'\n"
              "from syslogban import logs\n"
              "logs.setup('INFO', '')\n"
              "logging.getLogger('syslogban').warning('blocked 192.0.2.1')\n")
    with open(out, "w") as stderr:
        subprocess.run([sys.executable, "-c", script], stderr=stderr, check=True)
    assert out.read_text() == "<4>syslogban: blocked 192.0.2.1\n"


def test_reopen_follows_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "syslogban.log"
    handler = logs.setup("INFO", str(path))
    try:
        log = logging.getLogger("syslogban")
        log.warning("before")
        path.rename(tmp_path / "syslogban.log.1")  # logrotate / newsyslog
        log.warning("still the old file")
        logs.reopen()
        log.warning("after")
        assert "before" in (tmp_path / "syslogban.log.1").read_text()
        assert "still the old file" in (tmp_path / "syslogban.log.1").read_text()
        assert path.read_text().endswith("WARNING syslogban: after\n")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
