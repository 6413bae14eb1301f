"""`RedisStore`: the session store shared by every bridge process through Redis.

Composed of its parts, one concept each: the key layout (keys.py), the connections and the
error mapping (connection.py), the Lua scripts (scripts.py), the one subscription per
process and its waiters (subscription.py), and the live-session streams (live.py). This
module holds the `SessionStore` operations themselves.

Stream entry ids are the log offsets, which lets Redis itself refuse an out-of-order write.
Stops are announced on the stop channel and also kept as a key, so a stop requested before
anyone waits is not lost. Every append and end publishes "this log changed" from inside its
script (a writer's batch on one server is one script and one notification naming each of
its logs); readers learn of it from the one subscription and fetch with range reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import orjson

from bridge.store.base import (
    Append,
    ChatBusy,
    ChatState,
    ChatSummary,
    Claim,
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
from bridge.store.redis import scripts
from bridge.store.redis.connection import Connection, RedisOptions, mapped
from bridge.store.redis.keys import Keys, notice
from bridge.store.redis.live import RedisLive
from bridge.store.redis.scripts import script_error
from bridge.store.redis.subscription import Subscription

__all__ = ["RedisOptions", "RedisStore"]


class RedisStore:
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
        self.keys = Keys(key_prefix)
        options = options or RedisOptions()
        if max_connections is not None:
            options = replace(options, max_connections=max_connections)
        self._log_ttl_ms = _ms(log_ttl_seconds)
        self._history_ttl_ms = _ms(history_ttl_seconds)
        self._lease_ms = _ms(lease_seconds)
        connection = Connection(url, options)
        self.cluster = connection.cluster
        self._connection = connection
        self._redis: Any = connection.redis
        self._call = connection.call
        self._subscription = Subscription(connection, self.keys)
        self._live = RedisLive(
            connection,
            self.keys,
            self._subscription,
            log_ttl_ms=self._log_ttl_ms,
            history_ttl_ms=self._history_ttl_ms,
        )

    async def start(self) -> None:
        async with self._call():
            if self.cluster:
                await self._redis.initialize()
            await self._redis.ping()
            for script in scripts.LOADED_AT_START:
                await scripts.load(self._redis, script)

    async def ping(self) -> None:
        async with self._call():
            await self._redis.ping()

    async def close(self) -> None:
        await self._subscription.close()  # wakes every waiter
        await self._connection.aclose()

    def key(self, chat_id: str, kind: str, generation_id: str | None = None) -> str:
        """The Redis key of `kind` (chat, messages, log, lease, stop) for a chat."""
        return self.keys.key(chat_id, kind, generation_id)

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

    async def record_chat(self, owner: str, chat_id: str, title: str, updated_at: float) -> None:
        index = self.keys.owner_index(owner)
        async with self._call(), self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(index, {chat_id: updated_at})
            pipe.pexpire(index, self._history_ttl_ms)
            pipe.hset(self.key(chat_id, "chat"), "title", title)
            await pipe.execute()

    async def list_chats(self, owner: str, limit: int = 50) -> list[ChatSummary]:
        index = self.keys.owner_index(owner)
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

    async def history_size(self, chat_id: str) -> int:
        async with self._call():
            size = await self._redis.strlen(self.key(chat_id, "messages"))
        return int(size)

    async def save_messages(self, chat_id: str, messages: Sequence[JSONDict]) -> None:
        data = orjson.dumps(list(messages))
        async with self._call():
            await self._redis.set(self.key(chat_id, "messages"), data, px=self._history_ttl_ms)

    async def delete_chat(self, chat_id: str) -> None:
        # Logs, leases, plans, steering keys are named by generation or steering id: SCAN
        # finds them by the chat's key pattern (a scan of the keyspace, as the takeover
        # sweep does), then one script removes them and the chat's fixed keys at once.
        fixed = [self.key(chat_id, kind) for kind in ("chat", "messages", "generations")]
        async with self._call():
            owner = cast("bytes | None", await self._redis.hget(fixed[0], "owner"))
            found: set[str] = set()
            async for key in self._redis.scan_iter(
                match=self.keys.keys_of_chat_pattern(chat_id), count=1000
            ):
                found.add(key.decode() if isinstance(key, bytes) else str(key))
            await scripts.run(
                self._redis, scripts.DELETE_CHAT, [*fixed, *sorted(found - set(fixed))], []
            )
            if owner is not None:
                await self._redis.zrem(self.keys.owner_index(owner.decode()), chat_id)

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
            result: list[Any] = await scripts.run(
                self._redis,
                scripts.BEGIN,
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
            self._lease_ms if item.renew else 0,
            self._log_ttl_ms,
            self.keys.log_channel,
            notice(item.chat_id, item.generation_id),
            *item.chunks,
        ]
        return keys, args

    def _batch_call(self, appends: Sequence[Append]) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = [self._lease_ms, self._log_ttl_ms, self.keys.log_channel]
        for item in appends:
            keys.append(self.key(item.chat_id, "log", item.generation_id))
            keys.append(self.key(item.chat_id, "lease", item.generation_id))
            args.extend((item.first_offset, item.epoch, len(item.chunks), int(item.renew)))
            args.append(notice(item.chat_id, item.generation_id))
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
            result: list[int] = await scripts.run(self._redis, scripts.APPEND, keys, args)
        error = script_error(generation_id, first_offset, epoch, result)
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
                replies = await scripts.run_pipelined(self._redis, scripts.APPEND, calls)
        else:
            # One script for the whole batch: one command to encode, one reply to parse and
            # one notification naming every log, rather than one of each per log.
            async with self._call():
                flat: list[Any] = await scripts.run(
                    self._redis, scripts.APPEND_BATCH, *self._batch_call(appends)
                )
            replies = [flat[index : index + 2] for index in range(0, len(flat), 2)]
        results: list[StoreError | None] = []
        for item, reply in zip(appends, replies, strict=True):
            if isinstance(reply, Exception):
                results.append(mapped(reply))
            else:
                results.append(
                    script_error(item.generation_id, item.first_offset, item.epoch, reply)
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
            self.keys.log_channel,
            notice(chat_id, generation_id),
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
            result: list[int] = await scripts.run(self._redis, scripts.END, keys, args)
        error = script_error(generation_id, offset, epoch, result)
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
        if wait <= 0 or self._subscription.closed:
            return await self._range_read(chat_id, generation_id, after, limit)
        # Wait on the log-change notifications (no connection is held while waiting): the
        # waiter is registered before the read, so a change after the read wakes it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        with self._subscription.log_waiter(chat_id, generation_id) as event:
            while True:
                event.clear()
                result = await self._range_read(chat_id, generation_id, after, limit)
                remaining = deadline - loop.time()
                if result.entries or result.ended or remaining <= 0 or self._subscription.closed:
                    return result
                try:
                    async with asyncio.timeout(remaining):
                        await event.wait()
                except TimeoutError:
                    return LogRead([], False)
                if self._subscription.closed:
                    return LogRead([], False)

    async def producer_alive(self, chat_id: str, generation_id: str) -> bool:
        async with self._call():
            count: int = await self._redis.exists(self.key(chat_id, "lease", generation_id))
        return count == 1

    async def renew_lease(self, chat_id: str, generation_id: str, *, epoch: int) -> bool:
        async with self._call():
            renewed: int = await scripts.run(
                self._redis,
                scripts.RENEW,
                [self.key(chat_id, "lease", generation_id)],
                [epoch, self._lease_ms],
            )
        return renewed == 1

    async def watch_logs(self, listener: LogListener) -> None:
        with self._subscription.log_listener(listener):
            await asyncio.Future()  # until cancelled

    async def claim_generation(self, chat_id: str, generation_id: str) -> Claim | None:
        async with self._call():
            result: list[Any] = await scripts.run(
                self._redis,
                scripts.CLAIM,
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
        async with self._call():
            async for key in self._redis.scan_iter(match=self.keys.chat_pattern(), count=1000):
                name = key.decode() if isinstance(key, bytes) else str(key)
                active = cast("bytes | None", await self._redis.hget(name, "active"))
                if active is None:
                    continue
                chat_id, tag = self.keys.chat_of(name)
                if not await self._redis.exists(self.keys.lease_of_tag(tag, active.decode())):
                    found.append((chat_id, active.decode()))
        return found

    async def release_lease(self, chat_id: str, generation_id: str, *, epoch: int) -> None:
        async with self._call():
            await scripts.run(
                self._redis, scripts.RELEASE, [self.key(chat_id, "lease", generation_id)], [epoch]
            )

    # --- stop ----------------------------------------------------------------------------

    async def request_stop(self, chat_id: str, generation_id: str) -> None:
        key = self.key(chat_id, "stop", generation_id)
        async with self._call():
            await scripts.run(
                self._redis, scripts.STOP, [key], [self._log_ttl_ms, self.keys.stop_channel]
            )

    async def stop_requested(self, chat_id: str, generation_id: str) -> bool:
        async with self._call():
            count: int = await self._redis.exists(self.key(chat_id, "stop", generation_id))
        return count == 1

    async def wait_for_stop(self, chat_id: str, generation_id: str) -> None:
        key = self.key(chat_id, "stop", generation_id)
        subscription = self._subscription
        with subscription.stop_waiter(key) as waiter:
            while not subscription.closed:
                # The key is checked only while subscribed, after clearing the event: a stop
                # published later wakes us, one published earlier is in the key. The
                # subscription also wakes every waiter on each (re)subscription to re-check.
                if subscription.subscribed:
                    waiter.event.clear()
                    async with self._call():
                        stopped = await self._redis.exists(key)
                    if stopped:
                        return
                await waiter.event.wait()
                if waiter.stopped:
                    return

    # --- live sessions (bridge/store/redis/live.py) ---------------------------------------

    async def push_steering(self, chat_id: str, generation_id: str, message: bytes) -> int | None:
        return await self._live.push_steering(chat_id, generation_id, message)

    async def read_steering(
        self, chat_id: str, generation_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._live.read_steering(chat_id, generation_id, after, wait=wait)

    async def close_steering(self, chat_id: str, generation_id: str) -> None:
        await self._live.close_steering(chat_id, generation_id)

    async def put_steering_record(
        self, chat_id: str, steering_id: str, record: bytes, *, only_if_absent: bool = False
    ) -> bytes | None:
        return await self._live.put_steering_record(
            chat_id, steering_id, record, only_if_absent=only_if_absent
        )

    async def steering_record(self, chat_id: str, steering_id: str) -> bytes | None:
        return await self._live.steering_record(chat_id, steering_id)

    async def announce_generation(self, chat_id: str, generation_id: str, record: bytes) -> int:
        return await self._live.announce_generation(chat_id, generation_id, record)

    async def read_generations(
        self, chat_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._live.read_generations(chat_id, after, wait=wait)

    # --- internals -----------------------------------------------------------------------

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
