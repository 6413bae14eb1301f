"""`RedisStore`: the session store shared by every bridge process through Redis.

Keys of one chat (all in one Redis Cluster hash slot thanks to the `{...}` hash tag):

    {prefix}:{<chat>}:chat                  hash: owner, active, last, last_ended_at,
                                            revision (raised by every begin and end)
    {prefix}:{<chat>}:messages              string: the history, a JSON array
    {prefix}:{<chat>}:log:<generation>      stream: entry `0-{k+1}` is offset k, field `c`
                                            the chunk; the end marker has field `end`
    {prefix}:{<chat>}:lease:<generation>    string with a PX TTL: the producer is alive; its
                                            value is the producer's epoch (fencing: every
                                            append, renewal and end names its epoch)
    {prefix}:{<chat>}:epoch:<generation>    string: the last granted epoch (INCR on claim)
    {prefix}:{<chat>}:plan:<generation>     string: what a takeover needs to re-run a step
    {prefix}:{<chat>}:stop:<generation>     string: a stop was requested

`<chat>` is the chat id percent-encoded, so a client-chosen id can never close the hash tag
early. Stream entry ids are the offsets, which lets Redis itself refuse an out-of-order
write. Stops are announced on the pub/sub channel `{prefix}:stop` (one subscription per
store) and also kept as a key, so a stop requested before anyone waits is not lost. Every
append and end publishes "this log changed" on `{prefix}:logs` from inside its script (a
writer's batch on one server is one script and one notification naming each of its logs):
the process-wide reader hub (bridge/log/hub.py) and waiting reads learn of new entries from
that one subscription (which also carries stops and `{prefix}:steer`) and fetch them with
range reads, so no connection ever blocks on a quiet log and the number of connections
does not grow with readers. Plain PUBLISH (not the sharded kind) reaches every node of a
cluster, so one subscription per process works there too, where a multi-key XREAD would
be refused (CROSSSLOT).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, cast
from urllib.parse import quote, unquote

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from bridge.store.base import (
    Append,
    ChatBusy,
    ChatState,
    ChatSummary,
    Claim,
    Fenced,
    GenerationInfo,
    GenerationNotFound,
    JSONDict,
    LogEntry,
    LogListener,
    LogRead,
    OffsetConflict,
    Outcome,
    StaleRevision,
    StoreError,
)
from bridge.store.redis.live import RedisLiveMixin

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

# KEYS: chat, messages, log, lease, epoch, plan.
# ARGV: generation id, start chunk, history JSON, lease ms, log ttl ms, history ttl ms,
#       lease key prefix (the active generation's lease is found from its id, same slot),
#       expected revision ('' : any), plan.
_BEGIN_LUA = """
local active = redis.call('HGET', KEYS[1], 'active')
if active and redis.call('EXISTS', ARGV[7] .. active) == 1 then return {1, active} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {2} end
local revision = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if ARGV[8] ~= '' and tonumber(ARGV[8]) ~= revision then return {3, revision} end
redis.call('HSET', KEYS[1], 'active', ARGV[1], 'last', ARGV[1], 'revision', revision + 1)
redis.call('HDEL', KEYS[1], 'last_ended_at')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[6])
redis.call('XADD', KEYS[3], '0-1', 'c', ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
redis.call('SET', KEYS[5], '1', 'PX', ARGV[5])
redis.call('SET', KEYS[6], ARGV[9], 'PX', ARGV[5])
return {0}
"""

# KEYS: log, lease, epoch, plan, stop. ARGV: lease ms, log ttl ms.
# Returns {} when the lease is held or the log is gone or ended; else
# {epoch, plan, next offset, stop requested (0/1)}.
_CLAIM_LUA = (
    _NEXT_OFFSET_LUA
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
local next = next_offset(KEYS[1])
if next < 0 then return {} end
local epoch = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], epoch, 'PX', ARGV[1])
local plan = redis.call('GET', KEYS[4]) or ''
return {epoch, plan, next, redis.call('EXISTS', KEYS[5])}
"""
)

