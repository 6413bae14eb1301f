"""The `SessionStore` contract (bridge/store/base.py), run against every store.

Each test gets a `Backend`: a factory of started stores that share state (for Redis: one
key prefix, unique per test, on the real test server) and a way to let time pass (a fake
clock for the memory and SQLite stores; for Redis, which expires keys on its own clock, the
keys' TTLs are shortened as that much time would have: `age_keys`).

A test of a wake-up (a blocked read woken by an append, a stop wait by a stop, either by
`close`) first waits until its waiter is blocked, never for a while: `blocked(store, task)`
returns once the store hears of changes (`listening`: for Redis, its pub/sub subscription,
started on first use, is up, so the change itself wakes the waiter rather than the
subscription's start) and the task is parked on its wake-up event. Every store parks its
waiters on an `asyncio.Event`; `tests/support/waiting.parked` sees a task suspended in
`Event.wait` by walking the coroutines it awaits, so no store needs a hook for tests.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.store.base import (
    Append,
    ChatBusy,
    Fenced,
    GenerationInfo,
    GenerationNotFound,
    LogEntry,
    LogRead,
    OffsetConflict,
    Outcome,
    SessionStore,
)
from bridge.store.memory import MemoryStore
from bridge.store.redis.store import RedisStore
from bridge.store.sqlite.store import SQLiteStore
from tests.support.redis import (  # noqa: F401
    RedisClusterServers,
    RedisServer,
    age_keys,
    redis_cluster,
    redis_server,
)
from tests.support.waiting import parked, until

START = b'{"type":"start","messageId":"msg-1"}'
HOSTILE_CHAT_IDS = [
    "",
    "{",
    "}",
    "{}",
    "}{",
    "a}b{c",
    ":",
    "a:{b}:c",
    "%",
    "%7B",
    "chat with spaces\nand a newline",
    "💬 ünïcødé チャット",
    "x" * 10_000,
]


def chunk(i: int) -> bytes:
    return orjson.dumps({"type": "text-delta", "id": "t0", "delta": f"part {i}"})


def new_generation(chat_id: str = "chat-1") -> GenerationInfo:
    return GenerationInfo(
        generation_id=secrets.token_urlsafe(16),
        chat_id=chat_id,
        message_id="msg-1",
        created_at=time.time(),
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    kind: str
    redis_url: str | None = None
    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex}")
    clock: FakeClock = field(default_factory=FakeClock)
    stores: list[SessionStore] = field(default_factory=list)
    data_dir: Path | None = None
    """SQLite: each store gets its own file here (one process, one store per file)."""

    async def make(self, **options: Any) -> SessionStore:
        """A started store; every store of one backend sees the same data (Redis only)."""
        store: SessionStore
        if self.kind == "sqlite":
            assert self.data_dir is not None
            path = self.data_dir / f"store-{len(self.stores)}.sqlite3"
            store = SQLiteStore(path, clock=self.clock, **options)
        elif self.redis_url is None:
            store = MemoryStore(clock=self.clock, **options)
        else:
            store = RedisStore(self.redis_url, key_prefix=self.prefix, **options)
        await store.start()
        self.stores.append(store)
        return store

    async def advance(self, seconds: float) -> None:
        if self.redis_url is None:
            self.clock.now += seconds
        else:
            await age_keys(self.redis_url, self.prefix, seconds)  # Redis keeps its own clock

    async def close(self) -> None:
        for store in self.stores:
            await store.close()


def backend_of(request: pytest.FixtureRequest) -> Backend:
    """The backend named by the fixture's parameter (its servers from their fixtures)."""
    url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    elif request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        url = cluster.url
    backend = Backend(request.param, url)
    if request.param == "sqlite":
        backend.data_dir = request.getfixturevalue("tmp_path")
    return backend


