"""`RedisStore`: the session store shared by every bridge process through Redis.

Keys of one chat (all in one Redis Cluster hash slot thanks to the `{...}` hash tag):

    {prefix}:{<chat>}:chat                  hash: owner, active, last, last_ended_at
    {prefix}:{<chat>}:messages              string: the history, a JSON array
    {prefix}:{<chat>}:log:<generation>      stream: entry `0-{k+1}` is offset k, field `c`
                                            the chunk; the end marker has field `end`
    {prefix}:{<chat>}:lease:<generation>    string with a PX TTL: the producer is alive
    {prefix}:{<chat>}:stop:<generation>     string: a stop was requested

`<chat>` is the chat id percent-encoded, so a client-chosen id can never close the hash tag
early. Stream entry ids are the offsets, which lets Redis itself refuse an out-of-order
write. Stops are announced on the pub/sub channel `{prefix}:stop` (one subscription per
store) and also kept as a key, so a stop requested before anyone waits is not lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import quote

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from bridge.store.base import (
    ChatBusy,
    ChatState,
    ChatSummary,
    GenerationInfo,
    GenerationNotFound,
    JSONDict,
    LogEntry,
    LogRead,
    OffsetConflict,
    Outcome,
)
from bridge.store.live_redis import RedisLiveMixin

logger = logging.getLogger(__name__)

# The next offset of a log, from its last stream entry: -1 when the log does not exist, -2
# when it has ended (nothing may follow the end marker).
_NEXT_OFFSET_LUA = """
local function next_offset(log)
  local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if #last == 0 then return -1 end
  if last[1][2][1] == 'end' then return -2 end
  return tonumber(string.match(last[1][1], '%d+$'))
