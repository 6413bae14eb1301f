"""The reader side of a generation log: every response is one of these."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from bridge.store.base import LogEntry, SessionStore

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
