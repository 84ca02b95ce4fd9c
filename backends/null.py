"""The null backend: a firewall that exists only in memory and in the log.

For trying syslogban out (`--dry-run`), for the demo without root, and as the
reference the tests hold real drivers to. It logs every change it would make.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ..durations import format_duration
from .base import Backend, Change

log = logging.getLogger("syslogban.backend.null")


class NullBackend(Backend):
    name = "null"
    kernel_expiry = False

    def __init__(self) -> None:
        self.held: dict[str, float] = {}
        self.batches = 0

    def start(self) -> None:
        log.info("null backend: no firewall is changed")

    def apply(self, changes: Sequence[Change], now: float) -> None:
        for change in changes:
            if change.block:
                self.held[change.target] = change.until
                log.info("would block %s for %s", change.target,
                         format_duration(max(0.0, change.until - now)))
            elif self.held.pop(change.target, None) is not None:
                log.info("would unblock %s", change.target)
        self.batches += 1

    def sync(self, active: Mapping[str, float], now: float) -> None:
        self.held = dict(active)
        log.info("would hold exactly %d blocks", len(self.held))

    def list(self) -> dict[str, float]:
        return dict(self.held)

    def stop(self, flush: bool = False) -> None:
        if flush:
            log.info("would remove all %d blocks", len(self.held))
            self.held.clear()