end
"""

# KEYS: chat, messages, log, lease.
# ARGV: generation id, start chunk, history JSON, lease ms, log ttl ms, history ttl ms,
#       lease key prefix (the active generation's lease is found from its id, same slot).
_BEGIN_LUA = """
local active = redis.call('HGET', KEYS[1], 'active')
if active and redis.call('EXISTS', ARGV[7] .. active) == 1 then return {1, active} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {2} end
redis.call('HSET', KEYS[1], 'active', ARGV[1], 'last', ARGV[1])
redis.call('HDEL', KEYS[1], 'last_ended_at')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[6])
redis.call('XADD', KEYS[3], '0-1', 'c', ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
return {0}
"""

# KEYS: log, lease. ARGV: first offset, lease ms, log ttl ms, chunk... Returns the log's
# next offset before the call; the chunks were written only if it equals the first offset.
_APPEND_LUA = (
    _NEXT_OFFSET_LUA
    + """
local first = tonumber(ARGV[1])
local next = next_offset(KEYS[1])
if next ~= first then return next end
for i = 4, #ARGV do
  redis.call('XADD', KEYS[1], '0-' .. (first + i - 3), 'c', ARGV[i])
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return next
"""
)

# KEYS: chat, messages, log, lease.
# ARGV: generation id, offset, outcome, now, log ttl ms, history ttl ms[, history JSON].
_END_LUA = (
    _NEXT_OFFSET_LUA
    + """
local next = next_offset(KEYS[3])
if next ~= tonumber(ARGV[2]) then return next end
redis.call('XADD', KEYS[3], '0-' .. (next + 1), 'end', ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('DEL', KEYS[4])
local last = redis.call('HGET', KEYS[1], 'last')
if ARGV[7] and (last == ARGV[1] or not last) then
  redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[6])
end
if redis.call('HGET', KEYS[1], 'active') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'active')
end
if last == ARGV[1] then
  redis.call('HSET', KEYS[1], 'last_ended_at', ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return next
"""
)

_RECONNECT_MAX_SECONDS = 5.0
# A blocked XREAD returns on the server at `wait`; this margin covers the reply's trip
# before we give up on it (the pool may also have made us wait for a connection).
_BLOCK_MARGIN_SECONDS = 1.0


def chat_tag(chat_id: str) -> str:
    """The hash tag content for a chat: percent-encoding leaves only `[A-Za-z0-9_.~-]` and
    `%XX`, never a brace. The empty id would give `{}`, which Redis ignores as a tag, so it
    becomes a lone `%`, which no other id encodes to."""
    return quote(chat_id, safe="", errors="surrogatepass") or "%"


class _StopWaiter:
    __slots__ = ("event", "stopped")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.stopped = False


class RedisStore(RedisLiveMixin):
    """`SessionStore` on Redis via `redis.asyncio`. The keys are laid out for Redis Cluster
    (one slot per chat), but the client is a plain one: one Redis server or a proxy."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "aisdk",
        log_ttl_seconds: float = 86400,
        history_ttl_seconds: float = 30 * 86400,
        lease_seconds: float = 15,
        max_connections: int = 64,
        max_blocking_reads: int = 1024,
    ) -> None:
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError("key_prefix must not contain braces: they would be the hash tag")
        self._prefix = key_prefix
        self._log_ttl_ms = _ms(log_ttl_seconds)
        self._history_ttl_ms = _ms(history_ttl_seconds)
        self._lease_ms = _ms(lease_seconds)
        self._stop_channel = f"{key_prefix}:stop"
        # Retries stay off (the pools' default): a retried script could apply twice.
        # Commands and blocking reads use separate pools so that many waiting readers can
        # never starve the producers' appends of connections.
        self._redis = Redis.from_pool(
            BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=20)
        )
        self._blocking = Redis.from_pool(
            BlockingConnectionPool.from_url(url, max_connections=max_blocking_reads, timeout=None)
        )
        self._begin = self._redis.register_script(_BEGIN_LUA)
        self._append = self._redis.register_script(_APPEND_LUA)
        self._end = self._redis.register_script(_END_LUA)
        self._stop_waiters: dict[bytes, set[_StopWaiter]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = False
        self._closed = False

    async def start(self) -> None:
        await self._redis.ping()
        for script in (self._begin, self._append, self._end):
            await self._redis.script_load(script.script)

    async def close(self) -> None:
        self._closed = True
        self._wake_stop_waiters(None)
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait([self._listener])
            self._listener = None
        await self.close_live()  # the live-session listener (bridge/store/live_redis.py)
        # Closing the pool drops the connections of blocked reads: they return empty.
        await self._blocking.aclose()
        await self._redis.aclose()

    # --- keys --------------------------------------------------------------------------

    def key(self, chat_id: str, kind: str, generation_id: str | None = None) -> str:
        """The Redis key of `kind` (chat, messages, log, lease, stop) for a chat."""
        key = f"{self._prefix}:{{{chat_tag(chat_id)}}}:{kind}"
        return key if generation_id is None else f"{key}:{generation_id}"

    # --- chats -------------------------------------------------------------------------

    async def get_chat(self, chat_id: str) -> ChatState | None:
        key = self.key(chat_id, "chat")
        fields = cast("dict[bytes, bytes]", await self._redis.hgetall(key))
        if not fields:
            return None
        ended_at = fields.get(b"last_ended_at")
        return ChatState(
            chat_id=chat_id,
            owner=_text(fields.get(b"owner")),
            active_generation_id=_text(fields.get(b"active")),
            last_generation_id=_text(fields.get(b"last")),
            last_ended_at=float(ended_at) if ended_at is not None else None,
        )

    async def claim_chat(self, chat_id: str, owner: str) -> str:
        key = self.key(chat_id, "chat")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "owner", owner)
            pipe.hget(key, "owner")
            pipe.pexpire(key, self._history_ttl_ms)
            _, recorded, _ = await pipe.execute()
        return str(recorded, "utf-8")

    def _owner_key(self, owner: str) -> str:
        # One index per owner, in its own slot: it is written with single-key commands.
        return f"{self._prefix}:owner:{{{chat_tag(owner)}}}:chats"

    async def record_chat(self, owner: str, chat_id: str, title: str, updated_at: float) -> None:
        index = self._owner_key(owner)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(index, {chat_id: updated_at})
            pipe.pexpire(index, self._history_ttl_ms)
            pipe.hset(self.key(chat_id, "chat"), "title", title)
            await pipe.execute()

    async def list_chats(self, owner: str, limit: int = 50) -> list[ChatSummary]:
        index = self._owner_key(owner)
        entries = cast(
            "list[tuple[bytes, float]]",
            await self._redis.zrevrange(index, 0, max(0, limit - 1), withscores=True),
        )
        if not entries:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for member, _ in entries:
                pipe.hget(self.key(member.decode(), "chat"), "title")
            titles = await pipe.execute()
        chats = []
        gone = []
        for (member, score), title in zip(entries, titles, strict=True):
            if title is None:
                gone.append(member)  # the chat expired: so does its entry
                continue
            chats.append(ChatSummary(member.decode(), title.decode(), score))
        if gone:
            await self._redis.zrem(index, *gone)
        return chats

    async def load_messages(self, chat_id: str) -> list[JSONDict]:
        data = cast("bytes | None", await self._redis.get(self.key(chat_id, "messages")))
        if data is None:
            return []
        messages: list[JSONDict] = orjson.loads(data)
        return messages

    async def save_messages(self, chat_id: str, messages: Sequence[JSONDict]) -> None:
        data = orjson.dumps(list(messages))
        await self._redis.set(self.key(chat_id, "messages"), data, px=self._history_ttl_ms)

    # --- generations -------------------------------------------------------------------

    async def begin_generation(
        self,
        info: GenerationInfo,
        start_chunk: bytes,
        messages: Sequence[JSONDict],
    ) -> None:
        chat_id, generation_id = info.chat_id, info.generation_id
        result: list[Any] = await self._begin(
            keys=[
                self.key(chat_id, "chat"),
                self.key(chat_id, "messages"),
                self.key(chat_id, "log", generation_id),
                self.key(chat_id, "lease", generation_id),
            ],
            args=[
                generation_id,
                start_chunk,
                orjson.dumps(list(messages)),
                self._lease_ms,
                self._log_ttl_ms,
                self._history_ttl_ms,
                self.key(chat_id, "lease") + ":",
            ],
        )
        if result[0] == 1:
            raise ChatBusy(str(result[1], "utf-8"))
        if result[0] == 2:
            raise OffsetConflict(f"generation {generation_id} already has a log")

    async def append(
        self, chat_id: str, generation_id: str, first_offset: int, chunks: Sequence[bytes]
    ) -> None:
        next_offset: int = await self._append(
            keys=[
                self.key(chat_id, "log", generation_id),
                self.key(chat_id, "lease", generation_id),
            ],
            args=[first_offset, self._lease_ms, self._log_ttl_ms, *chunks],
        )
        _check_offset(generation_id, first_offset, next_offset)

    async def end_generation(
        self,
        chat_id: str,
        generation_id: str,
        offset: int,
        outcome: Outcome,
        messages: Sequence[JSONDict] | None,
    ) -> None:
        args: list[str | bytes | int] = [
            generation_id,
            offset,
            outcome.value,
            repr(time.time()),
            self._log_ttl_ms,
            self._history_ttl_ms,
        ]
        if messages is not None:
            args.append(orjson.dumps(list(messages)))
        next_offset: int = await self._end(
            keys=[
                self.key(chat_id, "chat"),
                self.key(chat_id, "messages"),
                self.key(chat_id, "log", generation_id),
                self.key(chat_id, "lease", generation_id),
            ],
            args=args,
        )
        _check_offset(generation_id, offset, next_offset)

    async def read(
        self,
        chat_id: str,
        generation_id: str,
        after: int,
        *,
        limit: int = 1000,
        wait: float = 0.0,
        live: bool = False,
    ) -> LogRead:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        key = self.key(chat_id, "log", generation_id)
        after = max(after, -1)
        if live and wait > 0 and not self._closed:
            # A follower that has not seen the end: one blocking XREAD per wake-up, which
            # returns at once when entries are there already.
            result = await self._blocking_read(key, after, limit, wait)
            if not result.entries and not result.ended and not await self._redis.exists(key):
                raise GenerationNotFound(generation_id)
            return result
        # One entry more than asked: if it is the end marker, the read reached the end.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrange(key, min=f"0-{after + 2}", max="+", count=limit + 1)
            pipe.xrevrange(key, max="+", min="-", count=1)
            entries, last = await pipe.execute()
        if not last:
            raise GenerationNotFound(generation_id)
        result = _to_read(entries, limit)
        if result.entries or result.ended:
            return result
        ended_with = _end_outcome(last[0])
        if ended_with is not None or wait <= 0 or self._closed:
            # `after` is at or past the end marker, or the caller does not wait.
            return LogRead([], ended_with is not None, ended_with)
        return await self._blocking_read(key, after, limit, wait)

    async def producer_alive(self, chat_id: str, generation_id: str) -> bool:
        count: int = await self._redis.exists(self.key(chat_id, "lease", generation_id))
        return count == 1

    async def renew_lease(self, chat_id: str, generation_id: str) -> None:
        # PEXPIRE never recreates a lapsed lease: the producer was presumed dead and another
        # process may already have acted on it.
        await self._redis.pexpire(self.key(chat_id, "lease", generation_id), self._lease_ms)

    # --- stop ----------------------------------------------------------------------------

    async def request_stop(self, chat_id: str, generation_id: str) -> None:
        key = self.key(chat_id, "stop", generation_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(key, 1, px=self._log_ttl_ms)
            pipe.publish(self._stop_channel, key)
            await pipe.execute()

    async def wait_for_stop(self, chat_id: str, generation_id: str) -> None:
        key = self.key(chat_id, "stop", generation_id)
        waiter = _StopWaiter()
        waiters = self._stop_waiters.setdefault(key.encode(), set())
        waiters.add(waiter)
        self._ensure_listener()
        try:
            while not self._closed:
                # The key is checked only while subscribed, after clearing the event: a stop
                # published later wakes us, one published earlier is in the key. The
                # listener also wakes every waiter on each (re)subscription to re-check.
                if self._subscribed:
                    waiter.event.clear()
                    if await self._redis.exists(key):
                        return
                await waiter.event.wait()
                if waiter.stopped:
                    return
        finally:
            waiters.discard(waiter)
            if not waiters and self._stop_waiters.get(key.encode()) is waiters:
                del self._stop_waiters[key.encode()]

    # --- internals -----------------------------------------------------------------------

    async def _blocking_read(self, key: str, after: int, limit: int, wait: float) -> LogRead:
        block_ms = max(1, math.ceil(wait * 1000))
        try:
            async with asyncio.timeout(wait + _BLOCK_MARGIN_SECONDS):
                # XREAD returns entries with an id above the one given: that of `after`.
                response: Any = await self._blocking.xread(
                    {key: f"0-{after + 1}"}, count=limit + 1, block=block_ms
                )
        except TimeoutError:
            return LogRead([], False)
        except RedisConnectionError:
            if self._closed:
                return LogRead([], False)
            raise
        if not response:
            return LogRead([], False)
        # RESP2 answers [[key, entries]], RESP3 (protocol=3 in the URL) {key: [entries]}.
        stream = next(iter(response.values()))[0] if isinstance(response, dict) else response[0][1]
        return _to_read(stream, limit)

    def _ensure_listener(self) -> None:
        if self._listener is None and not self._closed:
            self._listener = asyncio.create_task(self._listen(), name="redis-stop-listener")

    async def _listen(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._stop_channel)
                    async for message in pubsub.listen():
                        if message["type"] == "subscribe":
                            self._subscribed = True
                            delay = 0.1
                            self._wake_stop_waiters(None)
                        elif message["type"] == "message":
                            self._wake_stop_waiters(message["data"])
            except Exception:
                logger.warning("stop listener lost its Redis subscription", exc_info=True)
            finally:
                self._subscribed = False
            # Backoff between reconnection attempts, not a polling loop: stops requested in
            # the meantime are found in their keys when the waiters re-check.
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)

    def _wake_stop_waiters(self, stop_key: bytes | None) -> None:
        """Wake the waiters of one stop key (a stop was published) or, with None, all of
        them so they re-check their keys (resubscribed, or closing)."""
        if stop_key is None:
            for waiters in self._stop_waiters.values():
                for waiter in waiters:
                    waiter.event.set()
            return
        for waiter in self._stop_waiters.get(stop_key, ()):
            waiter.stopped = True
            waiter.event.set()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | None) -> str | None:
    return None if value is None else str(value, "utf-8")


def _offset(entry_id: bytes) -> int:
    return int(entry_id.rpartition(b"-")[2]) - 1


_StreamEntry = tuple[bytes, dict[bytes, bytes]]


def _end_outcome(entry: _StreamEntry) -> Outcome | None:
    outcome = entry[1].get(b"end")
    return None if outcome is None else Outcome(str(outcome, "utf-8"))


def _to_read(entries: list[_StreamEntry], limit: int) -> LogRead:
    chunks: list[LogEntry] = []
    for entry in entries:
        outcome = _end_outcome(entry)
        if outcome is not None:
            return LogRead(chunks, True, outcome)
        if len(chunks) == limit:
            break
        chunks.append(LogEntry(_offset(entry[0]), entry[1][b"c"]))
    return LogRead(chunks, False)


def _check_offset(generation_id: str, offset: int, next_offset: int) -> None:
    if next_offset == -1:
        raise GenerationNotFound(generation_id)
    if next_offset == -2:
        raise OffsetConflict(f"generation {generation_id} has ended")
    if next_offset != offset:
        raise OffsetConflict(f"offset {offset} is not the next offset {next_offset}")
