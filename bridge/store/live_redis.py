"""The live-session parts of `RedisStore`: per-generation steering queues and per-chat
generation feeds.

Keys (in the chat's hash slot, like every key of the chat):

    {prefix}:{<chat>}:steer:<generation>         stream: entry `0-n` is steering message n
    {prefix}:{<chat>}:steer-closed:<generation>  string: the queue refuses new messages
    {prefix}:{<chat>}:generations                stream: entry `0-n` is the chat's n-th
                                                 announced generation

Streams rather than lists or pub/sub: a reader blocks in XREAD after its own cursor (on the
store's blocking-read pool) and consumes nothing, so a cancelled read loses no message and a
process that subscribes late still finds everything. Each append is one script, so the
position is the entry id and the closed check is atomic with the append.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError

# KEYS: stream, closed marker (or the stream again when there is none). ARGV: item, ttl ms,
# whether to check the marker ("1"/"0"). Returns the new position, 0 when closed.
_PUSH_LUA = """
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('XLEN', KEYS[1]) + 1
redis.call('XADD', KEYS[1], '0-' .. n, 'm', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
"""

_MARGIN_SECONDS = 1.0
CLOSED_QUEUE_SECONDS = 300
"""How long a closed steering queue's refusal mark is kept."""


class RedisLiveMixin:
    """Mixed into `RedisStore`; uses its connections, key layout and TTLs."""

    _redis: Redis
    _blocking: Redis
    _log_ttl_ms: int
    _history_ttl_ms: int
    _closed: bool

    def key(self, chat_id: str, kind: str, generation_id: str | None = None) -> str:
        raise NotImplementedError  # RedisStore.key

    def _live_push_script(self) -> AsyncScript:
        # Registered on first use so the store's constructor stays as it is.
        script: AsyncScript | None = getattr(self, "_live_push_cached", None)
        if script is None:
            script = self._redis.register_script(_PUSH_LUA)
            self._live_push_cached = script
        return script

    async def _live_push(self, stream: str, marker: str | None, item: bytes, ttl_ms: int) -> int:
        position: Any = await self._live_push_script()(
            keys=[stream, marker or stream],
            args=[item, ttl_ms, "1" if marker else "0"],
        )
        return int(position)

    async def _live_read(self, stream: str, after: int, wait: float) -> list[tuple[int, bytes]]:
        start = max(after, 0)
        if wait <= 0:
            entries: Any = await self._redis.xrange(stream, min=f"(0-{start}")
            return _items(entries)
        block_ms = max(1, math.ceil(wait * 1000))
        try:
            async with asyncio.timeout(wait + _MARGIN_SECONDS):
                response: Any = await self._blocking.xread({stream: f"0-{start}"}, block=block_ms)
        except TimeoutError:
            return []
        except RedisConnectionError:
            if self._closed:
                return []
            raise
        if not response:
            return []
        # RESP2 answers [[key, entries]], RESP3 {key: [entries]}.
        entries = next(iter(response.values()))[0] if isinstance(response, dict) else response[0][1]
        return _items(entries)

    async def push_steering(self, chat_id: str, generation_id: str, message: bytes) -> int | None:
        position = await self._live_push(
            self.key(chat_id, "steer", generation_id),
            self.key(chat_id, "steer-closed", generation_id),
            message,
            self._log_ttl_ms,
        )
        return position or None

    async def read_steering(
        self, chat_id: str, generation_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._live_read(self.key(chat_id, "steer", generation_id), after, wait)

    async def close_steering(self, chat_id: str, generation_id: str) -> None:
        marker = self.key(chat_id, "steer-closed", generation_id)
        # Only the race of a push with the generation's end needs the mark: the steer
        # endpoint refuses ended generations before it pushes.
        await self._redis.set(marker, 1, px=min(self._log_ttl_ms, CLOSED_QUEUE_SECONDS * 1000))

    async def announce_generation(self, chat_id: str, generation_id: str, record: bytes) -> int:
        return await self._live_push(
            self.key(chat_id, "generations"), None, record, self._history_ttl_ms
        )

    async def read_generations(
        self, chat_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._live_read(self.key(chat_id, "generations"), after, wait)


def _items(entries: Any) -> list[tuple[int, bytes]]:
    items = []
    for entry_id, fields in entries:
        raw = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        value = fields.get(b"m", fields.get("m"))
        items.append((int(raw.rsplit("-", 1)[1]), bytes(value)))
    return items