@pytest.fixture(params=["memory", "redis", "cluster", "sqlite"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    backend = backend_of(request)
    yield backend
    await backend.close()


@pytest.fixture
async def store(backend: Backend) -> SessionStore:
    return await backend.make()


async def begin(
    store: SessionStore, chat_id: str = "chat-1", messages: list[dict[str, Any]] | None = None
) -> GenerationInfo:
    info = new_generation(chat_id)
    await store.begin_generation(info, START, messages or [])
    return info


async def take_over(backend: Backend, store: SessionStore, info: GenerationInfo) -> int:
    """Claim a generation whose lease lapsed, as a takeover does: the new epoch."""
    claim = await store.claim_generation(info.chat_id, info.generation_id)
    assert claim is not None
    return claim.epoch


async def read_to_end(store: SessionStore, info: GenerationInfo, after: int = -1) -> LogRead:
    """Everything after `after` that is there now, over as many reads as it takes."""
    entries: list[LogEntry] = []
    while True:
        result = await store.read(info.chat_id, info.generation_id, after, limit=7)
        entries += result.entries
        if result.ended or not result.entries:
            return LogRead(entries, result.ended, result.outcome)
        after = result.entries[-1].offset


async def listening(store: SessionStore) -> None:
    """Until `store` hears of changes made by any store: a wait for a stop already requested
    returns only once the waiter could have heard of it (Redis checks the stop key only while
    its subscription is up, and starts it on first use; memory and SQLite return at once)."""
    generation_id = f"listening-{uuid.uuid4().hex}"
    await store.request_stop("listening", generation_id)
    await asyncio.wait_for(store.wait_for_stop("listening", generation_id), 10)


async def blocked(store: SessionStore, *waiters: asyncio.Task[Any]) -> None:
    """Until each waiter (a blocking call on `store`) is parked on its wake-up event, with
    the store listening: what the test does next is what wakes them."""
    await listening(store)
    await parked(*waiters)


def expected(count: int) -> list[LogEntry]:
    """The log of a generation with `count` chunks appended after the start chunk."""
    return [LogEntry(0, START)] + [LogEntry(i, chunk(i)) for i in range(1, count + 1)]


async def append_range(store: SessionStore, info: GenerationInfo, first: int, last: int) -> None:
    chunks = [chunk(i) for i in range(first, last + 1)]
    await store.append(info.chat_id, info.generation_id, first, chunks, epoch=1)


# --- reading ---------------------------------------------------------------------------


async def test_read_returns_start_and_appended_chunks_in_order(store: SessionStore) -> None:
    info = await begin(store)
    await append_range(store, info, 1, 3)
    await append_range(store, info, 4, 4)

    result = await store.read(info.chat_id, info.generation_id, -1)

    assert result == LogRead(expected(4), ended=False)


@pytest.mark.parametrize("after", [-1, 0, 1, 4, 5, 9])
async def test_read_after_offset_has_no_gap_or_duplicate(store: SessionStore, after: int) -> None:
    info = await begin(store)
    await append_range(store, info, 1, 5)

    result = await store.read(info.chat_id, info.generation_id, after)

    assert result.entries == expected(5)[after + 1 :]
    assert not result.ended


async def test_read_limit_caps_entries_and_resumes(store: SessionStore) -> None:
    info = await begin(store)
    await append_range(store, info, 1, 9)

    first = await store.read(info.chat_id, info.generation_id, -1, limit=4)
    second = await store.read(info.chat_id, info.generation_id, first.entries[-1].offset, limit=4)

    assert first.entries == expected(9)[:4]
    assert second.entries == expected(9)[4:8]


async def test_read_limit_ending_at_end_marker_reports_ended(store: SessionStore) -> None:
    info = await begin(store)
    await append_range(store, info, 1, 3)
    await store.end_generation(info.chat_id, info.generation_id, 4, Outcome.FINISHED, None, epoch=1)

    short = await store.read(info.chat_id, info.generation_id, -1, limit=3)
    exact = await store.read(info.chat_id, info.generation_id, -1, limit=4)

    assert (short.entries, short.ended) == (expected(3)[:3], False)
    assert exact == LogRead(expected(3), ended=True, outcome=Outcome.FINISHED)


async def test_read_rejects_limit_below_one(store: SessionStore) -> None:
    info = await begin(store)
    with pytest.raises(ValueError, match="limit"):
        await store.read(info.chat_id, info.generation_id, -1, limit=0)


async def test_read_unknown_generation_raises_not_found(store: SessionStore) -> None:
    info = await begin(store)

    with pytest.raises(GenerationNotFound):
        await store.read(info.chat_id, "no-such-generation", -1)
    with pytest.raises(GenerationNotFound):
        await store.read("another-chat", info.generation_id, -1)
    with pytest.raises(GenerationNotFound):
        await store.read("another-chat", "no-such-generation", -1, wait=5)


async def test_read_blocking_wakes_on_append(store: SessionStore) -> None:
    info = await begin(store)
    reader = asyncio.create_task(store.read(info.chat_id, info.generation_id, 0, wait=60))
    await blocked(store, reader)

    await append_range(store, info, 1, 2)
    result = await asyncio.wait_for(reader, 10)

    # Woken by the append: a read whose wait ran out would have returned nothing.
    assert result == LogRead(expected(2)[1:], ended=False)


async def test_read_blocking_wakes_on_end(store: SessionStore) -> None:
    info = await begin(store)
    reader = asyncio.create_task(store.read(info.chat_id, info.generation_id, 0, wait=60))
    await blocked(store, reader)

    await store.end_generation(info.chat_id, info.generation_id, 1, Outcome.ERROR, None, epoch=1)

    assert await asyncio.wait_for(reader, 5) == LogRead([], ended=True, outcome=Outcome.ERROR)


async def test_read_blocking_times_out_empty(store: SessionStore) -> None:
    info = await begin(store)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async with asyncio.timeout(30):  # ends when its wait does, however loaded the machine
        result = await store.read(info.chat_id, info.generation_id, 0, wait=0.3)

    assert result == LogRead([], ended=False)
    assert loop.time() - started >= 0.25  # it did wait


async def test_read_blocking_returns_at_once_when_data_is_there(store: SessionStore) -> None:
    info = await begin(store)

    async with asyncio.timeout(30):  # a read that waited would take its whole minute
        result = await store.read(info.chat_id, info.generation_id, -1, wait=60)

    assert result.entries == expected(0)


async def test_read_two_readers_see_identical_sequences(store: SessionStore) -> None:
    info = await begin(store)
    seen: list[list[LogEntry]] = [[], []]

    async def follow(into: list[LogEntry]) -> None:
        after = -1
        while True:
            result = await store.read(info.chat_id, info.generation_id, after, limit=3, wait=5)
            into += result.entries
            if result.ended:
                return
            if result.entries:
                after = result.entries[-1].offset

    async def both_read(count: int) -> None:
        await until(lambda: all(len(into) >= count for into in seen), 10, f"{count} entries read")

    readers = [asyncio.create_task(follow(into)) for into in seen]
    for first in range(1, 20, 4):
        await append_range(store, info, first, first + 3)
        # Both read this batch (over two reads of 3) before the next: they follow a growing log.
        await both_read(first + 4)
    await store.end_generation(
        info.chat_id, info.generation_id, 21, Outcome.FINISHED, None, epoch=1
    )

    await asyncio.wait_for(asyncio.gather(*readers), 10)
    assert seen[0] == seen[1] == expected(20)


# --- ending ----------------------------------------------------------------------------


async def test_end_generation_marks_log_ended_with_outcome(store: SessionStore) -> None:
    info = await begin(store)
    await append_range(store, info, 1, 2)

    await store.end_generation(info.chat_id, info.generation_id, 3, Outcome.ABORTED, None, epoch=1)

    assert await read_to_end(store, info) == LogRead(expected(2), True, Outcome.ABORTED)
    for after in (2, 3, 10, 1 << 62):  # at or past the last chunk: nothing more, and it says so
        result = await store.read(info.chat_id, info.generation_id, after, wait=5)
        assert result == LogRead([], ended=True, outcome=Outcome.ABORTED)


async def test_end_generation_updates_chat_and_drops_lease(
    backend: Backend, store: SessionStore
) -> None:
    info = await begin(store)
    before = await store.get_chat(info.chat_id)
    assert before is not None
    assert (before.active_generation_id, before.last_generation_id) == (info.generation_id,) * 2
    assert before.last_ended_at is None

    await store.end_generation(info.chat_id, info.generation_id, 1, Outcome.FINISHED, None, epoch=1)

    after = await store.get_chat(info.chat_id)
    assert after is not None
    assert after.active_generation_id is None
    assert after.last_generation_id == info.generation_id
    assert after.last_ended_at is not None
    now = backend.clock.now if backend.redis_url is None else time.time()
    assert abs(after.last_ended_at - now) < 5
    assert not await store.producer_alive(info.chat_id, info.generation_id)


async def test_end_generation_clears_active_only_if_it_names_the_generation(
    backend: Backend,
) -> None:
    store = await backend.make(lease_seconds=3)
    old = await begin(store)
    await backend.advance(5)  # the old producer is presumed dead
    new = await begin(store)
    epoch = await take_over(backend, store, old)

    await store.end_generation(
        old.chat_id, old.generation_id, 1, Outcome.ABORTED, None, epoch=epoch
    )

    chat = await store.get_chat(old.chat_id)
    assert chat is not None
    assert chat.active_generation_id == new.generation_id
    assert chat.last_generation_id == new.generation_id
    assert chat.last_ended_at is None  # describes `last`, which still runs
    assert await store.producer_alive(new.chat_id, new.generation_id)


# --- offsets ---------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 2, 5, -1])
async def test_append_wrong_offset_conflicts_and_writes_nothing(
    store: SessionStore, offset: int
) -> None:
    info = await begin(store)

    with pytest.raises(OffsetConflict):
        await store.append(info.chat_id, info.generation_id, offset, [chunk(7), chunk(8)], epoch=1)

    assert await read_to_end(store, info) == LogRead(expected(0), ended=False)
    await append_range(store, info, 1, 1)  # the right offset still works
    assert await read_to_end(store, info) == LogRead(expected(1), ended=False)


async def test_append_after_end_conflicts(store: SessionStore) -> None:
    info = await begin(store)
    await store.end_generation(info.chat_id, info.generation_id, 1, Outcome.FINISHED, None, epoch=1)

    for offset in (1, 2):
        with pytest.raises(OffsetConflict):
            await store.append(info.chat_id, info.generation_id, offset, [chunk(1)], epoch=1)
    with pytest.raises(OffsetConflict):
        await store.end_generation(
            info.chat_id, info.generation_id, 2, Outcome.ERROR, None, epoch=1
        )

    assert await read_to_end(store, info) == LogRead(expected(0), True, Outcome.FINISHED)


@pytest.mark.parametrize("offset", [0, 1, 3])
async def test_end_generation_wrong_offset_conflicts_and_changes_nothing(
    store: SessionStore, offset: int
) -> None:
    info = await begin(store, messages=[{"id": "u1"}])
    await append_range(store, info, 1, 1)

    with pytest.raises(OffsetConflict):
        await store.end_generation(
            info.chat_id, info.generation_id, offset, Outcome.FINISHED, [{"id": "changed"}], epoch=1
        )

    assert await read_to_end(store, info) == LogRead(expected(1), ended=False)
    chat = await store.get_chat(info.chat_id)
    assert chat is not None
    assert chat.active_generation_id == info.generation_id
    assert await store.load_messages(info.chat_id) == [{"id": "u1"}]
    assert await store.producer_alive(info.chat_id, info.generation_id)


async def test_append_unknown_generation_raises_not_found(store: SessionStore) -> None:
    with pytest.raises(GenerationNotFound):
        await store.append("chat-1", "no-such-generation", 1, [chunk(1)], epoch=1)
    with pytest.raises(GenerationNotFound):
        await store.end_generation("chat-1", "no-such-generation", 1, Outcome.ERROR, None, epoch=1)


async def test_append_empty_batch_checks_offset_and_writes_nothing(store: SessionStore) -> None:
    info = await begin(store)

    await store.append(info.chat_id, info.generation_id, 1, [], epoch=1)
    with pytest.raises(OffsetConflict):
        await store.append(info.chat_id, info.generation_id, 2, [], epoch=1)

    assert await read_to_end(store, info) == LogRead(expected(0), ended=False)


# --- begin, lease ----------------------------------------------------------------------


async def test_begin_while_active_and_alive_raises_chat_busy(store: SessionStore) -> None:
    running = await begin(store, messages=[{"id": "u1"}])

    with pytest.raises(ChatBusy) as caught:
        await begin(store, messages=[{"id": "u2"}])

    assert caught.value.active_generation_id == running.generation_id
    chat = await store.get_chat(running.chat_id)
    assert chat is not None
    assert chat.active_generation_id == chat.last_generation_id == running.generation_id
    assert await store.load_messages(running.chat_id) == [{"id": "u1"}]


async def test_begin_other_chat_is_not_busy(store: SessionStore) -> None:
    await begin(store, "chat-1")
    await begin(store, "chat-2")


async def test_begin_after_end_starts_new_generation(store: SessionStore) -> None:
    first = await begin(store)
    await store.end_generation(
        first.chat_id, first.generation_id, 1, Outcome.FINISHED, None, epoch=1
    )

    second = await begin(store)

    chat = await store.get_chat(second.chat_id)
    assert chat is not None
    assert chat.active_generation_id == chat.last_generation_id == second.generation_id
    assert chat.last_ended_at is None
    assert await read_to_end(store, first) == LogRead(expected(0), True, Outcome.FINISHED)
    assert await read_to_end(store, second) == LogRead(expected(0), ended=False)


async def test_begin_after_lease_expiry_replaces_dead_generation(backend: Backend) -> None:
    store = await backend.make(lease_seconds=3)
    dead = await begin(store)
    await append_range(store, dead, 1, 2)
    assert await store.producer_alive(dead.chat_id, dead.generation_id)

    await backend.advance(5)
    assert not await store.producer_alive(dead.chat_id, dead.generation_id)
    fresh = await begin(store)

    chat = await store.get_chat(fresh.chat_id)
    assert chat is not None
    assert chat.active_generation_id == fresh.generation_id
    assert await read_to_end(store, dead) == LogRead(expected(2), ended=False)  # left as it was


async def test_begin_existing_generation_id_conflicts(store: SessionStore) -> None:
    info = await begin(store)
    await store.end_generation(info.chat_id, info.generation_id, 1, Outcome.FINISHED, None, epoch=1)

    with pytest.raises(OffsetConflict):
        await store.begin_generation(info, START, [])


async def test_lease_is_kept_alive_by_appends_and_renewals(backend: Backend) -> None:
    store = await backend.make(lease_seconds=4)
    info = await begin(store)

    await backend.advance(2.5)
    await append_range(store, info, 1, 1)
    await backend.advance(2.5)
    await store.renew_lease(info.chat_id, info.generation_id, epoch=1)
    await backend.advance(2.5)
    assert await store.producer_alive(info.chat_id, info.generation_id)  # 7.5 s after begin

    await backend.advance(5)
    assert not await store.producer_alive(info.chat_id, info.generation_id)


async def test_lapsed_lease_is_not_revived(backend: Backend) -> None:
    store = await backend.make(lease_seconds=3)
    info = await begin(store)
    await backend.advance(5)

    assert not await store.renew_lease(info.chat_id, info.generation_id, epoch=1)
    with pytest.raises(Fenced):
        await append_range(store, info, 1, 1)

    assert not await store.producer_alive(info.chat_id, info.generation_id)
    assert not await store.producer_alive(info.chat_id, "no-such-generation")


async def test_renew_lease_reports_whether_the_epoch_holds(backend: Backend) -> None:
    store = await backend.make(lease_seconds=4)
    info = await begin(store)

    assert await store.renew_lease(info.chat_id, info.generation_id, epoch=1)
    assert not await store.renew_lease(info.chat_id, info.generation_id, epoch=2)
    assert not await store.renew_lease(info.chat_id, "no-such-generation", epoch=1)


# --- fencing ---------------------------------------------------------------------------------


async def test_fenced_producer_cannot_append_renew_or_end(backend: Backend) -> None:
    store = await backend.make(lease_seconds=3)
    info = await begin(store)
    await backend.advance(5)
    epoch = await take_over(backend, store, info)

    with pytest.raises(Fenced):
        await store.append(info.chat_id, info.generation_id, 1, [chunk(1)], epoch=1)
    with pytest.raises(Fenced):
        await store.end_generation(
            info.chat_id, info.generation_id, 1, Outcome.FINISHED, None, epoch=1
        )
    assert not await store.renew_lease(info.chat_id, info.generation_id, epoch=1)

    await store.append(info.chat_id, info.generation_id, 1, [chunk(1)], epoch=epoch)
    await store.end_generation(
        info.chat_id, info.generation_id, 2, Outcome.ERROR, None, epoch=epoch
    )
    assert await read_to_end(store, info) == LogRead(expected(1), True, Outcome.ERROR)


async def test_lapsed_lease_unclaimed_refuses_the_producer(backend: Backend) -> None:
    store = await backend.make(lease_seconds=3)
    info = await begin(store)
    await backend.advance(5)

    with pytest.raises(Fenced):
        await store.end_generation(
            info.chat_id, info.generation_id, 1, Outcome.FINISHED, None, epoch=1
        )
    assert await read_to_end(store, info) == LogRead(expected(0), ended=False)


async def test_append_retried_after_a_lost_reply_counts_once(store: SessionStore) -> None:
    info = await begin(store)
    await append_range(store, info, 1, 3)

    await append_range(store, info, 1, 3)  # the same append again: its reply was lost
    with pytest.raises(OffsetConflict):
        await append_range(store, info, 2, 2)  # not a retry: a real conflict

    assert await read_to_end(store, info) == LogRead(expected(3), ended=False)


async def test_end_retried_after_a_lost_reply_counts_once(store: SessionStore) -> None:
    info = await begin(store)
    await append_range(store, info, 1, 1)
    await store.end_generation(info.chat_id, info.generation_id, 2, Outcome.FINISHED, None, epoch=1)

    await store.end_generation(info.chat_id, info.generation_id, 2, Outcome.FINISHED, None, epoch=1)
    with pytest.raises(OffsetConflict):
        await store.end_generation(
            info.chat_id, info.generation_id, 2, Outcome.FINISHED, None, epoch=2
        )

    assert await read_to_end(store, info) == LogRead(expected(1), True, Outcome.FINISHED)


async def test_append_many_checks_each_append_on_its_own(backend: Backend) -> None:
    store = await backend.make()
    first, second, third = [await begin(store, f"chat-{i}") for i in range(3)]
    results = await store.append_many(
        [
            Append(first.chat_id, first.generation_id, 1, [chunk(1), chunk(2)], 1),
            Append(second.chat_id, second.generation_id, 5, [chunk(5)], 1),
            Append(third.chat_id, third.generation_id, 1, [], 1),  # a renewal
            Append("chat-x", "no-such-generation", 1, [chunk(1)], 1),
            Append(third.chat_id, third.generation_id, 1, [chunk(1)], 7),
        ]
    )

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], OffsetConflict)
    assert isinstance(results[3], GenerationNotFound)
    assert isinstance(results[4], Fenced)
    assert await read_to_end(store, first) == LogRead(expected(2), ended=False)
    assert await read_to_end(store, second) == LogRead(expected(0), ended=False)
    assert await read_to_end(store, third) == LogRead(expected(0), ended=False)
    assert await store.append_many([]) == []


