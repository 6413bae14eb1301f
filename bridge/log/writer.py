"""The producer side of the generation logs: ONE writer per process.

    generation A --write(chunk)--\\
    generation B --write(chunk)---> LogWriter --(one pipelined round trip per window)--> store
    generation C --write(chunk)--/       | acknowledged entries
                                         v
                                   LogHub (readers in this process, from memory)

Each generation gets a handle (`LogWriter.open`) with its own buffer, next offset and epoch.
The writer's one task (`run`, owned by the application's lifespan) waits for any write,
lets a batching window pass, then sends every non-empty buffer, plus the lease renewals
that are due, in one `append_many` round trip. Each append names its offset and epoch, so
the store refuses a fenced producer and a retry of an append whose reply was lost counts
once; a failed round trip is retried for a while, then the failure reaches the
generation through its `on_failure` callback (and its next `write`).

Memory is bounded: a generation whose buffer holds more than `max_buffered` chunks is
asked to wait (`await handle.drained()`) until the store caught up.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from bridge.errors import Fenced, GenerationNotFound, OffsetConflict, StoreError
from bridge.log.hub import LogHub
from bridge.store.base import Append, JSONDict, LogEntry, Outcome, SessionStore

logger = logging.getLogger("bridge.writer")

OnFailure = Callable[[BaseException], None]
_T = TypeVar("_T")

_MAX_CHUNKS_PER_APPEND = 1024
"""A generation's share of one round trip; the rest goes in the next one."""


class GenerationLog:
    """One generation's handle on the process writer. Offset 0 (`start`) was written by
    `begin_generation`, so a new generation starts at 1."""

    def __init__(
        self,
        writer: LogWriter,
        chat_id: str,
        generation_id: str,
        *,
        epoch: int,
        next_offset: int,
        on_failure: OnFailure | None,
    ) -> None:
        self._writer = writer
        self.chat_id = chat_id
        self.generation_id = generation_id
        self.epoch = epoch
        self._on_failure = on_failure
        self._acked = next_offset  # offset of the first chunk not acknowledged yet
        self._pending: list[bytes] = []
        self._in_flight: list[bytes] = []
        self._failure: BaseException | None = None
        self._progress = asyncio.Event()
        self._closed = False
        self._ended = False  # the end marker written, or the lease released
        self.renew_at = 0.0

    @property
    def next_offset(self) -> int:
        """The offset the next written chunk will get."""
        return self._acked + len(self._in_flight) + len(self._pending)

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def write(self, chunk: bytes) -> None:
        """Buffer one chunk; never waits (see `drained`). Raises the failure, if any."""
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise RuntimeError(f"the log of {self.generation_id} is closed")
        self._pending.append(chunk)
        self._writer.wake()

    async def drained(self) -> None:
        """Return once the buffer is below the writer's limit (backpressure: a producer
        that awaits this reads its provider stream no faster than the store takes it)."""
        while self._failure is None and self._backlog() > self._writer.max_buffered:
            await self._wait_progress()

    async def flushed(self) -> None:
        """Return once every written chunk is acknowledged; raises the failure, if any."""
        while self._failure is None and self._backlog():
            await self._wait_progress()
        if self._failure is not None:
            raise self._failure

    async def close(self, outcome: Outcome, messages: Sequence[JSONDict] | None) -> None:
        """Flush, then write the end marker (with the final history) under this epoch."""
        try:
            await self.flushed()
            offset = self.next_offset
            # Retried like appends: an end whose reply was lost finds itself written.
            await self._writer.retrying(
                lambda: self._writer.store.end_generation(
                    self.chat_id, self.generation_id, offset, outcome, messages, epoch=self.epoch
                )
            )
            self._ended = True
            self._writer.hub.ended(self.chat_id, self.generation_id, offset, outcome)
        finally:
            self._writer.forget(self)

    async def release(self) -> None:
        """Flush, stop renewing and drop the lease, leaving the log open (hand-over on
        drain: another process takes over at once instead of after the lease's time)."""
        try:
            await self.flushed()
        finally:
            self._writer.forget(self)
        await self._writer.retrying(
            lambda: self._writer.store.release_lease(
                self.chat_id, self.generation_id, epoch=self.epoch
            )
        )
        self._ended = True

    def abandon(self) -> bool:
        """Give the log up where it is: nothing more is written or renewed (a hung end);
        its lease lapses and takeover decides. False when its end marker was written or
        its lease released already (nothing to give up)."""
        self._writer.forget(self)
        return not self._ended

    # --- used by the writer ---------------------------------------------------------------------

    def _backlog(self) -> int:
        return len(self._pending) + len(self._in_flight)

    async def _wait_progress(self) -> None:
        self._progress.clear()
        await self._progress.wait()

    def take(self, renew_due: bool) -> Append | None:
        """This generation's part of the next round trip, if any."""
        if self._failure is not None or self._in_flight:
            return None
        if self._pending:
            self._in_flight = self._pending[:_MAX_CHUNKS_PER_APPEND]
            del self._pending[: len(self._in_flight)]
        elif not renew_due:
            return None
        return Append(
            self.chat_id,
            self.generation_id,
            self._acked,
            self._in_flight,
            self.epoch,
            renew=renew_due,
        )

    def acknowledged(self, renew_at: float | None) -> list[LogEntry]:
        """The round trip stored the chunks in flight; `renew_at`: it renewed the lease too,
        the next renewal is due then (None: it did not, the one scheduled stays)."""
        entries = [LogEntry(self._acked + i, data) for i, data in enumerate(self._in_flight)]
        self._acked += len(self._in_flight)
        self._in_flight = []
        if renew_at is not None:
            self.renew_at = renew_at
        self._progress.set()
        return entries

    def fail(self, exc: BaseException) -> None:
        if self._failure is not None:
            return
        self._failure = exc
        self._progress.set()
        if self._on_failure is not None:
            try:
                self._on_failure(exc)
            except Exception:
                logger.exception("on_failure of %s raised", self.generation_id)

    def mark_closed(self) -> None:
        self._closed = True


