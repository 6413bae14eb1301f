"""The producer side of a generation log: batches chunks into few store round trips."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import anyio

from bridge.errors import Fenced, GenerationNotFound, OffsetConflict, StoreError
from bridge.store.base import JSONDict, Outcome, SessionStore

logger = logging.getLogger("bridge.writer")

_RETRY_FIRST_SECONDS = 0.1
_RETRY_MAX_SECONDS = 2.0


class LogWriter:
    """Appends chunks to one generation's log (the handle shape of the agreed writer).

    `write` never waits: it buffers the chunk and `run` (a task its owner awaits in the
    generation's task group) appends everything buffered within `flush_interval` seconds
    in one round trip. Only one append is in flight at a time, so offsets stay in order.
    A failure for good (the generation is fenced or gone, or the store stayed down past
    the retries) is reported once through `on_failure`, and every later `write` raises it.
    """

    def __init__(
        self,
        store: SessionStore,
        chat_id: str,
        generation_id: str,
        *,
        epoch: int,
        next_offset: int,
        on_failure: Callable[[BaseException], None],
        flush_interval: float,
        lease_renew_interval: float,
        retry_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._chat_id = chat_id
        self._generation_id = generation_id
        self.epoch = epoch
        self._on_failure = on_failure
        self._flush_interval = flush_interval
        self._lease_renew_interval = lease_renew_interval
        self._retry_seconds = retry_seconds
        self._buffer: list[bytes] = []
        self._next_offset = next_offset  # offset of the first chunk in the buffer
        self._wakeup = asyncio.Event()
        self._flushed = asyncio.Event()
        self._failure: BaseException | None = None
        self._closing = False
        self._stopped = asyncio.Event()

    @property
    def next_offset(self) -> int:
        """The offset the next written chunk will get."""
        return self._next_offset + len(self._buffer)

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def write(self, chunk: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        self._buffer.append(chunk)
        self._flushed.clear()
        self._wakeup.set()

    async def drained(self) -> None:
        """Backpressure point of the agreed handle; this writer's buffer is never large."""
        if self._failure is not None:
            raise self._failure

    async def flushed(self) -> None:
        """Return once every chunk written so far was acknowledged by the store (raise the
        failure if there was one): what must be durable before a side effect starts."""
        while self._buffer and self._failure is None and not self._stopped.is_set():
            self._wakeup.set()
            await self._flushed.wait()
        if self._failure is not None:
            raise self._failure

    async def run(self) -> None:
        """The flush loop, owned by the generation's task group. Returns after `close` or
        `release` flushed the last chunks, or after a failure (reported to `on_failure`)."""
        loop = asyncio.get_running_loop()
        last_flush = loop.time()
        try:
            while not self._closing:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._lease_renew_interval)
                except TimeoutError:
                    # Nothing written for a while (a slow model, a long tool call): keep the
                    # producer lease so nobody takes the generation for dead.
                    await self._retrying(self._renew)
                    continue
                since = loop.time() - last_flush
                if not self._closing and since < self._flush_interval:
                    # Open a batching window: tokens arriving within it share one round trip.
                    await asyncio.sleep(self._flush_interval - since)
                await self._flush_once()
                last_flush = loop.time()
            await self._flush_once()
        except Exception as exc:
            self._fail(exc)
        finally:
            self._stopped.set()
            self._flushed.set()

    async def _renew(self) -> None:
        if not await self._store.producer_alive(self._chat_id, self._generation_id):
            raise Fenced(f"generation {self._generation_id}: the producer lease lapsed")
        await self._store.renew_lease(self._chat_id, self._generation_id)

    async def _flush_once(self) -> None:
        self._wakeup.clear()
        if not self._buffer:
            self._flushed.set()
            return
        batch = list(self._buffer)
        first = self._next_offset

        async def append() -> None:
            try:
                await self._store.append(self._chat_id, self._generation_id, first, batch)
            except OffsetConflict:
                # A retry after a dropped connection may find its own batch applied.
                read = await self._store.read(
                    self._chat_id, self._generation_id, first + len(batch) - 2, limit=2
                )
                if not (read.entries and read.entries[-1].offset == first + len(batch) - 1):
                    raise
                if read.entries[-1].data != batch[-1]:
                    raise

        await self._retrying(append)
        del self._buffer[: len(batch)]
        self._next_offset += len(batch)
        if not self._buffer:
            self._flushed.set()

    async def _retrying(self, operation: Callable[[], object]) -> None:
        """Run `operation`, retrying a store error (not a refusal) with backoff for up to
        `retry_seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_seconds
        delay = _RETRY_FIRST_SECONDS
        while True:
            try:
                await operation()  # type: ignore[misc]
                return
            except (Fenced, OffsetConflict, GenerationNotFound):
                raise
            except StoreError:
                if loop.time() + delay > deadline:
                    raise
                logger.warning("store error on %s; retrying", self._generation_id, exc_info=True)
                await anyio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_SECONDS)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
            self._on_failure(exc)

    async def _finish_run(self) -> None:
        self._closing = True
        self._wakeup.set()
        await self._stopped.wait()
        if self._failure is not None:
            raise self._failure

    async def close(self, outcome: Outcome, messages: Sequence[JSONDict] | None) -> None:
        """Flush what is buffered, then write the end marker (and the final history).

        The flush loop is asked to finish, never cancelled, so an append is never cut in
        half and no offset is skipped."""
        await self._finish_run()
        await self._retrying(self._end(outcome, messages))

    def _end(self, outcome: Outcome, messages: Sequence[JSONDict] | None) -> Callable[[], object]:
        async def end() -> None:
            await self._store.end_generation(
                self._chat_id, self._generation_id, self._next_offset, outcome, messages
            )

        return end

    async def release(self) -> None:
        """Flush, keep the log open and drop the lease: another process takes over."""
        await self._finish_run()
        await self._store.release_lease(self._chat_id, self._generation_id, epoch=self.epoch)