# --- chats and history -------------------------------------------------------------------


async def test_get_chat_unknown_returns_none(store: SessionStore) -> None:
    assert await store.get_chat("unknown") is None


async def test_claim_chat_first_owner_wins(store: SessionStore) -> None:
    assert await store.claim_chat("chat-1", "alice") == "alice"
    assert await store.claim_chat("chat-1", "bob") == "alice"
    assert await store.claim_chat("chat-2", "bob") == "bob"

    chat = await store.get_chat("chat-1")
    assert chat is not None
    assert (chat.owner, chat.active_generation_id, chat.last_generation_id) == ("alice", None, None)


async def test_claim_chat_keeps_owner_across_generations(store: SessionStore) -> None:
    await store.claim_chat("chat-1", "alice")
    info = await begin(store)
    await store.end_generation(info.chat_id, info.generation_id, 1, Outcome.FINISHED, None, epoch=1)

    assert await store.claim_chat("chat-1", "bob") == "alice"


async def test_messages_save_and_load_round_trip(store: SessionStore) -> None:
    messages: list[dict[str, Any]] = [
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi ü {}"}]},
        {"id": "a1", "role": "assistant", "parts": [], "metadata": {"n": 1.5, "ok": None}},
    ]
    assert await store.load_messages("chat-1") == []

    await store.save_messages("chat-1", messages)
    messages[0]["id"] = "mutated after saving"

    loaded = await store.load_messages("chat-1")
    assert loaded[0]["id"] == "u1"
    assert loaded[1] == messages[1]
    await store.save_messages("chat-1", [])
    assert await store.load_messages("chat-1") == []


