"""The whole-stream deadline of a provider call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from bridge.errors import ProviderUnavailable

T = TypeVar("T")


class Deadline:
    """The whole-stream time limit (`PROVIDER_TIMEOUT_SECONDS`).

    The SDKs' own timeouts are per read, so a provider trickling tokens forever would
    never time out. The limit is applied around each read only (not across our `yield`s),
    so the time the consumer spends between events is never cancelled by it.

    One timer for the whole stream rather than a timeout scope per read: a read is made
    per event, and at paced rates the scope's set-up was a visible share of the CPU. The
    timer cancels the reading task only while it is inside a read; one that fires between
    reads makes the next read fail at once.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._at = None if seconds is None else asyncio.get_running_loop().time() + seconds
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._reading = False
        self._expired = False
        self._cancelled = False

    async def next(self, iterator: AsyncIterator[T]) -> T | None:
        """The next item, None at the end; TimeoutError past the deadline."""
        if self._at is None:
            try:
                return await anext(iterator)
            except StopAsyncIteration:
                return None
        if self._expired:
            raise TimeoutError
        if self._timer is None:
            self._task = asyncio.current_task()
            self._timer = asyncio.get_running_loop().call_at(self._at, self._expire)
        task = self._task
        assert task is not None
        cancelling = task.cancelling()
        self._reading = True
        try:
            return await anext(iterator)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            if self._cancelled:
                self._cancelled = False
                # Ours, unless somebody else cancelled the task as well.
                if task.uncancel() <= cancelling:
                    raise TimeoutError from None
            raise
        finally:
            self._reading = False

    def _expire(self) -> None:
        self._expired = True
        if self._reading and self._task is not None:
            self._cancelled = True
            self._task.cancel()

    def close(self) -> None:
        """Drop the timer (the stream ended before the deadline)."""
        if self._timer is not None:
            self._timer.cancel()

    def error(self, *, provider: str, label: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"{label} did not finish within {self.seconds:g} s", provider=provider
        )
