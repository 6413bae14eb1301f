"""The process-wide writer and reader hub (bridge/log/writer.py, bridge/log/hub.py) on the
real stores: one round trip for many generations, one read for many readers, slow readers
detached, fencing and retries reaching the producer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from bridge.errors import Fenced
from bridge.log.hub import LogHub
from bridge.log.reader import follow
from bridge.log.writer import LogWriter
from bridge.store.base import LogEntry, Outcome, SessionStore
from tests.support.redis import (  # noqa: F401
    RedisClusterServers,
    RedisServer,
    redis_cluster,
    redis_server,
)
from tests.test_store_contract import Backend, backend_of, begin, chunk, expected

HEARTBEAT = 5.0


@pytest.fixture(params=["memory", "redis", "cluster"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    backend = backend_of(request)
    yield backend
    await backend.close()


async def command_calls(admin: aioredis.Redis) -> dict[str, int]:
    stats = await admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}


@contextlib.asynccontextmanager
async def running(hub: LogHub) -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        group.start_soon(hub.run)
        await hub.started()
        try:
            yield
        finally:
            group.cancel_scope.cancel()


def make_writer(store: SessionStore, hub: LogHub, **options: Any) -> LogWriter:
    return LogWriter(store, hub, flush_interval=0, lease_renew_interval=5, **options)


class Reader:
    """A follower that records what it got and signals each offset it reached."""

    def __init__(self, hub: LogHub, chat_id: str, generation_id: str) -> None:
        self.entries: list[LogEntry] = []
        self.reached = asyncio.Condition()
        self._stream = follow(hub, chat_id, generation_id, -1, heartbeat=HEARTBEAT)

    async def read_all(self) -> list[LogEntry]:
        async for batch in self._stream:
            if batch is None:
                continue
            self.entries += batch
            async with self.reached:
                self.reached.notify_all()
        return self.entries

    async def wait_for(self, offset: int) -> None:
        async with self.reached:
            await self.reached.wait_for(lambda: bool(self.entries) and self.last >= offset)

    @property
    def last(self) -> int:
        return self.entries[-1].offset


# --- one writer per process --------------------------------------------------------------------


async def test_writer_sends_many_generations_in_one_round_trip(backend: Backend) -> None:
    store = await backend.make()
    hub = LogHub(store)
    writer = make_writer(store, hub)
    infos = [await begin(store, f"chat-{i}") for i in range(20)]
    logs = [writer.open(info.chat_id, info.generation_id, epoch=1) for info in infos]
    for log in logs:
        for i in range(1, 4):
            log.write(chunk(i))

    await writer.flush_once()

    assert writer.round_trips == 1
    for info, log in zip(infos, logs, strict=True):
        assert log.next_offset == 4
        read = await store.read(info.chat_id, info.generation_id, -1)
        assert read.entries == expected(3)
        await log.close(Outcome.FINISHED, None)
    assert writer.open_logs == 0


@contextlib.asynccontextmanager
async def writing(writer: LogWriter) -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        group.start_soon(writer.run)
        try:
            yield
        finally:
            group.cancel_scope.cancel()


async def test_writer_window_batches_a_busy_process_across_its_producers(
    backend: Backend,
) -> None:
    store = await backend.make()
    hub = LogHub(store)
    writer = LogWriter(store, hub, flush_interval=0.5, lease_renew_interval=5)
    infos = [await begin(store, f"chat-{i}") for i in range(32)]
    logs = [writer.open(info.chat_id, info.generation_id, epoch=1) for info in infos]
    async with writing(writer):
        for log in logs:
            log.write(chunk(1))
        for log in logs:
            await log.flushed()
        before = writer.round_trips
        # Each producer writes in its own turn of the event loop, as generations do: the
        # writer runs in between, yet waits out the window, so one round trip takes all.
        for log in logs:
            log.write(chunk(2))
            await asyncio.sleep(0)
        for log in logs:
            await log.flushed()
        assert writer.round_trips == before + 1
    for info in infos:
        read = await store.read(info.chat_id, info.generation_id, -1)
        assert read.entries == expected(2)


async def test_writer_does_not_hold_back_a_chunk_after_a_quiet_spell(backend: Backend) -> None:
    store = await backend.make()
    hub = LogHub(store)
    # A window far longer than the wait below: the chunk must not sit it out.
    writer = LogWriter(store, hub, flush_interval=600, lease_renew_interval=5)
    info = await begin(store, "lone")
    log = writer.open(info.chat_id, info.generation_id, epoch=1)
    async with writing(writer):
        log.write(chunk(1))
        async with asyncio.timeout(10):
            await log.flushed()
    assert writer.round_trips == 1


async def test_writer_renews_leases_in_the_same_round_trip(backend: Backend) -> None:
    store = await backend.make(lease_seconds=30)
    hub = LogHub(store)
    writer = LogWriter(store, hub, flush_interval=0, lease_renew_interval=0)
    quiet, busy = await begin(store, "quiet"), await begin(store, "busy")
    writer.open(quiet.chat_id, quiet.generation_id, epoch=1)
    log = writer.open(busy.chat_id, busy.generation_id, epoch=1)
    log.write(chunk(1))

    await writer.flush_once()

    assert writer.round_trips == 1
    assert await store.producer_alive(quiet.chat_id, quiet.generation_id)


async def test_writer_asks_for_a_renewal_once_per_interval_not_with_every_batch() -> None:
    store = await Backend("memory", None).make(lease_seconds=30)
    asked: list[bool] = []
    append_many = store.append_many

    async def recording(appends: Any) -> Any:
        asked.extend(append.renew for append in appends)
        return await append_many(appends)

    store.append_many = recording  # type: ignore[method-assign]
    hub = LogHub(store)
    writer = LogWriter(store, hub, flush_interval=0, lease_renew_interval=600)
    info = await begin(store)
    log = writer.open(info.chat_id, info.generation_id, epoch=1)
    for offset in (1, 2, 3):
        log.write(chunk(offset))
        await writer.flush_once()
    assert asked == [False, False, False]  # chunks within the interval: no renewal
    log.renew_at = 0.0  # the interval has passed
    log.write(chunk(4))
    await writer.flush_once()
    await writer.flush_once()  # nothing buffered and the renewal done: no round trip
    assert asked == [False, False, False, True]
    assert log.renew_at > 0.0


async def test_writer_delivers_fencing_to_the_generation(backend: Backend) -> None:
    store = await backend.make(lease_seconds=0.3)
    hub = LogHub(store)
    writer = make_writer(store, hub)
    info = await begin(store)
    failures: list[BaseException] = []
    log = writer.open(info.chat_id, info.generation_id, epoch=1, on_failure=failures.append)
    await backend.advance(0.5)  # the lease lapses: the producer is presumed dead
    log.write(chunk(1))

    await writer.flush_once()

    assert len(failures) == 1 and isinstance(failures[0], Fenced)
    with pytest.raises(Fenced):
        log.write(chunk(2))
    with pytest.raises(Fenced):
        await log.close(Outcome.FINISHED, None)
    assert (await store.read(info.chat_id, info.generation_id, -1)).entries == expected(0)


async def test_writer_backpressure_holds_the_producer_until_the_store_caught_up(
    backend: Backend,
) -> None:
    store = await backend.make()
    hub = LogHub(store)
    writer = make_writer(store, hub, max_buffered=4)
    info = await begin(store)
    log = writer.open(info.chat_id, info.generation_id, epoch=1)
    for i in range(1, 11):
        log.write(chunk(i))
    drained = asyncio.create_task(log.drained())
    await asyncio.sleep(0)
    assert not drained.done()

    await writer.flush_once()

    await asyncio.wait_for(drained, 5)
    assert (await store.read(info.chat_id, info.generation_id, -1)).entries == expected(10)


class DroppingProxy:
    """A TCP relay to Redis that can lose the next reply: it forwards the request, then
    drops the connection instead of the answer (the write happened, the client never
    learns it)."""

    def __init__(self, port: int) -> None:
        self._port = port
        self.drop_next_reply = False
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if down and self.drop_next_reply:
                        self.drop_next_reply = False
                        self.dropped += 1
                        break
                    dst.write(data)
                    await dst.drain()
            writer.close()
            up_writer.close()

        tasks = [
            asyncio.create_task(pipe(reader, up_writer, False)),
            asyncio.create_task(pipe(up_reader, writer, True)),
        ]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)


async def test_writer_retries_an_append_and_an_end_whose_reply_was_lost(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    proxy = DroppingProxy(redis_server.port)
    url = await proxy.start()
    backend = Backend("redis", url)
    try:
        store = await backend.make()
        hub = LogHub(store)
        writer = make_writer(store, hub)
        info = await begin(store)
        log = writer.open(info.chat_id, info.generation_id, epoch=1)
        log.write(chunk(1))
        log.write(chunk(2))
        proxy.drop_next_reply = True

        await writer.flush_once()

        assert proxy.dropped == 1
        assert writer.round_trips == 2  # the lost one and its retry
        assert log.failure is None and log.next_offset == 3
        proxy.drop_next_reply = True  # the end's reply is lost too: retried, written once
        await log.close(Outcome.FINISHED, None)
        assert proxy.dropped == 2
        read = await store.read(info.chat_id, info.generation_id, -1)
        assert read.entries == expected(2) and read.ended
    finally:
        await backend.close()
        await proxy.close()


# --- one reader per process --------------------------------------------------------------------


async def test_local_producer_feeds_readers_from_memory(
    redis_server: RedisServer,  # noqa: F811
    admin: aioredis.Redis,
) -> None:
    backend = Backend("redis", redis_server.url)
    try:
        store = await backend.make()
        hub = LogHub(store)
        writer = make_writer(store, hub)
        info = await begin(store)
        log = writer.open(info.chat_id, info.generation_id, epoch=1)
        async with running(hub), anyio.create_task_group() as group:
            readers = [Reader(hub, info.chat_id, info.generation_id) for _ in range(20)]
            for reader in readers:
                group.start_soon(reader.read_all)
            for reader in readers:
                await reader.wait_for(0)  # replayed: now live
            before = await command_calls(admin)

            for i in range(1, 11):
                log.write(chunk(i))
                await writer.flush_once()
            for reader in readers:
                await reader.wait_for(10)

            after = await command_calls(admin)
            await log.close(Outcome.FINISHED, None)
        assert after.get("xrange", 0) == before.get("xrange", 0)  # no read at all
        assert all(reader.entries == expected(10) for reader in readers)
    finally:
        await backend.close()


async def test_many_readers_of_a_remote_log_share_one_read(
    redis_server: RedisServer,  # noqa: F811
    admin: aioredis.Redis,
) -> None:
    backend = Backend("redis", redis_server.url)
    try:
        # Another process, as far as Redis can tell; each with a pool of 4 connections.
        producer_store = await backend.make(max_connections=4)
        producer = make_writer(producer_store, LogHub(producer_store))
        store = await backend.make(max_connections=4)
        hub = LogHub(store)
        info = await begin(producer_store)
        log = producer.open(info.chat_id, info.generation_id, epoch=1)
        async with running(hub), anyio.create_task_group() as group:
            readers = [Reader(hub, info.chat_id, info.generation_id) for _ in range(50)]
            for reader in readers:
                group.start_soon(reader.read_all)
            for reader in readers:
                await reader.wait_for(0)
            before = await command_calls(admin)
            clients_live = len(await admin.client_list())

            appends = 5
            for i in range(1, appends + 1):
                log.write(chunk(i))
                await producer.flush_once()
                for reader in readers:
                    await reader.wait_for(i)

            after = await command_calls(admin)
            await log.close(Outcome.FINISHED, None)
        # One range read per append for all 50 readers (each is an XRANGE + XREVRANGE
        # pipeline), where a read per reader would be 250.
        assert after.get("xrange", 0) - before.get("xrange", 0) <= appends
        # The connections are bounded by the pools, not by the 50 readers: the admin
        # client, two pools of 4, one subscription each.
        assert clients_live <= 1 + 2 * (4 + 1)
        assert all(reader.entries == expected(appends) for reader in readers)
    finally:
        await backend.close()


async def test_a_stalled_reader_does_not_stall_the_others(backend: Backend) -> None:
    store = await backend.make()
    hub = LogHub(store, queue_entries=4)
    writer = make_writer(store, hub)
    info = await begin(store)
    log = writer.open(info.chat_id, info.generation_id, epoch=1)
    stalled = follow(hub, info.chat_id, info.generation_id, -1, heartbeat=HEARTBEAT)
    async with running(hub):
        first = await anext(stalled)  # joined, then stops reading
        assert first == expected(0)
        async with anyio.create_task_group() as group:
            readers = [Reader(hub, info.chat_id, info.generation_id) for _ in range(3)]
            for reader in readers:
                group.start_soon(reader.read_all)
            for start in range(1, 100, 10):
                for i in range(start, start + 10):
                    log.write(chunk(i))
                await writer.flush_once()
            await log.close(Outcome.FINISHED, None)
        assert all(reader.entries == expected(100) for reader in readers)

        # It was detached (its queue dropped, memory bounded) and catches up from the log.
        tails = list(hub._tails.values())
        assert len(tails) == 1
        (subscription,) = tails[0].subscriptions
        assert subscription.detached
        rest: list[LogEntry] = []
        async for batch in stalled:
            rest += batch or []
        assert [*first, *rest] == expected(100)
