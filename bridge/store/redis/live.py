"""The live-session parts of `RedisStore`: per-generation steering queues and per-chat
generation feeds.

Keys (in the chat's hash slot, like every key of the chat):

    {prefix}:{<chat>}:steer:<generation>         stream: entry `0-n` is steering message n
    {prefix}:{<chat>}:steer-closed:<generation>  string: the queue refuses new messages
    {prefix}:{<chat>}:generations                stream: entry `0-n` is the chat's n-th
                                                 announced generation

Streams rather than lists: a reader reads after its own cursor and consumes nothing, so a
cancelled read loses no message and a process that looks late still finds everything. Each
append is one script, so the position is the entry id and the closed check is atomic with
the append.

Waiting: every running generation waits on its steering queue and every chat live tail on
its feed, so those waits share the store's one pub/sub subscription per process (channel
`{prefix}:steer`, which names the stream's key on each push, from inside the push script);
a waiter re-reads its stream whenever it is woken, and on every (re)subscription, so a push
published while nobody listened is still found.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

logger = logging.getLogger(__name__)

# KEYS: stream, closed marker (or the stream again when there is none). ARGV: item, ttl ms,
# whether to check the marker ("1"/"0"), the channel to name the stream on. Returns the new
# position, 0 when closed. The PUBLISH is in the script: one round trip, and a waiter is
# never told of an item the stream does not hold yet.
_PUSH_LUA = """
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('XLEN', KEYS[1]) + 1
redis.call('XADD', KEYS[1], '0-' .. n, 'm', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], KEYS[1])
return n
"""

_RECONNECT_MAX_SECONDS = 5.0
CLOSED_QUEUE_SECONDS = 300
"""How long a closed steering queue's refusal mark is kept."""


class _SteeringWaiters:
    """The process's steering waiters, woken by the store's one subscription."""

    def __init__(self) -> None:
        self.by_key: dict[bytes, set[asyncio.Event]] = {}
        self.subscribed = False

    def wake(self, key: bytes | None) -> None:
        """Wake the waiters of one queue, or (None) all of them to re-check."""
        groups = self.by_key.values() if key is None else [self.by_key.get(key, set())]
        for group in groups:
            for event in group:
                event.set()


class RedisLiveMixin:
    """Mixed into `RedisStore`; uses its connections, key layout and TTLs."""

    _redis: Redis
    _prefix: str
    _log_ttl_ms: int
    _history_ttl_ms: int
    _closed: bool

    def key(self, chat_id: str, kind: str, generation_id: str | None = None) -> str:
        raise NotImplementedError  # RedisStore.key

    def _call(self) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError  # RedisStore._call: admission and StoreError mapping

    def _live_push_script(self) -> AsyncScript:
        # Registered on first use so the store's constructor stays as it is.
        script: AsyncScript | None = getattr(self, "_live_push_cached", None)
        if script is None:
            script = self._redis.register_script(_PUSH_LUA)
            self._live_push_cached = script
        return script

    async def _live_push(self, stream: str, marker: str | None, item: bytes, ttl_ms: int) -> int:
        async with self._call():
            position: Any = await self._live_push_script()(
                keys=[stream, marker or stream],
                args=[item, ttl_ms, "1" if marker else "0", self._steer_channel()],
            )
        return int(position)

    async def _live_read(self, stream: str, after: int) -> list[tuple[int, bytes]]:
        async with self._call():
            entries: Any = await self._redis.xrange(stream, min=f"(0-{max(after, 0)}")
        return _items(entries)

    async def push_steering(self, chat_id: str, generation_id: str, message: bytes) -> int | None:
        stream = self.key(chat_id, "steer", generation_id)
        position = await self._live_push(
            stream, self.key(chat_id, "steer-closed", generation_id), message, self._log_ttl_ms
        )
        return position or None

    async def read_steering(
        self, chat_id: str, generation_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._wait_read(self.key(chat_id, "steer", generation_id), after, wait)

    async def _wait_read(self, stream: str, after: int, wait: float) -> list[tuple[int, bytes]]:
        """Items after `after`, waiting up to `wait` for the first: woken by the one
        subscription per process (a push publishes its stream's key), never a blocking read
        per waiter, so connections do not grow with live tails."""
        if wait <= 0:
            return await self._live_read(stream, after)
        waiters = self._steering_waiters()
        event = asyncio.Event()
        group = waiters.by_key.setdefault(stream.encode(), set())
        group.add(event)
        # The store's one subscription (bridge/store/redis/store.py) also carries the steering
        # channel: no connection of its own, and its health checks cover both.
        self._ensure_listener()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            while not self._closed:
                # Checked only while subscribed, after clearing the event: a push published
                # later wakes us, one published earlier is in the stream.
                if waiters.subscribed:
                    event.clear()
                    items = await self._live_read(stream, after)
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
        finally:
            group.discard(event)
            if not group and waiters.by_key.get(stream.encode()) is group:
                del waiters.by_key[stream.encode()]

    def _steer_channel(self) -> str:
        return f"{self._prefix}:steer"

    def _steering_waiters(self) -> _SteeringWaiters:
        waiters: _SteeringWaiters | None = getattr(self, "_live_steering_waiters", None)
        if waiters is None:
            waiters = self._live_steering_waiters = _SteeringWaiters()
        return waiters

    def _ensure_listener(self) -> None:
        raise NotImplementedError  # RedisStore._ensure_listener: the one subscription

    def _steering_subscribed(self, subscribed: bool) -> None:
        """The store's subscription (re)started or ended: on (re)subscription every waiter
        re-reads its stream, so a push published while nobody listened is still found."""
        waiters = self._steering_waiters()
        waiters.subscribed = subscribed
        if subscribed:
            waiters.wake(None)

    def _steering_pushed(self, stream_key: bytes) -> None:
        self._steering_waiters().wake(stream_key)

    async def close_live(self) -> None:
        """Wake the steering waiters (called by the store's close)."""
        self._steering_waiters().wake(None)

    async def close_steering(self, chat_id: str, generation_id: str) -> None:
        marker = self.key(chat_id, "steer-closed", generation_id)
        # Only the race of a push with the generation's end needs the mark: the steer
        # endpoint refuses ended generations before it pushes.
        async with self._call():
            await self._redis.set(marker, 1, px=min(self._log_ttl_ms, CLOSED_QUEUE_SECONDS * 1000))

    async def announce_generation(self, chat_id: str, generation_id: str, record: bytes) -> int:
        stream = self.key(chat_id, "generations")
        return await self._live_push(stream, None, record, self._history_ttl_ms)

    async def read_generations(
        self, chat_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._wait_read(self.key(chat_id, "generations"), after, wait)


def _items(entries: Any) -> list[tuple[int, bytes]]:
    items = []
    for entry_id, fields in entries:
        raw = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        value = fields.get(b"m", fields.get("m"))
        items.append((int(raw.rsplit("-", 1)[1]), bytes(value)))
    return items