async def test_messages_history_size_is_the_stored_json_size(store: SessionStore) -> None:
    assert await store.history_size("chat-1") == 0
    messages: list[dict[str, Any]] = [{"id": "u1", "parts": [{"text": "hi ü"}]}, {"id": "a1"}]
    await store.save_messages("chat-1", messages)
    assert await store.history_size("chat-1") == len(orjson.dumps(messages))
    info = await begin(store, messages=[{"id": "u2"}])
    assert await store.history_size(info.chat_id) == len(b'[{"id":"u2"}]')


async def test_messages_replaced_by_begin_and_end(store: SessionStore) -> None:
    await store.save_messages("chat-1", [{"id": "old"}])
    info = await begin(store, messages=[{"id": "u1"}])
    assert await store.load_messages("chat-1") == [{"id": "u1"}]

    await store.end_generation(
        info.chat_id, info.generation_id, 1, Outcome.FINISHED, [{"id": "u1"}, {"id": "a1"}], epoch=1
    )
    assert await store.load_messages("chat-1") == [{"id": "u1"}, {"id": "a1"}]

    second = await begin(store, messages=[{"id": "u1"}, {"id": "a1"}, {"id": "u2"}])
    await store.end_generation(
        second.chat_id, second.generation_id, 1, Outcome.ERROR, None, epoch=1
    )
    assert await store.load_messages("chat-1") == [{"id": "u1"}, {"id": "a1"}, {"id": "u2"}]


