"""The whole-stream deadline: it cancels a read that is under way, fails the next read
when it passed between reads, and never cancels the consumer's own work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bridge.providers._deadline import Deadline


async def _items(gates: list[asyncio.Event]) -> AsyncIterator[int]:
    for index, gate in enumerate(gates):
        await gate.wait()
        yield index


async def test_deadline_reads_items_before_it_passes() -> None:
    gates = [asyncio.Event() for _ in range(3)]
    for gate in gates:
        gate.set()
    deadline = Deadline(30)
    items = _items(gates)
    assert [await deadline.next(items) for _ in range(4)] == [0, 1, 2, None]
    deadline.close()


async def test_deadline_cancels_a_read_under_way() -> None:
    never = asyncio.Event()
    deadline = Deadline(0.05)
    with pytest.raises(TimeoutError):
        await deadline.next(_items([never]))
    # The task is not left cancelled: it goes on normally.
    assert asyncio.current_task() is not None
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)


async def test_deadline_passed_between_reads_fails_the_next_read() -> None:
    first = asyncio.Event()
    first.set()
    deadline = Deadline(0.05)
    items = _items([first, asyncio.Event()])
    assert await deadline.next(items) == 0
    # The consumer's own work outlasts the deadline and is not cancelled by it.
    expired = asyncio.Event()
    asyncio.get_running_loop().call_later(0.1, expired.set)
    await expired.wait()
    with pytest.raises(TimeoutError):
        await deadline.next(items)


async def test_deadline_lets_an_outer_cancellation_through() -> None:
    started = asyncio.Event()
    never = asyncio.Event()

    async def read() -> int | None:
        deadline = Deadline(30)

        async def items() -> AsyncIterator[int]:
            started.set()
            await never.wait()
            yield 1

        return await deadline.next(items())

    task = asyncio.create_task(read())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_deadline_without_a_limit_reads_to_the_end() -> None:
    gate = asyncio.Event()
    gate.set()
    deadline = Deadline(None)
    items = _items([gate])
    assert await deadline.next(items) == 0
    assert await deadline.next(items) is None