_FULL_WINDOW_AT = 32
"""Generations writing at once from which the batching window is the whole
`BRIDGE_FLUSH_MS` (fewer: proportionally shorter)."""


class LogWriter:
    """The process-wide writer. `run()` is one task of the application's lifespan."""

    def __init__(
        self,
        store: SessionStore,
        hub: LogHub,
        *,
        flush_interval: float,
        lease_renew_interval: float,
        max_buffered: int = 2048,
        retry_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.hub = hub
        self.max_buffered = max_buffered
        self._flush_interval = flush_interval
        self._renew_interval = lease_renew_interval
        self._retry_seconds = retry_seconds
        self._logs: set[GenerationLog] = set()
        self._wakeup = asyncio.Event()
        self.round_trips = 0
        """Round trips sent so far (for measurements)."""

    def open(
        self,
        chat_id: str,
        generation_id: str,
        *,
        epoch: int,
        next_offset: int = 1,
        on_failure: OnFailure | None = None,
    ) -> GenerationLog:
        log = GenerationLog(
            self,
            chat_id,
            generation_id,
            epoch=epoch,
            next_offset=next_offset,
            on_failure=on_failure,
        )
        log.renew_at = asyncio.get_running_loop().time() + self._renew_interval
        self._logs.add(log)
        self.hub.producing(chat_id, generation_id, True)
        return log

    def forget(self, log: GenerationLog) -> None:
        log.mark_closed()
        if log in self._logs:
            self._logs.discard(log)
            self.hub.producing(log.chat_id, log.generation_id, False)

    def wake(self) -> None:
        self._wakeup.set()

    @property
    def open_logs(self) -> int:
        return len(self._logs)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_flush = -math.inf
        while True:
            next_renewal = min(
                (log.renew_at for log in self._logs if log.failure is None), default=None
            )
            timeout = None if next_renewal is None else max(0.0, next_renewal - loop.time())
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            else:
                # The batching window: the chunks every generation writes within it share
                # one round trip, and each generation's share reaches its readers as one
                # batch (one fan-out, one write per client), so the per-window costs are
                # paid per batch, not per chunk. It widens with the number of generations
                # writing (full at `_FULL_WINDOW_AT`): a lone answer is not held back, a
                # busy process batches. Under load it also stretches with the event loop's
                # lag, so batches grow as the process gets busier rather than round trips.
                # A chunk after a quiet spell (no round trip for two windows) goes at once.
                window = self._flush_interval * min(1.0, len(self._logs) / _FULL_WINDOW_AT)
                if loop.time() - last_flush < 2 * window:
                    await asyncio.sleep(window)
            self._wakeup.clear()
            await self.flush_once()
            last_flush = loop.time()

    async def flush_once(self) -> None:
        """One round trip with everything buffered and the renewals due."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        batch: list[tuple[GenerationLog, Append]] = []
        for log in list(self._logs):
            item = log.take(renew_due=log.renew_at <= now)
            if item is not None:
                batch.append((log, item))
        if not batch:
            return
        appends = [item for _, item in batch]
        try:
            results = await self._send(appends)
        except Exception:
            # Not an outage (a StoreError, retried in `_send`): a bug or an answer nobody
            # expected. It must not end the writer, which every generation of the process
            # shares: each log is sent alone, so only the ones that fail again fail.
            logger.exception("a batch of %d appends failed unexpectedly; one by one", len(batch))
            results = [await self._send_alone(append) for append in appends]
        renew_at = loop.time() + self._renew_interval
        for (log, append), result in zip(batch, results, strict=True):
            if result is None:
                entries = log.acknowledged(renew_at if append.renew else None)
                if entries:
                    self._publish(log, entries)
            else:
                log.fail(result)
        if any(log._pending for log in self._logs):
            self._wakeup.set()  # more came in during the round trip

    async def _send(self, appends: list[Append]) -> Sequence[BaseException | None]:
        """`append_many`, retried while the round trip itself fails (each append is
        idempotent); when that lasts `retry_seconds`, every append fails with the error."""

        async def round_trip() -> list[StoreError | None]:
            self.round_trips += 1
            return await self.store.append_many(appends)

        try:
            return await self.retrying(round_trip)
        except StoreError as exc:
            return [exc] * len(appends)

    async def _send_alone(self, append: Append) -> BaseException | None:
        try:
            return (await self._send([append]))[0]
        except Exception as exc:
            logger.exception("the append of %s failed unexpectedly", append.generation_id)
            return exc

    def _publish(self, log: GenerationLog, entries: list[LogEntry]) -> None:
        try:
            self.hub.published(log.chat_id, log.generation_id, entries)
        except Exception:
            # The entries are stored: the log's readers find them with range reads.
            logger.exception("handing %s's entries to its readers failed", log.generation_id)

    async def retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """`call()` again, with backoff, while it fails with a plain StoreError (the store
        was unreachable: nothing is known), at most `retry_seconds`. Refusals (Fenced,
        OffsetConflict, GenerationNotFound) are answers, never retried. Only for calls
        that are idempotent: appends and ends name their offset and epoch."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_seconds
        delay = 0.05
        while True:
            try:
                return await call()
            except (Fenced, OffsetConflict, GenerationNotFound):
                raise
            except StoreError as exc:
                if loop.time() + delay > deadline:
                    logger.error("the store failed for %s s: giving up", self._retry_seconds)
                    raise
                logger.warning("store round trip failed, retrying: %s", exc)
            await asyncio.sleep(delay)  # backoff before the retry
            delay = min(delay * 2, 1.0)