# --- expiry ----------------------------------------------------------------------------


async def test_log_expires_after_log_ttl_once_ended(backend: Backend) -> None:
    store = await backend.make(log_ttl_seconds=5)
    info = await begin(store)
    await store.end_generation(info.chat_id, info.generation_id, 1, Outcome.FINISHED, None, epoch=1)
    await backend.advance(2)
    assert (await store.read(info.chat_id, info.generation_id, -1)).ended

    await backend.advance(5)

    with pytest.raises(GenerationNotFound):
        await store.read(info.chat_id, info.generation_id, -1)


async def test_log_ttl_of_running_log_is_refreshed_by_appends(backend: Backend) -> None:
    store = await backend.make(log_ttl_seconds=5, lease_seconds=100)
    info = await begin(store)

    await backend.advance(3)
    await append_range(store, info, 1, 1)
    await backend.advance(3)  # 6 s after begin, 3 s after the append
    assert (await store.read(info.chat_id, info.generation_id, -1)).entries == expected(1)

    await backend.advance(5)
    with pytest.raises(GenerationNotFound):
        await store.read(info.chat_id, info.generation_id, -1)


async def test_history_and_chat_expire_after_history_ttl(backend: Backend) -> None:
    store = await backend.make(history_ttl_seconds=5)
    await store.claim_chat("chat-1", "alice")
    await store.save_messages("chat-1", [{"id": "u1"}])
    await backend.advance(2)
    assert await store.load_messages("chat-1") == [{"id": "u1"}]

    await backend.advance(5)

    assert await store.load_messages("chat-1") == []
    assert await store.get_chat("chat-1") is None
    assert await store.claim_chat("chat-1", "bob") == "bob"


