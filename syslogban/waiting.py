"""Waiting for an asyncio event with a time limit, without losing a cancellation.

Rules of this file:
* The one way a long-running task of the daemon (the fleet's sender and
  follower, ...) sleeps until it is woken or its time is up. Not
  asyncio.wait_for: in Python 3.11 (Debian 12's) it loses a cancellation
  that arrives while the awaited event fires (CPython gh-86296, fixed only by
  3.12's rewrite): the cancel comes back as TimeoutError, or as a normal
  return, and a loop around it runs on; whoever waits for the task to end
  (a daemon stopping, a test) waits forever.
* asyncio.timeout() (3.11) tells its own expiry from a cancellation from
  outside (Task.uncancel), so a cancel always ends the task.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Until `event` is set (True) or `timeout` seconds passed (False; None: no limit)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