# KEYS: lease. ARGV: epoch. Deletes the lease only if it holds that epoch.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# Result codes of the append and end scripts: {code, next offset before the call}.
_DONE, _FENCED, _NOT_FOUND, _ENDED, _CONFLICT = 0, 1, 2, 3, 4

# KEYS: log, lease. ARGV: first offset, epoch, lease ms, log ttl ms, notify channel,
# notify message, chunk... No chunk: a lease renewal, checked the same way. The epoch is
# checked in the same script as the offset: a fenced producer can never write (CONTRACT).
_APPEND_LUA = (
    _NEXT_OFFSET_LUA
    + """
local first = tonumber(ARGV[1])
local count = #ARGV - 6
local next = next_offset(KEYS[1])
if next == -1 then return {2, next} end
if next == -2 then return {3, next} end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {1, next} end
if count > 0 and first >= 1 and next == first + count then return {0, next} end
if next ~= first then return {4, next} end
for i = 7, #ARGV do
  redis.call('XADD', KEYS[1], '0-' .. (first + i - 6), 'c', ARGV[i])
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if count > 0 then redis.call('PUBLISH', ARGV[5], (first + count - 1) .. ' ' .. ARGV[6]) end
return {0, next}
"""
)

# The writer's whole batch in one script on a single server (a cluster runs `_APPEND_LUA`
# per log: the logs live in different slots). KEYS: log and lease of each log, in pairs.
# ARGV: lease ms, log ttl ms, notify channel, then per log: first offset, epoch, chunk
# count, notify message, chunks. Each log is checked and written exactly as `_APPEND_LUA`
# does; returns {code, next offset before the call} per log, and publishes one notification
# naming every log that got chunks.
_APPEND_BATCH_LUA = (
    _NEXT_OFFSET_LUA
    + """
local results, notices = {}, {}
local at = 4
for pair = 1, #KEYS / 2 do
  local log, lease = KEYS[2 * pair - 1], KEYS[2 * pair]
  local first, epoch, count = tonumber(ARGV[at]), ARGV[at + 1], tonumber(ARGV[at + 2])
  local notice, chunks = ARGV[at + 3], at + 4
  at = chunks + count
  local code, next = 0, next_offset(log)
  if next == -1 then code = 2
  elseif next == -2 then code = 3
  elseif redis.call('GET', lease) ~= epoch then code = 1
  elseif count > 0 and first >= 1 and next == first + count then code = 0
  elseif next ~= first then code = 4
  else
    for i = 0, count - 1 do
      redis.call('XADD', log, '0-' .. (first + i + 1), 'c', ARGV[chunks + i])
    end
    redis.call('PEXPIRE', lease, ARGV[1])
    redis.call('PEXPIRE', log, ARGV[2])
    if count > 0 then notices[#notices + 1] = (first + count - 1) .. ' ' .. notice end
  end
  results[#results + 1] = code
  results[#results + 1] = next
end
if #notices > 0 then redis.call('PUBLISH', ARGV[3], table.concat(notices, '\\n')) end
return results
"""
)

# KEYS: chat, messages, log, lease.
# ARGV: generation id, offset, outcome, now, log ttl ms, history ttl ms, epoch,
#       notify channel, notify message[, history JSON].
_END_LUA = """
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if #last == 0 then return {2, -1} end
local offset = tonumber(ARGV[2])
if last[1][2][1] == 'end' then
  if last[1][1] == '0-' .. (offset + 1) and last[1][2][4] == ARGV[7] then return {0, offset} end
  return {3, -2}
end
local next = tonumber(string.match(last[1][1], '%d+$'))
if redis.call('GET', KEYS[4]) ~= ARGV[7] then return {1, next} end
if next ~= offset then return {4, next} end
redis.call('XADD', KEYS[3], '0-' .. (next + 1), 'end', ARGV[3], 'epoch', ARGV[7])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('DEL', KEYS[4])
local last_id = redis.call('HGET', KEYS[1], 'last')
if ARGV[10] and (last_id == ARGV[1] or not last_id) then
  redis.call('SET', KEYS[2], ARGV[10], 'PX', ARGV[6])
end
if redis.call('HGET', KEYS[1], 'active') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'active')
end
if last_id == ARGV[1] then
  redis.call('HSET', KEYS[1], 'last_ended_at', ARGV[4])
end
redis.call('HINCRBY', KEYS[1], 'revision', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[8], next .. ' ' .. ARGV[9])
return {0, next}
"""