# --- stop ------------------------------------------------------------------------------


async def test_request_stop_wakes_waiter(store: SessionStore) -> None:
    info = await begin(store)
    waiter = asyncio.create_task(store.wait_for_stop(info.chat_id, info.generation_id))
    await blocked(store, waiter)

    await store.request_stop(info.chat_id, info.generation_id)

    await asyncio.wait_for(waiter, 10)


async def test_request_stop_before_waiting_is_seen(store: SessionStore) -> None:
    info = await begin(store)
    await store.request_stop(info.chat_id, info.generation_id)
    await store.request_stop(info.chat_id, info.generation_id)  # idempotent

    await asyncio.wait_for(store.wait_for_stop(info.chat_id, info.generation_id), 5)
    await asyncio.wait_for(store.wait_for_stop(info.chat_id, info.generation_id), 5)


async def test_request_stop_wakes_only_that_generation(store: SessionStore) -> None:
    stopped, other = await begin(store, "chat-1"), await begin(store, "chat-2")
    stopped_waiter = asyncio.create_task(
        store.wait_for_stop(stopped.chat_id, stopped.generation_id)
    )
    other_waiter = asyncio.create_task(store.wait_for_stop(other.chat_id, other.generation_id))
    await blocked(store, stopped_waiter, other_waiter)

    await store.request_stop(stopped.chat_id, stopped.generation_id)
    await asyncio.wait_for(stopped_waiter, 10)

    # The stop reached its own waiter, so one delivered to the other would have reached it
    # too (same notice, same turn); a round trip to the store gives it a turn to finish.
    assert not await store.stop_requested(other.chat_id, other.generation_id)
    assert not other_waiter.done()
    other_waiter.cancel()
    await asyncio.gather(other_waiter, return_exceptions=True)


async def test_wait_for_stop_is_cancellable_and_can_wait_again(store: SessionStore) -> None:
    info = await begin(store)
    first = asyncio.create_task(store.wait_for_stop(info.chat_id, info.generation_id))
    await blocked(store, first)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    second = asyncio.create_task(store.wait_for_stop(info.chat_id, info.generation_id))
    await blocked(store, second)
    await store.request_stop(info.chat_id, info.generation_id)
    await asyncio.wait_for(second, 10)


# --- lifecycle ---------------------------------------------------------------------------


async def test_close_wakes_blocked_reader_and_stop_waiter(backend: Backend) -> None:
    store = await backend.make()
    info = await begin(store)
    reader = asyncio.create_task(store.read(info.chat_id, info.generation_id, 0, wait=60))
    waiter = asyncio.create_task(store.wait_for_stop(info.chat_id, info.generation_id))
    await blocked(store, reader, waiter)

    await store.close()

    result = await asyncio.wait_for(reader, 10)
    assert result == LogRead([], ended=False)
    await asyncio.wait_for(waiter, 10)


# --- hostile chat ids --------------------------------------------------------------------


@pytest.mark.parametrize("chat_id", HOSTILE_CHAT_IDS, ids=range(len(HOSTILE_CHAT_IDS)))
async def test_hostile_chat_id_round_trips(store: SessionStore, chat_id: str) -> None:
    assert await store.claim_chat(chat_id, "alice") == "alice"
    info = await begin(store, chat_id, messages=[{"id": chat_id}])
    await append_range(store, info, 1, 2)
    await store.request_stop(chat_id, info.generation_id)
    await asyncio.wait_for(store.wait_for_stop(chat_id, info.generation_id), 5)
    await store.end_generation(chat_id, info.generation_id, 3, Outcome.ABORTED, None, epoch=1)

    chat = await store.get_chat(chat_id)
    assert chat is not None
    assert (chat.chat_id, chat.owner, chat.last_generation_id) == (
        chat_id,
        "alice",
        info.generation_id,
    )
    assert await store.load_messages(chat_id) == [{"id": chat_id}]
    assert await read_to_end(store, info) == LogRead(expected(2), True, Outcome.ABORTED)


async def test_hostile_chat_ids_do_not_share_state(store: SessionStore) -> None:
    for chat_id in HOSTILE_CHAT_IDS:
        await store.claim_chat(chat_id, f"owner of {chat_id}")
        # Would raise ChatBusy if two ids shared a chat record.
        await begin(store, chat_id, messages=[{"id": chat_id}])

    for chat_id in HOSTILE_CHAT_IDS:
        assert await store.load_messages(chat_id) == [{"id": chat_id}]
        assert await store.claim_chat(chat_id, "someone else") == f"owner of {chat_id}"


