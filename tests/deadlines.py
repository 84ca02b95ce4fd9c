"""Deadlines for tests that wait in asyncio: a scenario that hangs fails with
what it was waiting for; it never holds the suite (and CI) for ever.

* until(condition, what): polls; fails naming `what` when time is up.
* bounded(awaitable, what): the same for one awaited step (a stop, say).
* run(body): a scenario in an event loop of its own, with a deadline for the
  whole of it. Whatever way it ends, the tasks it left are cancelled and
  given a few seconds; one that ignores its cancel is named, with where it
  stands, in the failure, and never waited for (asyncio.run would wait for
  it without end).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
SCENARIO = 120.0   # seconds a whole scenario may take
LEFTOVERS = 5.0    # seconds the tasks it left get to end once cancelled


async def until(condition: Callable[[], Any], what: str, timeout: float = 15.0,
                detail: Callable[[], Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            more = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{more}")
        await asyncio.sleep(0.01)


async def bounded(step: Awaitable[T], what: str, timeout: float = 15.0) -> T:
    try:
        async with asyncio.timeout(timeout):
            return await step
    except TimeoutError:
        raise AssertionError(f"{what} did not end within {timeout:.0f} s") from None


def run(body: Callable[[], Awaitable[None]], timeout: float = SCENARIO) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_scenario(body, timeout))
    finally:
        loop.close()  # tasks that ignored their cancel were named above; never awaited


async def _scenario(body: Callable[[], Awaitable[None]], timeout: float) -> None:
    try:
        await bounded(body(), "the scenario", timeout)
    finally:
        stuck = await _cancel_leftovers()
        if stuck:
            raise AssertionError(f"{len(stuck)} task(s) ran on after their cancel:\n{stuck}")


async def _cancel_leftovers() -> str:
    """The tasks still running after LEFTOVERS seconds, with their stacks."""
    leftovers = asyncio.all_tasks() - {asyncio.current_task()}
    for task in leftovers:
        task.cancel()
    if not leftovers:
        return ""
    _, pending = await asyncio.wait(leftovers, timeout=LEFTOVERS)
    text = io.StringIO()
    for task in pending:
        task.print_stack(file=text)
    return text.getvalue()
