"""The producer side of a generation log: batches chunks into few store round trips."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bridge.store.base import JSONDict, Outcome, SessionStore


class LogWriter:
    """Appends chunks to one generation's log.

    `write` never waits: it buffers the chunk and the flusher task appends everything
    buffered within `flush_interval` seconds in one round trip. Only one append is in
    flight at a time, so offsets stay in order. Offset 0 (`start`) was written by
    `begin_generation`, so the writer starts at 1.
    """

    def __init__(
        self,
        store: SessionStore,
        chat_id: str,
        generation_id: str,
        *,
        flush_interval: float,
        lease_renew_interval: float,
    ) -> None:
        self._store = store
        self._chat_id = chat_id
        self._generation_id = generation_id
        self._flush_interval = flush_interval
        self._lease_renew_interval = lease_renew_interval
        self._buffer: list[bytes] = []
        self._next_offset = 1  # offset of the first chunk in the buffer
        self._wakeup = asyncio.Event()
        self._failure: BaseException | None = None
        self._closing = False
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"log-flush-{generation_id}")

    @property
    def next_offset(self) -> int:
        """The offset the next written chunk will get."""
        return self._next_offset + len(self._buffer)

    def write(self, chunk: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        self._buffer.append(chunk)
        self._wakeup.set()

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_flush = loop.time()
        while not self._closing:
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._lease_renew_interval)
            except TimeoutError:
                # Nothing written for a while (a slow model, a long tool call): keep the
                # producer lease so nobody takes the generation for dead.
                await self._store.renew_lease(self._chat_id, self._generation_id, epoch=1)
                continue
            since = loop.time() - last_flush
            if not self._closing and since < self._flush_interval:
                # Open a batching window: tokens arriving within it share one round trip.
                await asyncio.sleep(self._flush_interval - since)
            await self._flush_once()
            last_flush = loop.time()
        await self._flush_once()

    async def _flush_once(self) -> None:
        self._wakeup.clear()
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        first = self._next_offset
        self._next_offset += len(batch)
        try:
            await self._store.append(self._chat_id, self._generation_id, first, batch, epoch=1)
        except BaseException as exc:
            self._failure = exc
            raise

    async def close(self, outcome: Outcome, messages: Sequence[JSONDict] | None) -> None:
        """Flush what is buffered, then write the end marker (and the final history).

        The flusher is asked to finish, never cancelled, so an append is never cut in
        half and no offset is skipped."""
        self._closing = True
        self._wakeup.set()
        try:
            await self._flusher
        except Exception as exc:  # the append failed: surface it below
            self._failure = self._failure or exc
        if self._failure is not None:
            raise self._failure
        await self._store.end_generation(
            self._chat_id, self._generation_id, self._next_offset, outcome, messages, epoch=1
        )