# --- concurrent readers, property-based ----------------------------------------------------


async def _replay_concurrently(store: SessionStore, batches: list[int], limits: list[int]) -> None:
    info = await begin(store)

    async def follow(limit: int) -> list[LogEntry]:
        seen: list[LogEntry] = []
        after = -1
        while True:
            result = await store.read(info.chat_id, info.generation_id, after, limit=limit, wait=5)
            seen += result.entries
            if result.ended:
                assert result.outcome is Outcome.FINISHED
                return seen
            if result.entries:
                after = result.entries[-1].offset

    readers = [asyncio.create_task(follow(limit)) for limit in limits]
    offset = 1
    for size in batches:
        await append_range(store, info, offset, offset + size - 1)
        offset += size
        # Not a wait for anything: one turn of the loop, so readers interleave with the
        # producer in as many ways as the examples draw (the result must not depend on it).
        await asyncio.sleep(0)
    await store.end_generation(
        info.chat_id, info.generation_id, offset, Outcome.FINISHED, None, epoch=1
    )

    async with asyncio.timeout(20):
        results = await asyncio.gather(*readers)
    for seen in results:
        assert seen == expected(offset - 1)


@pytest.mark.parametrize("kind", ["memory", "redis", "sqlite"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batches=st.lists(st.integers(min_value=1, max_value=40), max_size=12),
    limits=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=4),
)
def test_concurrent_readers_see_every_batch_once_in_order(
    request: pytest.FixtureRequest, kind: str, batches: list[int], limits: list[int]
) -> None:
    url = request.getfixturevalue("redis_server").url if kind == "redis" else None

    async def run(data_dir: str) -> None:
        backend = Backend(kind, url, data_dir=Path(data_dir))
        try:
            await _replay_concurrently(await backend.make(), batches, limits)
        finally:
            await backend.close()

    with tempfile.TemporaryDirectory() as data_dir:
        asyncio.run(run(data_dir))


# --- MemoryStore specifics -------------------------------------------------------------------


async def test_memory_store_sweeps_expired_items() -> None:
    clock = FakeClock()
    store = MemoryStore(log_ttl_seconds=60, history_ttl_seconds=600, lease_seconds=5, clock=clock)
    for n in range(5):
        info = await begin(store, f"chat-{n}")
        await store.request_stop(info.chat_id, info.generation_id)
        await store.end_generation(
            info.chat_id, info.generation_id, 1, Outcome.FINISHED, None, epoch=1
        )

    clock.now += 3600
    kept = await begin(store, "chat-new")  # writes sweep now and then: no reads needed

    state = (store._chats, store._histories, store._logs, store._leases, store._stops)
    assert [list(items) for items in state] == [
        ["chat-new"],
        ["chat-new"],
        [(kept.chat_id, kept.generation_id)],
        [(kept.chat_id, kept.generation_id)],
        [],
    ]


async def test_memory_store_forgets_stop_waits_that_ended_without_stop() -> None:
    store = MemoryStore()
    info = await begin(store)
    waiter = asyncio.create_task(store.wait_for_stop(info.chat_id, info.generation_id))
    await parked(waiter)
    assert store._stops

    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)

    assert not store._stops


async def test_end_of_a_replaced_generation_keeps_the_newer_history(backend: Backend) -> None:
    store = await backend.make(lease_seconds=3)
    dead = await begin(store, messages=[{"id": "old", "role": "user", "parts": []}])
    await backend.advance(5)
    newer_history = [{"id": "new", "role": "user", "parts": []}]
    await begin(store, messages=newer_history)

    # Whoever closes the dead generation late must not overwrite the new turn's history.
    stale = [
        {"id": "old", "role": "user", "parts": []},
        {"id": "a", "role": "assistant", "parts": []},
    ]
    epoch = await take_over(backend, store, dead)
    await store.end_generation(
        dead.chat_id, dead.generation_id, 1, Outcome.ERROR, stale, epoch=epoch
    )

    assert await store.load_messages(dead.chat_id) == newer_history


async def test_live_read_wakes_on_append_and_reaches_the_end(store: SessionStore) -> None:
    info = await begin(store)
    first = await store.read(info.chat_id, info.generation_id, -1, wait=1)
    assert first.entries == expected(0)

    waiting = asyncio.create_task(
        store.read(info.chat_id, info.generation_id, 0, wait=60, live=True)
    )
    await blocked(store, waiting)
    await append_range(store, info, 1, 2)
    woken = await asyncio.wait_for(waiting, 10)
    assert woken.entries == expected(2)[1:]

    await store.end_generation(info.chat_id, info.generation_id, 3, Outcome.FINISHED, None, epoch=1)
    last = await store.read(info.chat_id, info.generation_id, 2, wait=5, live=True)
    assert last == LogRead([], ended=True, outcome=Outcome.FINISHED)


async def test_live_read_of_an_expired_log_raises(backend: Backend) -> None:
    store = await backend.make(log_ttl_seconds=3, lease_seconds=100)
    info = await begin(store)
    await store.end_generation(info.chat_id, info.generation_id, 1, Outcome.FINISHED, None, epoch=1)
    await backend.advance(6)
    with pytest.raises(GenerationNotFound):
        await store.read(info.chat_id, info.generation_id, 0, wait=0.2, live=True)


