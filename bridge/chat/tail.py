"""The chat-level live tail: follow a chat, not one generation.

Every generation start is announced on the chat's generation feed in the store (a record
with the generation id, its assistant message id and the user message that started it),
right after `begin_generation`. A tail:

1. sends the current state: the running generation (if any), from its first chunk;
2. then waits on the feed (a blocking store read, never polling) and follows each newly
   announced generation: first a `data-user-message` event, then the generation's chunks
   up to its end; across turns, until the client leaves.

Every event carries a position `<generationId>:<offset>` (offset -1: the user-message
event). A client that reconnects with it (SSE `Last-Event-ID`, `?cursor=`) continues right
after that event and then with every generation announced after that one: nothing is lost
and nothing repeats.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.chat.operations import follow_generation
from bridge.errors import GenerationNotFound, RequestError
from bridge.services import Services

logger = logging.getLogger("bridge.tail")

USER_MESSAGE_CHUNK_TYPE = "data-user-message"
_MAX_POSITION_LENGTH = 240


@dataclass(frozen=True, slots=True)
class TailEvent:
    """One event of the tail: `data` is a UI message chunk's JSON bytes (None: heartbeat)."""

    generation_id: str
    offset: int
    data: bytes | None

    @property
    def position(self) -> str:
        return f"{self.generation_id}:{self.offset}"


HEARTBEAT = TailEvent("", 0, None)
READY = TailEvent("", 0, None)
"""Sent once, when the tail has taken the chat's state: every later generation reaches it."""


def parse_position(value: str | None) -> tuple[str, int] | None:
    """`<generationId>:<offset>` (as sent in the tail's event ids), or None for none."""
    if value is None or value == "":
        return None
    generation_id, sep, offset = value.rpartition(":")
    if not sep or not generation_id or len(value) > _MAX_POSITION_LENGTH:
        raise RequestError("a live-tail position looks like <generationId>:<offset>")
    try:
        number = int(offset)
    except ValueError:
        raise RequestError("a live-tail position ends with an integer offset") from None
    if number < -1:
        raise RequestError("a live-tail offset is >= -1")
    return generation_id, number


def user_message_chunk(record: dict[str, Any]) -> bytes:
    """The event that opens a generation on the tail: a transient data chunk (a `useChat`
    client that gets it by mistake ignores it; a tail client adds the user message)."""
    return orjson.dumps(
        {
            "type": USER_MESSAGE_CHUNK_TYPE,
            "id": record["generationId"],
            "transient": True,
            "data": {
                "generationId": record["generationId"],
                "messageId": record.get("messageId"),
                "message": record.get("userMessage"),
            },
        }
    )


async def tail_chat(
    services: Services, chat_id: str, resume: tuple[str, int] | None, *, current: bool = True
) -> AsyncIterator[TailEvent]:
    """The tail's events (HEARTBEAT when nothing happened for a heartbeat interval).
    `current=False` leaves out the generation running when the tail starts (a page that
    resumes it by itself wants only the turns that start later)."""
    store = services.store
    heartbeat = services.settings.bridge_heartbeat_seconds
    feed = [
        (position, orjson.loads(data))
        for position, data in await store.read_generations(chat_id, 0)
    ]
    records = {str(record.get("generationId")): (position, record) for position, record in feed}
    cursor = feed[-1][0] if feed else 0
    followed: set[str] = set()

    first: tuple[str, int, dict[str, Any] | None] | None = None
    if resume is not None:
        generation_id, after = resume
        known = records.get(generation_id)
        if known is not None:
            cursor = known[0]
            first = (generation_id, after, known[1])
    elif current:
        chat = await store.get_chat(chat_id)
        if chat is not None and chat.active_generation_id is not None:
            generation_id = chat.active_generation_id
            known = records.get(generation_id)
            if known is not None:
                cursor = known[0]
            first = (generation_id, -2, known[1] if known else None)
    yield READY
    if first is not None:
        generation_id, after, record = first
        followed.add(generation_id)
        async for event in _follow(services, chat_id, generation_id, after, record):
            yield event

    while True:
        arrived = await store.read_generations(chat_id, cursor, wait=heartbeat)
        if not arrived:
            yield HEARTBEAT
            continue
        for position, data in arrived:
            cursor = position
            record = orjson.loads(data)
            generation_id = str(record.get("generationId"))
            if generation_id in followed:
                continue
            followed.add(generation_id)
            async for event in _follow(services, chat_id, generation_id, -2, record):
                yield event


async def _follow(
    services: Services,
    chat_id: str,
    generation_id: str,
    after: int,
    record: dict[str, Any] | None,
) -> AsyncIterator[TailEvent]:
    """One generation: its user-message event (unless `after` >= -1: sent already), then its
    chunks after `after` until its end. A log past its retention is skipped."""
    if after < -1:
        if record is not None:
            yield TailEvent(generation_id, -1, user_message_chunk(record))
        after = -1
    try:
        async for batch in follow_generation(services, chat_id, generation_id, after):
            if batch is None:
                yield HEARTBEAT
                continue
            for entry in batch:
                yield TailEvent(generation_id, entry.offset, entry.data)
    except GenerationNotFound:
        logger.info("live tail of %s: generation %s is gone", chat_id, generation_id)
