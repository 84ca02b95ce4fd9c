"""When each address first shows up in the kernel set, as seen by `nft monitor`.

Shared by the latency benchmarks: the clock starts when the record is
written and stops when the kernel announces the element, so the figure
includes everything syslogban does in between.
"""

from __future__ import annotations

import subprocess
import threading
import time


def watch_elements(command: list[str]) -> tuple[subprocess.Popen[str], dict[str, float]]:
    """Start `command` (an `nft monitor elements`, maybe wrapped) and record first sightings.

    Returns the monitor process (the caller terminates it) and the map
    address -> perf_counter() stamp, filled from a background thread.
    """
    seen: dict[str, float] = {}
    monitor = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def watch() -> None:
        assert monitor.stdout is not None
        for line in monitor.stdout:
            if line.startswith("add element inet syslogban hosts4"):
                stamp = time.perf_counter()
                for part in line.split("{", 1)[1].split(","):
                    seen.setdefault(part.split()[0], stamp)

    threading.Thread(target=watch, daemon=True).start()
    return monitor, seen
