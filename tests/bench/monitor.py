"""Latency from an attack record to its element in the kernel set, for the benchmarks.

The clock starts when the record is written (paced at a fixed rate) and
stops when `nft monitor` announces the element, so the figure includes
everything syslogban does in between.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable


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


def send_paced(targets: list[str], rate: int, send: Callable[[str], None]) -> dict[str, float]:
    """Call send(address) for each target at `rate` per second; return when each was sent."""
    sent: dict[str, float] = {}
    begin = time.perf_counter()
    for n, address in enumerate(targets):
        send(address)
        sent[address] = time.perf_counter()
        pause = begin + (n + 1) / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    return sent


def delays_ms(seen: dict[str, float], sent: dict[str, float]) -> list[float]:
    """Milliseconds from sending to the kernel set, for the addresses that arrived."""
    return sorted((seen[a] - stamp) * 1000 for a, stamp in sent.items() if a in seen)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
