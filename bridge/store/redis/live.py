"""The live-session part of the Redis store: per-generation steering queues and per-chat
generation feeds (keys in bridge/store/redis/keys.py).

Streams rather than lists: a reader reads after its own cursor and consumes nothing, so a
cancelled read loses no message and a process that looks late still finds everything. Each
append is one script, so the position is the entry id and the closed check is atomic with
the append.

Waiting: every running generation waits on its steering queue and every chat live tail on
its feed, so those waits share the store's one pub/sub subscription per process
(bridge/store/redis/subscription.py: the push script names the stream on `{prefix}:steer`);
a waiter re-reads its stream whenever it is woken, and on every (re)subscription, so a push
published while nobody listened is still found.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.store.base import FEED_MAX_RECORDS
from bridge.store.redis import scripts
from bridge.store.redis.connection import Connection
from bridge.store.redis.keys import Keys
from bridge.store.redis.subscription import Subscription

CLOSED_QUEUE_SECONDS = 300
"""How long a closed steering queue's refusal mark is kept."""


class RedisLive:
    """Steering queues and generation feeds on the store's connection and subscription."""

    def __init__(
        self,
        connection: Connection,
        keys: Keys,
        subscription: Subscription,
        *,
        log_ttl_ms: int,
        history_ttl_ms: int,
    ) -> None:
        self._connection = connection
        self._keys = keys
        self._subscription = subscription
        self._log_ttl_ms = log_ttl_ms
        self._history_ttl_ms = history_ttl_ms

    async def push_steering(self, chat_id: str, generation_id: str, message: bytes) -> int | None:
        stream = self._keys.key(chat_id, "steer", generation_id)
        marker = self._keys.key(chat_id, "steer-closed", generation_id)
        position = await self._push(stream, marker, message, self._log_ttl_ms)
        return position or None

    async def read_steering(
        self, chat_id: str, generation_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._wait_read(self._keys.key(chat_id, "steer", generation_id), after, wait)

    async def close_steering(self, chat_id: str, generation_id: str) -> None:
        marker = self._keys.key(chat_id, "steer-closed", generation_id)
        # Only the race of a push with the generation's end needs the mark: the steer
        # endpoint refuses ended generations before it pushes.
        async with self._connection.call():
            await self._connection.redis.set(
                marker, 1, px=min(self._log_ttl_ms, CLOSED_QUEUE_SECONDS * 1000)
            )

    async def put_steering_record(
        self, chat_id: str, steering_id: str, record: bytes, *, only_if_absent: bool = False
    ) -> bytes | None:
        key = self._keys.key(chat_id, "steer-record", steering_id)
        redis = self._connection.redis
        async with self._connection.call():
            if only_if_absent:
                # SET NX GET (Redis 7): atomic, one round trip; the first of two racing
                # steers with one id wins and the second gets its record.
                existing: Any = await redis.set(key, record, px=self._log_ttl_ms, nx=True, get=True)
                return bytes(existing) if existing is not None else None
            await redis.set(key, record, px=self._log_ttl_ms)
            return None

    async def steering_record(self, chat_id: str, steering_id: str) -> bytes | None:
        key = self._keys.key(chat_id, "steer-record", steering_id)
        async with self._connection.call():
            value: Any = await self._connection.redis.get(key)
        return bytes(value) if value is not None else None

    async def announce_generation(self, chat_id: str, generation_id: str, record: bytes) -> int:
        # Capped (MAXLEN), and kept as long as the logs it names (not the history's TTL).
        stream = self._keys.key(chat_id, "generations")
        return await self._push(stream, None, record, self._log_ttl_ms, keep=FEED_MAX_RECORDS)

    async def read_generations(
        self, chat_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._wait_read(self._keys.key(chat_id, "generations"), after, wait)

    async def _push(
        self, stream: str, marker: str | None, item: bytes, ttl_ms: int, *, keep: int = 0
    ) -> int:
        async with self._connection.call():
            position: Any = await scripts.run(
                self._connection.redis,
                scripts.PUSH,
                [stream, marker or stream],
                [item, ttl_ms, "1" if marker else "0", self._keys.steer_channel, keep],
            )
        return int(position)

    async def _read(self, stream: str, after: int) -> list[tuple[int, bytes]]:
        async with self._connection.call():
            entries: Any = await self._connection.redis.xrange(stream, min=f"(0-{max(after, 0)}")
        return _items(entries)

    async def _wait_read(self, stream: str, after: int, wait: float) -> list[tuple[int, bytes]]:
        """Items after `after`, waiting up to `wait` for the first: woken by the one
        subscription per process (a push publishes its stream's key), never a blocking read
        per waiter, so connections do not grow with live tails."""
        if wait <= 0:
            return await self._read(stream, after)
        subscription = self._subscription
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        with subscription.stream_waiter(stream) as event:
            while not subscription.closed:
                # Checked only while subscribed, after clearing the event: a push published
                # later wakes us, one published earlier is in the stream.
                if subscription.subscribed:
                    event.clear()
                    items = await self._read(stream, after)
                    if items:
                        return items
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                try:
                    async with asyncio.timeout(remaining):
                        await event.wait()
                except TimeoutError:
                    return []
            return []


def _items(entries: Any) -> list[tuple[int, bytes]]:
    items = []
    for entry_id, fields in entries:
        raw = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        value = fields.get(b"m", fields.get("m"))
        items.append((int(raw.rsplit("-", 1)[1]), bytes(value)))
    return items