# KEYS: stop. ARGV: log ttl ms, channel. A script, so both go in one call on any client
# (redis-py 5's cluster client has no PUBLISH method).
_STOP_LUA = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[2], KEYS[1])
"""

# KEYS: lease. ARGV: epoch, lease ms. PEXPIRE never recreates a lapsed lease.
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_RECONNECT_MAX_SECONDS = 5.0
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """How the store talks to Redis: explicit, never the client library's defaults (which
    changed between redis-py 5 and 8: 8 puts a 5 s socket timeout on every read)."""

    socket_timeout: float = 10.0
    """Longest wait for a reply to a command. No command of the store blocks on the server
    (the live tail is pub/sub driven), so this bounds a dead connection, not a quiet log."""
    connect_timeout: float = 5.0
    health_check_interval: float = 15.0
    """A connection idle for this long is PINGed before reuse (a NAT may have dropped it)."""
    max_connections: int = 7
    """Command connections per process (per node in a cluster)."""
    pool_timeout: float = 30.0
    """A command waits this long for a free connection (backpressure), then fails."""


def cluster_url(url: str) -> str | None:
    """The plain URL of a `redis+cluster://` (or `rediss+cluster://`) URL, else None."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    return f"{plain}{sep}{rest}" if plain and sep else None


def chat_tag(chat_id: str) -> str:
    """The hash tag content for a chat: percent-encoding leaves only `[A-Za-z0-9_.~-]` and
    `%XX`, never a brace. The empty id would give `{}`, which Redis ignores as a tag, so it
    becomes a lone `%`, which no other id encodes to."""
    return quote(chat_id, safe="", errors="surrogatepass") or "%"


def _notice(chat_id: str, generation_id: str) -> bytes:
    """The log-change notification's payload (the script puts the offset the log reached
    and a space in front): both ids, unambiguous for any chat id."""
    return f"{len(generation_id)}:{generation_id}{chat_id}".encode("utf-8", "surrogatepass")


def _parse_notice(data: bytes) -> tuple[str, str, int] | None:
    offset, _, rest = data.partition(b" ")
    size, sep, rest = rest.partition(b":")
    if not sep or not size.isdigit() or not offset.isdigit():
        return None
    text = rest.decode("utf-8", "surrogatepass")
    return text[int(size) :], text[: int(size)], int(offset)


class _StopWaiter:
    __slots__ = ("event", "stopped")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.stopped = False


