"""Durations as admins write them: `30s`, `10m`, `2h`, `1d`, `1w`, `permanent`.

Pure. A bare number is seconds. `permanent` is infinity, so that comparisons
and `min()` with caps need no special case. Anything else is at most
MAX_DURATION: every duration enters through parse_duration (configuration,
command line, control socket), and a block of a million years would reach
the firewall, which refuses it (nftables: ERANGE), wedging every batch after
it; `permanent` is the word for good.
"""

from __future__ import annotations

import math
import re

PERMANENT = math.inf
MAX_DURATION = 3650 * 86400.0   # 10 years; nftables takes it (tried: up to ~100,000 days)
UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)", re.ASCII)


def parse_duration(text: str | int | float) -> float:
    """Seconds; raises ValueError with a message an admin understands."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        # JSON from the control socket may hold anything: a list, an object, null
        raise ValueError(f"{str(text)[:40]} is not a duration")
    if isinstance(text, (int, float)):
        if text < 0 or math.isnan(text):
            raise ValueError(f"{text!r} is not a duration (negative)")
        return _bounded(float(text), text)
    value = text.strip().lower()
    if value in ("permanent", "forever"):
        return PERMANENT
    m = _DURATION.fullmatch(value)
    if m is None:
        raise ValueError(f"{text!r} is not a duration: write e.g. 30s, 10m, 2h, 1d, 1w "
                         "or permanent")
    return _bounded(float(m.group(1)) * UNITS[m.group(2) or "s"], text)


def _bounded(seconds: float, text: object) -> float:
    if seconds > MAX_DURATION:  # infinity too: only the word means for good
        shown = str(text) if len(str(text)) <= 40 else "that duration"
        raise ValueError(f"{shown} is longer than {format_duration(MAX_DURATION)} (10 years): "
                         "write permanent for good")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of whole seconds, e.g. 7200 -> '2h'; 'permanent'."""
    if seconds == PERMANENT:
        return "permanent"
    seconds = round(seconds)
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds}s"
