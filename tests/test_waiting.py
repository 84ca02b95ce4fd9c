"""wait_event: a task looping on it always ends when cancelled, even when the
event fires in the same turn (asyncio.wait_for of Python 3.11 loses that
cancel, and a loop around it runs on: the fleet tests' hang)."""

from __future__ import annotations

import asyncio

import pytest

from syslogban.waiting import wait_event


async def _loop_on(event: asyncio.Event, timeout: float | None) -> None:
    """The shape of the fleet's sender and follower: wake, work, wait again."""
    while True:
        await wait_event(event, timeout)
        event.clear()


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize("timeout", [1.0, None])
def test_a_cancel_that_meets_the_event_ends_the_task(turns: int, timeout: float | None) -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        task = asyncio.create_task(_loop_on(event, timeout))
        await asyncio.sleep(0.01)
        event.set()
        for _ in range(turns):  # the waiter is woken, not yet resumed
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2.0)
        task.cancel()  # never leave it running, whatever happened
        assert done and task.cancelled(), f"the task ran on after its cancel ({turns} turns)"
    asyncio.run(scenario())


def test_it_says_whether_the_event_came_or_the_time_ran_out() -> None:
    async def scenario() -> tuple[bool, bool]:
        event = asyncio.Event()
        late = await wait_event(event, 0.01)
        asyncio.get_running_loop().call_later(0.01, event.set)
        return late, await wait_event(event, 5.0)
    assert asyncio.run(scenario()) == (False, True)
