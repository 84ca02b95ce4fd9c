"""Where the daemon's own log goes: the journal, a file it can reopen, or stderr.

Rules of this file:
* Never the syslog facility syslogban reads (it would read its own lines).
* Under systemd (JOURNAL_STREAM names our stderr) each line carries its
  priority as an sd-daemon prefix (`<4>`) and no timestamp: the journal
  stamps and ranks it. Elsewhere lines carry their own time.
* A `log_file` is reopened on SIGHUP and on reload (`reopen`), so that
  logrotate's or newsyslog's rename is followed instead of writing on into
  the rotated file.
"""

from __future__ import annotations

import logging
import os
import sys

# sd-daemon(3) priorities, as syslog(3) numbers them
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JournalFormatter(logging.Formatter):
    """`<6>syslogban: message`: the journal reads the priority from the prefix."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        # every line of a multi-line message (a traceback) keeps the priority
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


class ReopeningFileHandler(logging.FileHandler):
    """A log file that `reopen()` closes and opens again by its name."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def under_journal(stream: object = None) -> bool:
    """Whether stderr is systemd's journal stream (JOURNAL_STREAM=DEVICE:INODE)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        info = os.fstat((stream or sys.stderr).fileno())  # type: ignore[attr-defined]
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


def setup(level: str, log_file: str) -> logging.Handler:
    """The daemon's logging: `log_file`, else the journal, else stderr."""
    handler: logging.Handler
    if log_file:
        handler = ReopeningFileHandler(log_file)
        handler.setFormatter(logging.Formatter(PLAIN))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter() if under_journal() else logging.Formatter(PLAIN))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return handler


def reopen() -> None:
    """Reopen every log file (SIGHUP, reload): follows a rotation."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ReopeningFileHandler):
            handler.reopen()
