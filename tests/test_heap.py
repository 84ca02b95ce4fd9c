"""heap.settle: the collector set for a stream (tested in a process of its own:
it changes the interpreter's collector for good)."""

from __future__ import annotations

import subprocess
import sys

from syslogban import heap

SCRIPT = """
import gc
from syslogban import heap
before = gc.get_threshold()
heap.settle()
print(before[0], *gc.get_threshold(), gc.get_freeze_count() > 0, before[1:] == gc.get_threshold()[1:])
"""


def test_settle_freezes_start_up_and_widens_the_young_generation() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "700" and int(out[1]) == heap.YOUNG
    assert out[4:] == ["True", "True"]  # start-up frozen, the older generations as they were
