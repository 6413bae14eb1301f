"""The reader side of a generation log: the ONE follow-and-recover loop that SSE,
WebSocket, long-poll and stop all use.

A reader replays with range reads from its offset, then joins the process-wide hub's
live fan-out (`bridge/log/hub.py`) at the offset it reached. Whenever it sees a gap (it
was detached for being slow, or a notification was lost) it catches up with range reads
again. When nothing arrived for a heartbeat it asks the hub's shared probe whether the
producer is alive; a dead producer's log is handed to `recover` (the caller's takeover).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from bridge.log.hub import Detached, EndOfLog, LogHub
from bridge.store.base import LogEntry

logger = logging.getLogger("bridge.reader")

Recover = Callable[[str, str], Awaitable[None]]


class Gauge(Protocol):
    """What counts the live readers (a metrics gauge)."""

    def inc(self) -> None: ...

    def dec(self) -> None: ...


async def follow(
    hub: LogHub,
    chat_id: str,
    generation_id: str,
    after: int,
    *,
    heartbeat: float,
    recover: Recover | None = None,
    batch: int = 512,
    gauge: Gauge | None = None,
) -> AsyncGenerator[list[LogEntry] | None]:
    """Yield the log's entries after `after` in batches, live, until the end marker.

    Yields None when nothing arrived for `heartbeat` seconds, so the caller can keep its
    connection warm. Raises GenerationNotFound when the log is gone (expired or unknown).
    When the producer's lease has run out with the log still open, the producer died:
    `recover` takes the log over (or closes it) and reading goes on to its end.
    Raises HandedOver when this process handed its generations over (draining): the
    client resumes on another process. `gauge` counts the reader while it reads.
    """
    store = hub.store
    if gauge is not None:
        gauge.inc()
    with _counted(gauge), hub.subscribe(chat_id, generation_id) as subscription:
        subscription.position = after
        tail = subscription.tail
        behind = True
        while True:
            if behind:
                hub.check_handed_over()
                # Attach first, then read: anything fanned out after this read is queued.
                subscription.reattach()
                read = await store.read(chat_id, generation_id, after, limit=batch)
                if read.entries:
                    after = subscription.position = read.entries[-1].offset
                    yield read.entries
                if read.ended:
                    return
                if len(read.entries) < batch:
                    behind = False
                    if read.entries:  # a position the log confirmed, not the caller's word
                        tail.reached(after)
                continue
            item = await subscription.next(heartbeat)
            if isinstance(item, Detached):
                behind = True
            elif isinstance(item, EndOfLog):
                if item.offset == after + 1:
                    return
                behind = True  # entries before the end are missing here
            elif item is not None:
                fresh = [entry for entry in item if entry.offset > after]
                if fresh and fresh[0].offset != after + 1:
                    behind = True  # a gap: the log has it
                elif fresh:
                    after = subscription.position = fresh[-1].offset
                    yield fresh
            elif not await tail.probe(heartbeat / 2):
                behind = True
                if recover is not None:
                    async with tail.recover_lock:
                        # One recovery per log in this process; the others find its end
                        # (or the new producer's entries) and go on reading.
                        head = await store.read(chat_id, generation_id, after, limit=1)
                        if (
                            head.entries
                            or head.ended
                            or await store.producer_alive(chat_id, generation_id)
                        ):
                            continue
                        logger.warning("generation %s has no live producer", generation_id)
                        await recover(chat_id, generation_id)
            else:
                yield None


@contextmanager
def _counted(gauge: Gauge | None) -> Iterator[None]:
    try:
        yield
    finally:
        if gauge is not None:
            gauge.dec()
