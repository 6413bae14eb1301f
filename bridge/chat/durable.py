"""Pages of a generation's log and of a chat's live tail in Durable Streams terms
(https://github.com/durable-streams/durable-streams, PROTOCOL.md): opaque, sortable offset
tokens, one JSON array of UI message chunks per page, whether the reader is caught up and
whether the stream is closed. The HTTP side is bridge/api/durable_routes.py.

Offset tokens (never `-1` or `now`, which are the protocol's sentinels):

* a generation: `nnnnnnnnnnnnnnnn` (16 digits), the log offset to read next;
* a chat: `pppppppp_iiiiiiiiii`, the feed position of a generation (the chat's generation
  feed numbers them 1, 2, ...) and the index of the next item of it to read (0: the
  `data-user-message` event that opens it on the live tail, k + 1: log entry k).

Zero-padded, so tokens of one stream sort as their positions do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.chat.tail import user_message_chunk
from bridge.chat.takeover import recover
from bridge.errors import GenerationGone, GenerationNotFound, RequestError
from bridge.services import Services
from bridge.store.base import LogRead

PAGE_LIMIT = 1000
"""Chunks per page at most (the protocol's server-defined chunk size)."""
_GENERATION_DIGITS = 16
_FEED_DIGITS = 8
_ITEM_DIGITS = 10
_LAST_OFFSET = 10**_GENERATION_DIGITS - 2


@dataclass(slots=True)
class Page:
    items: list[bytes] = field(default_factory=list)
    """Each a UI message chunk's JSON bytes, in order."""
    next_offset: str = ""
    up_to_date: bool = False
    closed: bool = False
    """The stream has ended: nothing will follow `next_offset`."""

    def body(self) -> bytes:
        return b"[" + b",".join(self.items) + b"]"


def generation_token(next_offset: int) -> str:
    return f"{next_offset:0{_GENERATION_DIGITS}d}"


def chat_token(feed_position: int, item: int) -> str:
    return f"{feed_position:0{_FEED_DIGITS}d}_{item:0{_ITEM_DIGITS}d}"


def parse_generation_offset(value: str | None) -> int | None:
    """The log offset to read after (-1: from the start), or None for `now`."""
    if value is None or value == "-1":
        return -1
    if value == "now":
        return None
    if len(value) != _GENERATION_DIGITS or not value.isdigit():
        raise RequestError("offset must be -1, now, or an offset this server sent")
    return int(value) - 1


def parse_chat_offset(value: str | None) -> tuple[int, int] | None:
    """(feed position, next item) to read from, or None for `now`."""
    if value is None or value == "-1":
        return 1, 0
    if value == "now":
        return None
    position, sep, item = value.partition("_")
    if (
        not sep
        or len(position) != _FEED_DIGITS
        or len(item) != _ITEM_DIGITS
        or not position.isdigit()
        or not item.isdigit()
    ):
        raise RequestError("offset must be -1, now, or an offset this server sent")
    return max(int(position), 1), int(item)


async def _read(
    services: Services, chat_id: str, generation_id: str, after: int, wait: float
) -> LogRead:
    read = await services.store.read(chat_id, generation_id, after, limit=PAGE_LIMIT, wait=wait)
    # A quiet open log: if its producer is gone, take it over (as every reader does).
    quiet = wait > 0 and not read.entries and not read.ended
    if quiet and not await services.store.producer_alive(chat_id, generation_id):
        await recover(services, chat_id, generation_id)
    return read


async def _log_tail(services: Services, chat_id: str, generation_id: str) -> tuple[int, bool]:
    """The log's next offset and whether it ended (reads it through: `now` only)."""
    after = -1
    while True:
        read = await services.store.read(chat_id, generation_id, after, limit=PAGE_LIMIT)
        if read.entries:
            after = read.entries[-1].offset
        if read.ended or len(read.entries) < PAGE_LIMIT:
            return after + 1, read.ended


async def generation_page(
    services: Services, chat_id: str, generation_id: str, offset: str | None, wait: float
) -> Page:
    """One page of the generation's log after `offset`; with `wait`, up to that many
    seconds for a chunk when there is none yet (long-poll). 404 for an unknown log, 410 for
    an offset into a log past its retention."""
    after = parse_generation_offset(offset)
    try:
        if after is None:
            next_offset, ended = await _log_tail(services, chat_id, generation_id)
            if ended or wait <= 0:
                return Page([], generation_token(next_offset), True, ended)
            after = next_offset - 1
        if after > _LAST_OFFSET:
            raise RequestError("offset is past any log's end")
        read = await _read(services, chat_id, generation_id, after, wait)
    except GenerationNotFound:
        if after is not None and after >= 0:
            raise GenerationGone(f"generation {generation_id} is past its retention") from None
        raise
    last = read.entries[-1].offset if read.entries else after
    caught_up = read.ended or len(read.entries) < PAGE_LIMIT
    return Page(
        [entry.data for entry in read.entries],
        generation_token(last + 1),
        up_to_date=caught_up,
        closed=read.ended and caught_up,
    )


async def chat_page(services: Services, chat_id: str, offset: str | None, wait: float) -> Page:
    """One page of the chat's live tail after `offset`: each generation in feed order, its
    `data-user-message` event then its log; generations past retention are skipped. With
    `wait`, up to that many seconds for an item (the running generation's next chunk or the
    next generation's start). A chat's stream never closes."""
    store = services.store
    parsed = parse_chat_offset(offset)
    feed = await store.read_generations(chat_id, 0)
    if parsed is None:
        if not feed:
            return Page([], chat_token(0, 0), True)
        position, raw = feed[-1]
        next_offset, _ = await _tail_or_zero(services, chat_id, raw)
        parsed = (position, next_offset + 1)
        if wait <= 0:
            return Page([], chat_token(*parsed), True)
    position, item = parsed
    deadline = time.monotonic() + wait
    records = dict(feed)
    while True:
        page = await _chat_page_once(services, chat_id, records, position, item)
        remaining = deadline - time.monotonic()
        if page.items or remaining <= 0:
            return page
        position, item = parse_chat_offset(page.next_offset) or (position, item)
        # Nothing yet: wait on what can change next, the open log or the feed.
        current = records.get(position)
        if current is not None and not await _ended(services, chat_id, current):
            record = orjson.loads(current)
            await _read(services, chat_id, str(record["generationId"]), item - 2, remaining)
        else:
            arrived = await store.read_generations(
                chat_id, max(feed_last(records), 0), wait=remaining
            )
            records.update(arrived)


def feed_last(records: dict[int, bytes]) -> int:
    return max(records) if records else 0


async def _ended(services: Services, chat_id: str, raw: bytes) -> bool:
    record = orjson.loads(raw)
    try:
        read = await services.store.read(chat_id, str(record["generationId"]), 1 << 62, limit=1)
    except GenerationNotFound:
        return True
    return read.ended


async def _tail_or_zero(services: Services, chat_id: str, raw: bytes) -> tuple[int, bool]:
    record = orjson.loads(raw)
    try:
        return await _log_tail(services, chat_id, str(record["generationId"]))
    except GenerationNotFound:
        return -1, True


async def _chat_page_once(
    services: Services, chat_id: str, records: dict[int, bytes], position: int, item: int
) -> Page:
    """What is there now from (position, item) on, across generations, up to PAGE_LIMIT."""
    items: list[bytes] = []
    while True:
        raw = records.get(position)
        if raw is None:
            # Past the feed's end (or before its first record, expired): wait here.
            later = [p for p in records if p > position]
            if not later:
                return Page(items, chat_token(position, item), up_to_date=True)
            position, item = min(later), 0
            continue
        record: dict[str, Any] = orjson.loads(raw)
        generation_id = str(record["generationId"])
        if item == 0:
            items.append(user_message_chunk(record))
            item = 1
        try:
            read = await services.store.read(
                chat_id, generation_id, item - 2, limit=PAGE_LIMIT - len(items)
            )
        except GenerationNotFound:
            read = LogRead(entries=[], ended=True)
        items.extend(entry.data for entry in read.entries)
        if read.entries:
            item = read.entries[-1].offset + 2
        if len(items) >= PAGE_LIMIT:
            return Page(items, chat_token(position, item), up_to_date=False)
        if not read.ended:
            return Page(items, chat_token(position, item), up_to_date=True)
        later = [p for p in records if p > position]
        if not later:
            return Page(items, chat_token(position, item), up_to_date=True)
        position, item = min(later), 0
