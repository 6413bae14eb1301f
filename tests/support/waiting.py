"""Bounded waits on a condition, for what offers no event to wait on (another process's
state, a file another process writes, a server's counters, a task parked in a wait). A wait
that times out fails the test with what it waited for; none waits unbounded and none is a
bare sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

POLL_SECONDS = 0.02


def wait_until(condition_met: Callable[[], object], seconds: float, what: str) -> None:
    """Poll `condition_met()` until truthy; AssertionError naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition_met():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(POLL_SECONDS)


async def until(
    condition_met: Callable[[], object | Awaitable[object]], seconds: float, what: str
) -> None:
    """`wait_until` inside an event loop (the loop keeps running between polls); the
    condition may be a coroutine function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        met = condition_met()
        if isinstance(met, Awaitable):
            met = await met
        if met:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(POLL_SECONDS)


_EVENT_WAIT = asyncio.Event.wait.__code__


def parked_on_event(task: asyncio.Task[Any]) -> bool:
    """Whether `task` is suspended inside `asyncio.Event.wait` on an event not yet set: the
    primitive every session store parks a blocked read or stop wait on. Walks the chain of
    coroutines the task awaits (`cr_await`), so it sees the wait however deep it is."""
    awaited: Any = task.get_coro()
    while inspect.iscoroutine(awaited):
        if awaited.cr_code is _EVENT_WAIT and awaited.cr_frame is not None:
            event = awaited.cr_frame.f_locals["self"]
            return isinstance(event, asyncio.Event) and not event.is_set()
        awaited = awaited.cr_await
    return False


async def parked(*tasks: asyncio.Task[Any], seconds: float = 10.0) -> None:
    """Until every task is parked on an `asyncio.Event` (see `parked_on_event`); fails when
    one finished instead, or after `seconds`."""

    def all_parked() -> bool:
        for task in tasks:
            if task.done():
                raise AssertionError(f"{task.get_name()} ended instead of waiting: {task!r}")
        return all(parked_on_event(task) for task in tasks)

    await until(all_parked, seconds, "tasks parked on their wake-up events")
