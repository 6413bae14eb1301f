"""The reader side of a generation log: every response is one of these."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from bridge.store.base import LogEntry, SessionStore
from protocol.sse import DONE_EVENT, comment, encode_event
from protocol.text_stream import text_of_chunk

logger = logging.getLogger("bridge.reader")

Recover = Callable[[str, str], Awaitable[None]]


async def follow(
    store: SessionStore,
    chat_id: str,
    generation_id: str,
    after: int,
    *,
    heartbeat: float,
    recover: Recover | None = None,
    batch: int = 512,
) -> AsyncIterator[list[LogEntry] | None]:
    """Yield the log's entries after `after` in batches, live, until the end marker.

    Yields None when nothing arrived for `heartbeat` seconds, so the caller can keep its
    connection warm. Raises GenerationNotFound when the log is gone (expired or unknown).
    When the producer's lease has run out with the log still open, the producer died:
    `recover` closes the log on its behalf and reading goes on to its end.
    """
    live = False
    while True:
        read = await store.read(
            chat_id, generation_id, after, limit=batch, wait=heartbeat, live=live
        )
        live = True
        if read.entries:
            after = read.entries[-1].offset
            yield read.entries
        if read.ended:
            return
        if read.entries:
            continue
        if recover is not None and not await store.producer_alive(chat_id, generation_id):
            logger.warning("generation %s has no live producer: closing it", generation_id)
            await recover(chat_id, generation_id)
            continue
        yield None


async def sse_stream(entries: AsyncIterator[list[LogEntry] | None]) -> AsyncIterator[bytes]:
    """The UI message stream: one SSE event per chunk, `id:` = the chunk's offset."""
    async for batch in entries:
        if batch is None:
            yield comment("keep-alive")
        else:
            yield b"".join([encode_event(entry.data, entry.offset) for entry in batch])
    yield DONE_EVENT


async def text_stream(entries: AsyncIterator[list[LogEntry] | None]) -> AsyncIterator[bytes]:
    """The plain text protocol: only the text of `text-delta` chunks."""
    async for batch in entries:
        if batch is None:
            continue
        pieces = [text for entry in batch if (text := text_of_chunk(entry.data))]
        if pieces:
            yield b"".join(pieces)
