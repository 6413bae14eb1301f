"""Bounded waits on a condition, for what offers no event to wait on (another process's
state, a file another process writes, a server's counters). A wait that times out fails the
test with what it waited for; none waits unbounded and none is a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

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