async def test_list_chats_orders_by_update_and_keeps_owners_apart(store: SessionStore) -> None:
    for index, chat_id in enumerate(["a", "b", "c"]):
        await store.claim_chat(chat_id, "alice")
        await store.record_chat("alice", chat_id, f"title {chat_id}", 1000.0 + index)
    await store.claim_chat("z", "bob")
    await store.record_chat("bob", "z", "bob's", 5000.0)
    await store.record_chat("alice", "a", "renamed", 2000.0)

    chats = await store.list_chats("alice")
    assert [(c.chat_id, c.title) for c in chats] == [
        ("a", "renamed"),
        ("c", "title c"),
        ("b", "title b"),
    ]
    assert [c.chat_id for c in await store.list_chats("alice", limit=2)] == ["a", "c"]
    assert [c.chat_id for c in await store.list_chats("bob")] == ["z"]
    assert await store.list_chats("nobody") == []


# --- deleting a chat -----------------------------------------------------------------------


async def _chat_with_everything(store: SessionStore, chat_id: str) -> list[GenerationInfo]:
    """A chat with an owner, a list entry, a history, an ended and a running generation,
    a stop, steering and a feed: every kind of item a chat has."""
    await store.claim_chat(chat_id, "alice")
    await store.record_chat("alice", chat_id, "title", 1000.0)
    ended = await begin(store, chat_id, messages=[{"id": "m1"}])
    await append_range(store, ended, 1, 2)
    await store.end_generation(chat_id, ended.generation_id, 3, Outcome.FINISHED, None, epoch=1)
    running = await begin(store, chat_id, messages=[{"id": "m2"}])
    await append_range(store, running, 1, 1)
    await store.request_stop(chat_id, running.generation_id)
    await store.push_steering(chat_id, running.generation_id, b'{"steer":1}')
    await store.put_steering_record(chat_id, "steer-1", b'{"state":"queued"}')
    await store.announce_generation(chat_id, running.generation_id, b'{"generation":1}')
    return [ended, running]


async def _assert_unused(store: SessionStore, chat_id: str, infos: list[GenerationInfo]) -> None:
    assert await store.get_chat(chat_id) is None
    assert await store.load_messages(chat_id) == []
    assert await store.history_size(chat_id) == 0
    assert chat_id not in [c.chat_id for c in await store.list_chats("alice")]
    assert await store.read_generations(chat_id, 0) == []
    assert await store.steering_record(chat_id, "steer-1") is None
    for info in infos:
        with pytest.raises(GenerationNotFound):
            await store.read(chat_id, info.generation_id, -1)
        assert not await store.producer_alive(chat_id, info.generation_id)
        assert not await store.stop_requested(chat_id, info.generation_id)
        assert await store.read_steering(chat_id, info.generation_id, 0) == []
        assert await store.claim_generation(chat_id, info.generation_id) is None


async def test_delete_chat_removes_everything_of_the_chat(store: SessionStore) -> None:
    infos = await _chat_with_everything(store, "doomed")
    await _chat_with_everything(store, "kept")

    await store.delete_chat("doomed")

    await _assert_unused(store, "doomed", infos)
    assert "doomed" not in [g for _, g in await store.orphaned_generations()]
    # Another chat of the same owner keeps all of its items.
    assert [c.chat_id for c in await store.list_chats("alice")] == ["kept"]
    kept = await store.get_chat("kept")
    assert kept is not None and kept.active_generation_id is not None
    assert await store.load_messages("kept") == [{"id": "m2"}]
    assert await store.steering_record("kept", "steer-1") == b'{"state":"queued"}'
    assert len(await store.read_generations("kept", 0)) == 1


async def test_delete_chat_is_idempotent_and_the_id_is_new_again(store: SessionStore) -> None:
    await store.delete_chat("never-used")  # nothing to delete: no error
    infos = await _chat_with_everything(store, "again")
    await store.delete_chat("again")
    await store.delete_chat("again")
    await _assert_unused(store, "again", infos)

    # The id starts over as a new chat: the next claim makes a new owner.
    assert await store.claim_chat("again", "bob") == "bob"
    info = await begin(store, "again")
    assert await read_to_end(store, info) == LogRead(expected(0), False, None)


async def test_delete_chat_fences_the_running_producer(store: SessionStore) -> None:
    info = await begin(store, "fenced")
    await store.delete_chat("fenced")
    with pytest.raises((GenerationNotFound, Fenced)):
        await store.append("fenced", info.generation_id, 1, [chunk(1)], epoch=1)
    with pytest.raises((GenerationNotFound, Fenced)):
        await store.end_generation(
            "fenced", info.generation_id, 1, Outcome.ABORTED, [{"id": "x"}], epoch=1
        )
    assert await store.get_chat("fenced") is None
    assert await store.load_messages("fenced") == []


@pytest.mark.parametrize("chat_id", HOSTILE_CHAT_IDS[:11])
async def test_delete_chat_of_hostile_ids_touches_no_other_chat(
    store: SessionStore, chat_id: str
) -> None:
    # Ids whose key patterns could match another's (braces, `%`, glob-like text).
    others = [c for c in ["{", "%", "%7B", "a", "*", "[a]"] if c != chat_id]
    for other in others:
        await store.claim_chat(other, "alice")
        await store.save_messages(other, [{"id": other}])
    infos = await _chat_with_everything(store, chat_id)
    await store.delete_chat(chat_id)
    await _assert_unused(store, chat_id, infos)
    for other in others:
        assert await store.load_messages(other) == [{"id": other}]
