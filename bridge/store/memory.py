"""`MemoryStore`: the session store kept in this process (the default when no Redis is set).

It models the same keys and expiry times as `RedisStore` (a chat record, a history, one log,
one lease and one stop flag per generation, each with its own TTL) so both stores behave
alike under the contract tests. Expired items are dropped when touched and by a periodic
sweep, so memory does not grow with every chat ever seen.

All state changes happen without an `await` in between, so each method is atomic on the
event loop without locks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import orjson

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
from bridge.store.memory_live import MemoryLiveMixin

_Key = tuple[str, str]  # (chat_id, generation_id)
_K = TypeVar("_K")


class _Expiring(Protocol):
    expires_at: float


_Item = TypeVar("_Item", bound=_Expiring)

_SWEEP_INTERVAL_SECONDS = 60.0


@dataclass
class _Chat:
    expires_at: float
    owner: str | None = None
    active: str | None = None
    last: str | None = None
    last_ended_at: float | None = None
    revision: int = 0


@dataclass
class _History:
    expires_at: float
    # Stored serialized, like in Redis: callers can neither alias nor mutate what we keep.
    data: bytes


@dataclass
class _Log:
    expires_at: float
    chunks: list[bytes]
    outcome: Outcome | None = None
    plan: bytes = b""
    epoch: int = 1
    """The last granted producer epoch; a live lease always holds it."""
    ended_by_epoch: int | None = None
    # Replaced on every change: readers wait on the current one, writers set and swap it.
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass
class _Stop:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    expires_at: float = float("inf")
    waiters: int = 0


class MemoryStore(MemoryLiveMixin):
    """In-process `SessionStore`. `clock` gives Unix time; tests inject a fake one."""

    def __init__(
        self,
        *,
        log_ttl_seconds: float = 86400,
        history_ttl_seconds: float = 30 * 86400,
        lease_seconds: float = 15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._log_ttl = log_ttl_seconds
        self._history_ttl = history_ttl_seconds
        self._lease_ttl = lease_seconds
        self._clock = clock
        self._chats: dict[str, _Chat] = {}
        self._owned: dict[str, dict[str, ChatSummary]] = {}
        self._histories: dict[str, _History] = {}
        self._logs: dict[_Key, _Log] = {}
        self._leases: dict[_Key, float] = {}  # expiry time
        # The epoch a live lease holds; a lease without an entry holds epoch 1 (begin's).
        self._lease_epochs: dict[_Key, int] = {}
        self._listeners: set[LogListener] = set()
        self._closed_event = asyncio.Event()
        self._stops: dict[_Key, _Stop] = {}
        self._next_sweep = clock() + _SWEEP_INTERVAL_SECONDS
        self._closed = False

    async def ping(self) -> None:
        if self._closed:
            raise StoreError("the memory store is closed")

    async def start(self) -> None:
        self._closed = False
        self._closed_event = asyncio.Event()

    async def close(self) -> None:
        self._closed = True
        self._closed_event.set()
        for log in self._logs.values():
            log.notify()
        for stop in self._stops.values():
            stop.event.set()

    # --- chats -------------------------------------------------------------------------

    async def get_chat(self, chat_id: str) -> ChatState | None:
        chat = self._live(self._chats, chat_id)
        if chat is None:
            return None
        return ChatState(
            chat_id, chat.owner, chat.active, chat.last, chat.last_ended_at, chat.revision
        )

    async def claim_chat(self, chat_id: str, owner: str) -> str:
        self._maybe_sweep()
        chat = self._touch_chat(chat_id)
        if chat.owner is None:
            chat.owner = owner
        return chat.owner

    async def record_chat(self, owner: str, chat_id: str, title: str, updated_at: float) -> None:
        chats = self._owned.setdefault(owner, {})
        chats[chat_id] = ChatSummary(chat_id, title, updated_at)

    async def list_chats(self, owner: str, limit: int = 50) -> list[ChatSummary]:
        chats = self._owned.get(owner, {})
        for chat_id in [c for c in chats if self._live(self._chats, c) is None]:
            del chats[chat_id]  # the chat expired: so does its entry
        ordered = sorted(chats.values(), key=lambda item: item.updated_at, reverse=True)
        return ordered[:limit]

    async def load_messages(self, chat_id: str) -> list[JSONDict]:
        history = self._live(self._histories, chat_id)
        if history is None:
            return []
        messages: list[JSONDict] = orjson.loads(history.data)
        return messages

    async def history_size(self, chat_id: str) -> int:
        history = self._live(self._histories, chat_id)
        return 0 if history is None else len(history.data)

    async def save_messages(self, chat_id: str, messages: Sequence[JSONDict]) -> None:
        self._maybe_sweep()
        self._save_history(chat_id, messages)

    async def delete_chat(self, chat_id: str) -> None:
        chat = self._chats.pop(chat_id, None)
        if chat is not None and chat.owner is not None:
            self._owned.get(chat.owner, {}).pop(chat_id, None)
        self._histories.pop(chat_id, None)
        for key in [k for k in self._logs if k[0] == chat_id]:
            log = self._logs.pop(key)
            log.notify()  # a waiting reader wakes and finds the log gone
        for key in [k for k in self._leases if k[0] == chat_id]:
            del self._leases[key]
        for key in [k for k in self._lease_epochs if k[0] == chat_id]:
            del self._lease_epochs[key]
        for key in [k for k in self._stops if k[0] == chat_id]:
            self._stops.pop(key).event.set()  # a producer waiting for a stop ends
        self._drop_live(chat_id)

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
        self._maybe_sweep()
        chat_id, generation_id = info.chat_id, info.generation_id
        chat = self._live(self._chats, chat_id)
        if (
            chat is not None
            and chat.active is not None
            and self._lease_alive((chat_id, chat.active))
        ):
            raise ChatBusy(chat.active)
        revision = chat.revision if chat is not None else 0
        if expected_revision is not None and expected_revision != revision:
            raise StaleRevision(expected_revision, revision)
        key = (chat_id, generation_id)
        if self._live(self._logs, key) is not None:
            raise OffsetConflict(f"generation {generation_id} already has a log")
        history = orjson.dumps(list(messages))  # may raise: before any state changes
        now = self._clock()
        chat = self._touch_chat(chat_id)
        chat.active = chat.last = generation_id
        chat.last_ended_at = None
        chat.revision = revision + 1
        self._histories[chat_id] = _History(now + self._history_ttl, history)
        self._logs[key] = _Log(now + self._log_ttl, [start_chunk], plan=plan)
        self._leases[key] = now + self._lease_ttl
        return 1

    async def append(
        self,
        chat_id: str,
        generation_id: str,
        first_offset: int,
        chunks: Sequence[bytes],
        *,
        epoch: int,
    ) -> None:
        key = (chat_id, generation_id)
        log = self._live(self._logs, key)
        if log is None:
            raise GenerationNotFound(generation_id)
        if log.outcome is not None:
            raise OffsetConflict(f"generation {generation_id} has ended")
        self._check_epoch(key, epoch)
        if chunks and first_offset >= 1 and len(log.chunks) == first_offset + len(chunks):
            return  # a retry of an append that was applied: done already
        if first_offset != len(log.chunks):
            raise OffsetConflict(f"offset {first_offset} is not the next offset {len(log.chunks)}")
        log.chunks.extend(chunks)
        log.expires_at = self._clock() + self._log_ttl
        self._renew(key)
        if chunks:
            self._changed(key, log)

    async def append_many(self, appends: Sequence[Append]) -> list[StoreError | None]:
        results: list[StoreError | None] = []
        for item in appends:
            try:
                await self.append(
                    item.chat_id,
                    item.generation_id,
                    item.first_offset,
                    item.chunks,
                    epoch=item.epoch,
                )
            except StoreError as exc:
                results.append(exc)
            else:
                results.append(None)
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
        key = (chat_id, generation_id)
        log = self._live(self._logs, key)
        if log is not None and log.ended_by_epoch == epoch and len(log.chunks) == offset:
            return  # a retry of an end that was written
        if log is None:
            raise GenerationNotFound(generation_id)
        if log.outcome is None:
            self._check_epoch(key, epoch)
        log = self._writable_log(key, offset)
        chat = self._live(self._chats, chat_id)
        if messages is not None and (chat is None or chat.last in (None, generation_id)):
            # A newer generation owns the history now (this one was taken for dead).
            self._save_history(chat_id, messages)
        now = self._clock()
        log.outcome = outcome
        log.ended_by_epoch = epoch
        log.expires_at = now + self._log_ttl
        self._leases.pop(key, None)
        self._lease_epochs.pop(key, None)
        if chat is not None:
            chat.revision += 1
            chat.expires_at = now + self._history_ttl
            if chat.active == generation_id:
                chat.active = None
            # A newer generation may have replaced this one (after its lease ran out): the
            # end time describes `last`, so only this generation's own end may set it.
            if chat.last == generation_id:
                chat.last_ended_at = now
        self._changed(key, log)

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
        key = (chat_id, generation_id)
        start = max(after + 1, 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            log = self._live(self._logs, key)
            if log is None:
                raise GenerationNotFound(generation_id)
            chunks = log.chunks[start : start + limit]
            reached_end = log.outcome is not None and start + len(chunks) >= len(log.chunks)
            remaining = deadline - loop.time()
            if chunks or reached_end or remaining <= 0 or self._closed:
                entries = [LogEntry(start + i, data) for i, data in enumerate(chunks)]
                return LogRead(entries, reached_end, log.outcome if reached_end else None)
            try:
                async with asyncio.timeout(remaining):
                    await log.changed.wait()
            except TimeoutError:
                return LogRead([], False)

    async def producer_alive(self, chat_id: str, generation_id: str) -> bool:
        return self._lease_alive((chat_id, generation_id))

    async def renew_lease(self, chat_id: str, generation_id: str, *, epoch: int) -> bool:
        key = (chat_id, generation_id)
        if not self._lease_alive(key) or self._lease_epochs.get(key, 1) != epoch:
            return False
        self._renew(key)
        return True

    async def watch_logs(self, listener: LogListener) -> None:
        self._listeners.add(listener)
        try:
            await self._closed_event.wait()
        finally:
            self._listeners.discard(listener)

    async def claim_generation(self, chat_id: str, generation_id: str) -> Claim | None:
        key = (chat_id, generation_id)
        log = self._live(self._logs, key)
        if log is None or log.outcome is not None or self._lease_alive(key):
            return None
        log.epoch += 1
        self._leases[key] = self._clock() + self._lease_ttl
        self._lease_epochs[key] = log.epoch
        stop = self._live(self._stops, key)
        stopped = stop is not None and stop.event.is_set()
        return Claim(log.epoch, log.plan, len(log.chunks), stopped)

    async def orphaned_generations(self) -> list[tuple[str, str]]:
        return [
            (chat_id, chat.active)
            for chat_id, chat in list(self._chats.items())
            if chat.active is not None
            and chat.expires_at > self._clock()
            and not self._lease_alive((chat_id, chat.active))
        ]

    async def release_lease(self, chat_id: str, generation_id: str, *, epoch: int) -> None:
        key = (chat_id, generation_id)
        log = self._live(self._logs, key)
        if log is not None and self._lease_epochs.get(key, 1) == epoch:
            self._leases.pop(key, None)

    # --- stop ----------------------------------------------------------------------------

    async def request_stop(self, chat_id: str, generation_id: str) -> None:
        self._maybe_sweep()
        stop = self._stop((chat_id, generation_id))
        stop.expires_at = self._clock() + self._log_ttl
        stop.event.set()

    async def stop_requested(self, chat_id: str, generation_id: str) -> bool:
        stop = self._live(self._stops, (chat_id, generation_id))
        return stop is not None and stop.event.is_set()

    async def wait_for_stop(self, chat_id: str, generation_id: str) -> None:
        key = (chat_id, generation_id)
        stop = self._stop(key)
        stop.waiters += 1
        try:
            await stop.event.wait()
        finally:
            stop.waiters -= 1
            # Drop the record of a generation nobody waits on any more and that was never
            # stopped; otherwise every generation would leave one behind.
            if stop.waiters == 0 and not stop.event.is_set() and self._stops.get(key) is stop:
                del self._stops[key]

    # --- internals -----------------------------------------------------------------------

    def _live(self, items: dict[_K, _Item], key: _K) -> _Item | None:
        item = items.get(key)
        if item is not None and item.expires_at <= self._clock():
            del items[key]
            return None
        return item

    def _touch_chat(self, chat_id: str) -> _Chat:
        expires_at = self._clock() + self._history_ttl
        chat = self._live(self._chats, chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(expires_at)
        chat.expires_at = expires_at
        return chat

    def _save_history(self, chat_id: str, messages: Sequence[JSONDict]) -> None:
        data = orjson.dumps(list(messages))
        self._histories[chat_id] = _History(self._clock() + self._history_ttl, data)

    def _writable_log(self, key: _Key, offset: int) -> _Log:
        log = self._live(self._logs, key)
        if log is None:
            raise GenerationNotFound(key[1])
        if log.outcome is not None:
            raise OffsetConflict(f"generation {key[1]} has ended")
        if offset != len(log.chunks):
            raise OffsetConflict(f"offset {offset} is not the next offset {len(log.chunks)}")
        return log

    def _check_epoch(self, key: _Key, epoch: int) -> None:
        if not self._lease_alive(key) or self._lease_epochs.get(key, 1) != epoch:
            raise Fenced(f"generation {key[1]}: epoch {epoch} does not hold the lease")

    def _changed(self, key: _Key, log: _Log) -> None:
        log.notify()
        # The offset reached: the last chunk's, or the end marker's (one past it).
        offset = len(log.chunks) - (1 if log.outcome is None else 0)
        for listener in list(self._listeners):
            listener.log_changed(key[0], key[1], offset)

    def _lease_alive(self, key: _Key) -> bool:
        expires_at = self._leases.get(key)
        return expires_at is not None and expires_at > self._clock()

    def _renew(self, key: _Key) -> None:
        # A lapsed lease stays lapsed: once the producer was presumed dead, another process
        # may already have acted on it (like Redis PEXPIRE on a key that is gone).
        if self._lease_alive(key):
            self._leases[key] = self._clock() + self._lease_ttl

    def _stop(self, key: _Key) -> _Stop:
        stop = self._live(self._stops, key)
        if stop is None:
            stop = self._stops[key] = _Stop()
        return stop

    def _maybe_sweep(self) -> None:
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL_SECONDS
        _drop_expired(self._chats, now)
        _drop_expired(self._histories, now)
        _drop_expired(self._logs, now)
        _drop_expired(self._stops, now)
        for key in [k for k, expires_at in self._leases.items() if expires_at <= now]:
            del self._leases[key]
            self._lease_epochs.pop(key, None)


def _drop_expired(items: dict[_K, _Item], now: float) -> None:
    for key in [k for k, item in items.items() if item.expires_at <= now]:
        del items[key]
