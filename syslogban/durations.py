"""Durations as admins write them: `30s`, `10m`, `2h`, `1d`, `1w`, `permanent`.

Pure. A bare number is seconds. `permanent` is infinity, so that comparisons
and `min()` with caps need no special case.
"""

from __future__ import annotations

import math
import re

PERMANENT = math.inf
UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)", re.ASCII)


def parse_duration(text: str | int | float) -> float:
    """Seconds; raises ValueError with a message an admin understands."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, (int, float)):
        if text < 0 or math.isnan(text):
            raise ValueError(f"{text!r} is not a duration (negative)")
        return float(text)
    value = text.strip().lower()
    if value in ("permanent", "forever"):
        return PERMANENT
    m = _DURATION.fullmatch(value)
    if m is None:
        raise ValueError(f"{text!r} is not a duration: write e.g. 30s, 10m, 2h, 1d, 1w "
                         "or permanent")
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of whole seconds, e.g. 7200 -> '2h'; 'permanent'."""
    if seconds == PERMANENT:
        return "permanent"
    seconds = round(seconds)
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds}s"
