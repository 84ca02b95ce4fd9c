"""The interface every firewall driver implements.

Rules of this file:
* A driver changes the firewall and reads it back; it decides nothing. What
  to block, and until when, comes from the blocker through the daemon.
* `apply` is one atomic operation: all changes of a batch take effect, or
  none does (and BackendError says why). The daemon retries a failed batch
  and never records it as applied.
* `start` never flushes what the firewall already holds: blocks outlive a
  restart of syslogban (sshguard drops them all).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..errors import SyslogbanError

PERMANENT = math.inf


class BackendError(SyslogbanError):
    """The firewall refused or could not be reached; the message says which."""


class Change(NamedTuple):
    block: bool      # True: block the target until `until`; False: unblock it
    target: str      # an address or a prefix (192.0.2.0/24), already validated
    until: float     # seconds since the epoch; PERMANENT for good; ignored on unblock


class Backend(ABC):
    name: str = "?"
    # Whether the firewall itself ends blocks at `until` (nftables timeouts).
    # Then the daemon need not unblock expired ones, and a dead daemon's
    # blocks still end on time.
    kernel_expiry: bool = False

    @abstractmethod
    def start(self) -> None:
        """Creates what is missing (tables, sets, chains); keeps what is there."""

    @abstractmethod
    def apply(self, changes: Sequence[Change], now: float) -> None:
        """Applies a batch atomically; raises BackendError and changes nothing on failure."""

    @abstractmethod
    def sync(self, active: Mapping[str, float], now: float) -> None:
        """Makes the firewall hold exactly `active` (target -> until), atomically."""

    @abstractmethod
    def list(self) -> dict[str, float]:
        """What the firewall holds now: target -> until (PERMANENT when it has none)."""

    @abstractmethod
    def stop(self, flush: bool = False) -> None:
        """Releases resources; removes every block only when `flush`."""
