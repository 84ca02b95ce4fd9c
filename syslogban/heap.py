"""The cyclic garbage collector, set for a stream of short-lived records.

Why: every candidate line allocates a few container objects (its record,
attack, detection, attempt) that reference counting frees at once; the
collector still walked the young generation every 700 allocations, and
the older ones as they filled: a tenth of the detection pipeline's CPU
time, 5 % of `check`'s on a million-line log (measured). Nothing of the
pipeline forms reference cycles, so walking less often keeps no more
memory; what start-up built (the rules, compiled patterns, imported
modules) is frozen: no collection walks it again.
"""

from __future__ import annotations

import gc

YOUNG = 50_000  # allocations between collections of the young generation (default 700)


def settle() -> None:
    """Called once start-up is done, by the commands that read a stream
    (check, the daemon): never in a library user's process."""
    gc.freeze()
    gc.set_threshold(YOUNG, *gc.get_threshold()[1:])