class _Script:
    """A Lua script called by SHA; loaded again on NOSCRIPT (a restarted or new node)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class RedisStore(RedisLiveMixin):
    """`SessionStore` on Redis via `redis.asyncio`: one server, or a Redis Cluster with a
    `redis+cluster://host:port` URL (every key of a chat is in one hash slot)."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "aisdk",
        log_ttl_seconds: float = 86400,
        history_ttl_seconds: float = 30 * 86400,
        lease_seconds: float = 15,
        options: RedisOptions | None = None,
        max_connections: int | None = None,
    ) -> None:
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError("key_prefix must not contain braces: they would be the hash tag")
        options = options or RedisOptions()
        if max_connections is not None:
            options = replace(options, max_connections=max_connections)
        self._options = options
        self._prefix = key_prefix
        self._log_ttl_ms = _ms(log_ttl_seconds)
        self._history_ttl_ms = _ms(history_ttl_seconds)
        self._lease_ms = _ms(lease_seconds)
        self._stop_channel = f"{key_prefix}:stop"
        self._log_channel = f"{key_prefix}:logs"
        common: dict[str, Any] = {
            "socket_timeout": options.socket_timeout,
            "socket_connect_timeout": options.connect_timeout,
            "socket_keepalive": True,
            "health_check_interval": options.health_check_interval,
        }
        self._common = common
        plain = cluster_url(url)
        self.cluster = plain is not None
        self._redis: Any
        if plain is not None:
            # The cluster client keeps its own retries: they follow failovers and slot moves,
            # and every script of the store tolerates a second run (offsets, epochs).
            self._redis = RedisCluster.from_url(
                plain, max_connections=options.max_connections, **common
            )
            self._url = plain
        else:
            # No retries: a command whose reply was lost is retried by the caller that
            # knows whether it is idempotent (the writer's appends are).
            self._redis = Redis.from_pool(
                BlockingConnectionPool.from_url(
                    url,
                    max_connections=options.max_connections,
                    timeout=options.pool_timeout,
                    retry=Retry(NoBackoff(), 0),
                    **common,
                )
            )
            self._url = url
        # The cluster client refuses a command at once when a node's pool is full; this
        # makes it wait instead (and caps the single-server pool the same way).
        self._admission = asyncio.Semaphore(options.max_connections)
        self._begin = _Script(_BEGIN_LUA)
        self._append = _Script(_APPEND_LUA)
        self._append_batch = _Script(_APPEND_BATCH_LUA)
        self._end = _Script(_END_LUA)
        self._renew = _Script(_RENEW_LUA)
        self._stop = _Script(_STOP_LUA)
        self._claim = _Script(_CLAIM_LUA)
        self._release = _Script(_RELEASE_LUA)
        self._stop_waiters: dict[bytes, set[_StopWaiter]] = {}
        self._log_waiters: dict[tuple[str, str], set[asyncio.Event]] = {}
        self._log_listeners: set[LogListener] = set()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = False
        self._closed = False
        self._node_turn = 0

    async def start(self) -> None:
        async with self._call():
            if self.cluster:
                await self._redis.initialize()
            await self._redis.ping()
            scripts = (self._begin, self._append, self._end, self._renew, self._stop)
            for script in (*scripts, self._claim, self._release):
                await self._load(script)

    async def ping(self) -> None:
        async with self._call():
            await self._redis.ping()

    async def close(self) -> None:
        self._closed = True
        self._wake_stop_waiters(None)
        self._wake_all_log_waiters()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait([self._listener])
            self._listener = None
        await self.close_live()  # the live-session listener (bridge/store/redis/live.py)
        await self._redis.aclose()

    # --- keys --------------------------------------------------------------------------

    def key(self, chat_id: str, kind: str, generation_id: str | None = None) -> str:
        """The Redis key of `kind` (chat, messages, log, lease, stop) for a chat."""
        key = f"{self._prefix}:{{{chat_tag(chat_id)}}}:{kind}"
        return key if generation_id is None else f"{key}:{generation_id}"

    # --- chats -------------------------------------------------------------------------

    async def get_chat(self, chat_id: str) -> ChatState | None:
        key = self.key(chat_id, "chat")
        async with self._call():
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
            revision=int(fields.get(b"revision", b"0")),
        )

    async def claim_chat(self, chat_id: str, owner: str) -> str:
        key = self.key(chat_id, "chat")
        # No MULTI needed (and none in a cluster pipeline on redis-py 5): HSETNX is atomic and
        # an owner, once set, never changes, so the HGET after it reads the first owner.
        async with self._call(), self._redis.pipeline(transaction=False) as pipe:
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
        async with self._call(), self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(index, {chat_id: updated_at})
            pipe.pexpire(index, self._history_ttl_ms)
            pipe.hset(self.key(chat_id, "chat"), "title", title)
            await pipe.execute()

    async def list_chats(self, owner: str, limit: int = 50) -> list[ChatSummary]:
        index = self._owner_key(owner)
        async with self._call():
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
        async with self._call():
            data = cast("bytes | None", await self._redis.get(self.key(chat_id, "messages")))
        if data is None:
            return []
        messages: list[JSONDict] = orjson.loads(data)
        return messages

    async def save_messages(self, chat_id: str, messages: Sequence[JSONDict]) -> None:
        data = orjson.dumps(list(messages))
        async with self._call():
            await self._redis.set(self.key(chat_id, "messages"), data, px=self._history_ttl_ms)

    # --- generations -------------------------------------------------------------------

    async def begin_generation(
        self,
        info: GenerationInfo,
        start_chunk: bytes,
        messages: Sequence[JSONDict],
        *,
        expected_revision: int | None = None,
        plan: bytes = b"",
    ) -> int:
        chat_id, generation_id = info.chat_id, info.generation_id
        async with self._call():
            result: list[Any] = await self._run(
                self._begin,
                [
                    self.key(chat_id, "chat"),
                    self.key(chat_id, "messages"),
                    self.key(chat_id, "log", generation_id),
                    self.key(chat_id, "lease", generation_id),
                    self.key(chat_id, "epoch", generation_id),
                    self.key(chat_id, "plan", generation_id),
                ],
                [
                    generation_id,
                    start_chunk,
                    orjson.dumps(list(messages)),
                    self._lease_ms,
                    self._log_ttl_ms,
                    self._history_ttl_ms,
                    self.key(chat_id, "lease") + ":",
                    "" if expected_revision is None else str(expected_revision),
                    plan,
                ],
            )
        if result[0] == 1:
            raise ChatBusy(str(result[1], "utf-8"))
        if result[0] == 2:
            raise OffsetConflict(f"generation {generation_id} already has a log")
        if result[0] == 3:
            raise StaleRevision(expected_revision or 0, int(result[1]))
        return 1

    def _append_call(self, item: Append) -> tuple[list[str], list[Any]]:
        keys = [
            self.key(item.chat_id, "log", item.generation_id),
            self.key(item.chat_id, "lease", item.generation_id),
        ]
        args: list[Any] = [
            item.first_offset,
            item.epoch,
            self._lease_ms,
            self._log_ttl_ms,
            self._log_channel,
            _notice(item.chat_id, item.generation_id),
            *item.chunks,
        ]
        return keys, args

    def _batch_call(self, appends: Sequence[Append]) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = [self._lease_ms, self._log_ttl_ms, self._log_channel]
        for item in appends:
            keys.append(self.key(item.chat_id, "log", item.generation_id))
            keys.append(self.key(item.chat_id, "lease", item.generation_id))
            args.extend((item.first_offset, item.epoch, len(item.chunks)))
            args.append(_notice(item.chat_id, item.generation_id))
            args.extend(item.chunks)
        return keys, args

    async def append(
        self,
        chat_id: str,
        generation_id: str,
        first_offset: int,
        chunks: Sequence[bytes],
        *,
        epoch: int,
    ) -> None:
        keys, args = self._append_call(Append(chat_id, generation_id, first_offset, chunks, epoch))
        async with self._call():
            result: list[int] = await self._run(self._append, keys, args)
        error = _script_error(generation_id, first_offset, epoch, result)
        if error is not None:
            raise error

    async def append_many(self, appends: Sequence[Append]) -> list[StoreError | None]:
        if not appends:
            return []
        if self.cluster:
            # Each log's slot may live on another node: one script call per log, pipelined
            # (one round trip per node), each publishing its own notification.
            calls = [self._append_call(item) for item in appends]
            async with self._call():
                replies = await self._pipelined_scripts(self._append, calls)
        else:
            # One script for the whole batch: one command to encode, one reply to parse and
            # one notification naming every log, rather than one of each per log.
            async with self._call():
                flat: list[Any] = await self._run(self._append_batch, *self._batch_call(appends))
            replies = [flat[index : index + 2] for index in range(0, len(flat), 2)]
        results: list[StoreError | None] = []
        for item, reply in zip(appends, replies, strict=True):
            if isinstance(reply, Exception):
                results.append(_mapped(reply))
            else:
                results.append(
                    _script_error(item.generation_id, item.first_offset, item.epoch, reply)
                )
        return results

    async def end_generation(
        self,
        chat_id: str,
        generation_id: str,
        offset: int,
        outcome: Outcome,
        messages: Sequence[JSONDict] | None,
        *,
        epoch: int,
    ) -> None:
        args: list[str | bytes | int] = [
            generation_id,
            offset,
            outcome.value,
            repr(time.time()),
            self._log_ttl_ms,
            self._history_ttl_ms,
            epoch,
            self._log_channel,
            _notice(chat_id, generation_id),
        ]
        if messages is not None:
            args.append(orjson.dumps(list(messages)))
        keys = [
            self.key(chat_id, "chat"),
            self.key(chat_id, "messages"),
            self.key(chat_id, "log", generation_id),
            self.key(chat_id, "lease", generation_id),
        ]
        async with self._call():
            result: list[int] = await self._run(self._end, keys, args)
        error = _script_error(generation_id, offset, epoch, result)
        if error is not None:
            raise error

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
        after = max(after, -1)
        if wait <= 0 or self._closed:
            return await self._range_read(chat_id, generation_id, after, limit)
        # Wait on the log-change notifications (no connection is held while waiting): the
        # waiter is registered before the read, so a change after the read wakes it.
        watched = (chat_id, generation_id)
        event = asyncio.Event()
        waiters = self._log_waiters.setdefault(watched, set())
        waiters.add(event)
        self._ensure_listener()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            while True:
                event.clear()
                result = await self._range_read(chat_id, generation_id, after, limit)
                remaining = deadline - loop.time()
                if result.entries or result.ended or remaining <= 0 or self._closed:
                    return result
                try:
                    async with asyncio.timeout(remaining):
                        await event.wait()
                except TimeoutError:
                    return LogRead([], False)
                if self._closed:
                    return LogRead([], False)
        finally:
            waiters.discard(event)
            if not waiters and self._log_waiters.get(watched) is waiters:
                del self._log_waiters[watched]

    async def producer_alive(self, chat_id: str, generation_id: str) -> bool:
        async with self._call():
            count: int = await self._redis.exists(self.key(chat_id, "lease", generation_id))
        return count == 1

    async def renew_lease(self, chat_id: str, generation_id: str, *, epoch: int) -> bool:
        async with self._call():
            renewed: int = await self._run(
                self._renew, [self.key(chat_id, "lease", generation_id)], [epoch, self._lease_ms]
            )
        return renewed == 1

    async def watch_logs(self, listener: LogListener) -> None:
        self._log_listeners.add(listener)
        self._ensure_listener()
        try:
            await asyncio.Future()  # until cancelled
        finally:
            self._log_listeners.discard(listener)

    async def claim_generation(self, chat_id: str, generation_id: str) -> Claim | None:
        async with self._call():
            result: list[Any] = await self._run(
                self._claim,
                [
                    self.key(chat_id, "log", generation_id),
                    self.key(chat_id, "lease", generation_id),
                    self.key(chat_id, "epoch", generation_id),
                    self.key(chat_id, "plan", generation_id),
                    self.key(chat_id, "stop", generation_id),
                ],
                [self._lease_ms, self._log_ttl_ms],
            )
        if not result:
            return None
        epoch, plan, next_offset, stopped = result
        return Claim(int(epoch), bytes(plan), int(next_offset), stopped == 1)

    async def orphaned_generations(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        pattern = f"{self._prefix}:{{*}}:chat"
        async with self._call():
            async for key in self._redis.scan_iter(match=pattern, count=1000):
                name = key.decode() if isinstance(key, bytes) else str(key)
                active = cast("bytes | None", await self._redis.hget(name, "active"))
                if active is None:
                    continue
                tag = name[len(self._prefix) + 2 : -len("}:chat")]
                lease = f"{self._prefix}:{{{tag}}}:lease:{active.decode()}"
                if not await self._redis.exists(lease):
                    found.append((unquote(tag), active.decode()))
        return found

    async def release_lease(self, chat_id: str, generation_id: str, *, epoch: int) -> None:
        async with self._call():
            await self._run(self._release, [self.key(chat_id, "lease", generation_id)], [epoch])

    # --- stop ----------------------------------------------------------------------------

    async def request_stop(self, chat_id: str, generation_id: str) -> None:
        key = self.key(chat_id, "stop", generation_id)
        async with self._call():
            await self._run(self._stop, [key], [self._log_ttl_ms, self._stop_channel])

    async def stop_requested(self, chat_id: str, generation_id: str) -> bool:
        async with self._call():
            count: int = await self._redis.exists(self.key(chat_id, "stop", generation_id))
        return count == 1

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
                    async with self._call():
                        stopped = await self._redis.exists(key)
                    if stopped:
                        return
                await waiter.event.wait()
                if waiter.stopped:
                    return
        finally:
            waiters.discard(waiter)
            if not waiters and self._stop_waiters.get(key.encode()) is waiters:
                del self._stop_waiters[key.encode()]

    # --- internals -----------------------------------------------------------------------

    @asynccontextmanager
    async def _call(self) -> AsyncIterator[None]:
        """Admission (wait for a connection, up to the pool timeout) and the mapping of
        redis-py's exceptions to StoreError: nothing of the client library leaks out."""
        try:
            async with asyncio.timeout(self._options.pool_timeout):
                await self._admission.acquire()
        except TimeoutError:
            raise StoreError(
                f"no Redis connection free within {self._options.pool_timeout} s"
            ) from None
        try:
            yield
        except RedisError as exc:
            raise _mapped(exc) from exc
        except OSError as exc:
            raise StoreError(f"Redis connection failed: {exc}") from exc
        finally:
            self._admission.release()

    async def _load(self, script: _Script) -> None:
        # The cluster client sends SCRIPT LOAD to every primary on its own.
        await self._redis.script_load(script.source)

    async def _run(self, script: _Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._load(script)
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)

    async def _pipelined_scripts(
        self, script: _Script, calls: list[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """One round trip (per node in a cluster) for many calls of one script."""
        for attempt in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    # execute_command, not pipe.evalsha: the cluster pipeline refuses the
                    # method by name, yet routes the command by its keys (one slot each).
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(reply, NoScriptError) for reply in replies):
                # A node without the script ran none of these calls: load, then run them
                # all again (each is idempotent).
                await self._load(script)
                continue
            return replies
        return replies

    async def _range_read(
        self, chat_id: str, generation_id: str, after: int, limit: int
    ) -> LogRead:
        key = self.key(chat_id, "log", generation_id)
        # One entry more than asked: if it is the end marker, the read reached the end.
        async with self._call(), self._redis.pipeline(transaction=False) as pipe:
            pipe.xrange(key, min=f"0-{after + 2}", max="+", count=limit + 1)
            pipe.xrevrange(key, max="+", min="-", count=1)
            entries, last = await pipe.execute()
        if not last:
            raise GenerationNotFound(generation_id)
        result = _to_read(entries, limit)
        if result.entries or result.ended:
            return result
        ended_with = _end_outcome(last[0])
        return LogRead([], ended_with is not None, ended_with)

    def _ensure_listener(self) -> None:
        if self._listener is None and not self._closed:
            self._listener = asyncio.create_task(self._listen(), name="redis-listener")

    def _subscriber(self) -> Redis:
        """A client of its own for the subscription (one connection, outside the command
        pool). In a cluster any node will do: plain PUBLISH reaches every node."""
        if not self.cluster:
            return Redis.from_url(self._url, **{**self._common, "socket_timeout": None})
        nodes = self._redis.get_nodes()
        node = nodes[self._node_turn % len(nodes)]
        self._node_turn += 1
        return Redis(host=node.host, port=node.port, **{**self._common, "socket_timeout": None})

    async def _listen(self) -> None:
        delay = 0.1
        while not self._closed:
            client = self._subscriber()
            try:
                async with client.pubsub() as pubsub:
                    channels = (self._stop_channel, self._log_channel, self._steer_channel())
                    log_channel, steer_channel = channels[1].encode(), channels[2].encode()
                    await pubsub.subscribe(*channels)
                    subscriptions = 0
                    async for message in self._messages(pubsub):
                        kind = message["type"]
                        if kind == "subscribe":
                            subscriptions += 1
                            if subscriptions == len(channels):
                                self._subscribed = True
                                delay = 0.1
                                self._wake_stop_waiters(None)
                                self._resync_logs()
                                self._steering_subscribed(True)
                        elif kind == "message":
                            channel = message["channel"]
                            if channel == log_channel:
                                self._log_changed(message["data"])
                            elif channel == steer_channel:
                                self._steering_pushed(bytes(message["data"]))
                            else:
                                self._wake_stop_waiters(message["data"])
            except Exception:
                logger.warning("Redis listener lost its subscription", exc_info=True)
            finally:
                self._subscribed = False
                self._steering_subscribed(False)
                await client.aclose()
            # Backoff between reconnection attempts, not a polling loop: changes made in the
            # meantime are found when the waiters re-check on resubscription.
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)

    async def _messages(self, pubsub: Any) -> AsyncIterator[dict[str, Any]]:
        """The subscription's messages. A subscription that stays silent is PINGed every
        health-check interval, and dropped (to be re-established) when not even the PONG
        came back: a connection a NAT silently forgot would otherwise lose every
        notification from then on."""
        interval = self._options.health_check_interval or 15.0
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=interval)
            if message is not None:
                heard = loop.time()
                yield message
                continue
            if loop.time() - heard > 2 * interval:
                raise ConnectionError("the Redis subscription went silent")
            await pubsub.ping()

    def _log_changed(self, data: bytes) -> None:
        for line in data.split(b"\n"):  # a batch of appends publishes one line per log
            notice = _parse_notice(line)
            if notice is None:
                continue
            chat_id, generation_id, offset = notice
            for event in self._log_waiters.get((chat_id, generation_id), ()):
                event.set()
            for listener in self._log_listeners:
                listener.log_changed(chat_id, generation_id, offset)

    def _resync_logs(self) -> None:
        self._wake_all_log_waiters()
        for listener in list(self._log_listeners):
            listener.resync()

    def _wake_all_log_waiters(self) -> None:
        for waiters in self._log_waiters.values():
            for event in waiters:
                event.set()

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


def _mapped(exc: Exception) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    return StoreError(f"Redis failed: {type(exc).__name__}: {exc}")


def _script_error(
    generation_id: str, offset: int, epoch: int, result: list[int]
) -> StoreError | None:
    code, next_offset = int(result[0]), int(result[1])
    if code == _DONE:
        return None
    if code == _FENCED:
        return Fenced(f"generation {generation_id}: epoch {epoch} does not hold the lease")
    if code == _NOT_FOUND:
        return GenerationNotFound(generation_id)
    if code == _ENDED:
        return OffsetConflict(f"generation {generation_id} has ended")
    return OffsetConflict(f"offset {offset} is not the next offset {next_offset}")


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
