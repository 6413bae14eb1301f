"""Facts about `RedisStore` that the contract cannot see: key layout, round trips, TTLs,
connection handling. Runs against the real test server (tests/support/redis.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import cast
from urllib.parse import unquote

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from bridge.store.base import Append, LogRead, OffsetConflict, Outcome, StoreError
from bridge.store.redis.connection import cluster_url
from bridge.store.redis.store import RedisOptions, RedisStore
from tests.support.redis import RedisServer, redis_cluster, redis_server  # noqa: F401
from tests.support.waiting import until
from tests.test_store_contract import (
    HOSTILE_CHAT_IDS,
    START,
    Backend,
    append_range,
    begin,
    expected,
    new_generation,
)


@pytest.fixture
async def backend(redis_server: RedisServer) -> AsyncIterator[Backend]:  # noqa: F811
    backend = Backend("redis", redis_server.url)
    yield backend
    await backend.close()


async def make(backend: Backend, **options: float) -> RedisStore:
    store = await backend.make(**options)
    assert isinstance(store, RedisStore)
    return store


async def command_calls(admin: aioredis.Redis) -> dict[str, int]:
    stats = await admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}


async def calls_during(admin: aioredis.Redis, action: Awaitable[object]) -> dict[str, int]:
    """Commands Redis executed (scripts' inner commands included) while `action` ran."""
    before = await command_calls(admin)
    await action
    after = await command_calls(admin)
    delta = {name: count - before.get(name, 0) for name, count in after.items()}
    return {name: count for name, count in delta.items() if count and name != "info"}


def hash_tag(key: str) -> str:
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


# --- key layout ----------------------------------------------------------------------------


@pytest.mark.parametrize("chat_id", HOSTILE_CHAT_IDS, ids=range(len(HOSTILE_CHAT_IDS)))
async def test_keys_of_one_chat_share_one_hash_slot(
    backend: Backend, admin: aioredis.Redis, chat_id: str
) -> None:
    store = await make(backend)
    await store.claim_chat(chat_id, "alice")
    info = await begin(store, chat_id, messages=[{"id": "u1"}])
    await append_range(store, info, 1, 1)
    await store.request_stop(chat_id, info.generation_id)

    keys = [key.decode() async for key in admin.scan_iter(match=f"{backend.prefix}:*")]

    kinds = sorted(key.split(":")[2] for key in keys)
    assert kinds == ["chat", "epoch", "lease", "log", "messages", "plan", "stop"]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    # The tag is the whole (encoded) chat id: a brace in the id cannot cut it short.
    assert {unquote(hash_tag(key)) for key in keys} == ({chat_id} if chat_id else {"%"})


async def test_keys_follow_documented_layout(backend: Backend, admin: aioredis.Redis) -> None:
    store = await make(backend)
    info = await begin(store, "chat-1")
    await append_range(store, info, 1, 2)
    await store.end_generation(info.chat_id, info.generation_id, 3, Outcome.FINISHED, None, epoch=1)

    log_key = f"{backend.prefix}:{{chat-1}}:log:{info.generation_id}"
    entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", await admin.xrange(log_key))
    assert [entry_id for entry_id, _ in entries] == [b"0-1", b"0-2", b"0-3", b"0-4"]
    assert entries[1][1] == {b"c": expected(1)[1].data}
    assert entries[-1][1] == {b"end": b"finished", b"epoch": b"1"}
    chat = await admin.hgetall(f"{backend.prefix}:{{chat-1}}:chat")
    assert chat[b"last"] == info.generation_id.encode()
    assert b"active" not in chat


def test_key_prefix_with_braces_is_rejected() -> None:
    with pytest.raises(ValueError, match="brace"):
        RedisStore("redis://127.0.0.1:1", key_prefix="app{1}")


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 50])
async def test_append_is_one_script_call(
    backend: Backend, admin: aioredis.Redis, count: int
) -> None:
    store = await make(backend)
    info = await begin(store)

    calls = await calls_during(admin, append_range(store, info, 1, count))

    # One EVALSHA from the client; the rest run inside the script (GET: the epoch check,
    # PUBLISH: the log-change notification for readers in every process).
    assert calls == {
        "evalsha": 1,
        "xrevrange": 1,
        "get": 1,
        "xadd": count,
        "pexpire": 2,
        "publish": 1,
    }


async def test_append_many_is_one_script_call_and_one_notification(
    backend: Backend, admin: aioredis.Redis
) -> None:
    store = await make(backend)
    logs = [await begin(store, f"chat-{index}") for index in range(3)]
    heard: list[bytes] = []
    pubsub = admin.pubsub()
    await pubsub.subscribe(store.keys.log_channel)
    try:
        # Subscribed for sure before anything is published.
        confirmed = await pubsub.get_message(timeout=5)
        assert confirmed is not None and confirmed["type"] == "subscribe"
        # Lease renewals first (no chunk, no notification): the script is loaded after.
        renewals = [Append(info.chat_id, info.generation_id, 1, [], 1) for info in logs]
        assert await store.append_many(renewals) == [None, None, None]
        batch = [Append(info.chat_id, info.generation_id, 1, [b"one", b"two"], 1) for info in logs]
        calls = await calls_during(admin, store.append_many(batch))
        async with asyncio.timeout(10):
            while not heard:
                message = await pubsub.get_message(timeout=5)
                if message is not None and message["type"] == "message":
                    heard.append(message["data"])
    finally:
        await pubsub.aclose()

    # One script call for the whole batch, one notification.
    assert calls["evalsha"] == 1
    assert calls["xadd"] == 6
    assert calls["publish"] == 1
    # Every log of the batch is named, with the offset it reached.
    lines = heard[0].split(b"\n")
    assert len(lines) == 3
    for info, line in zip(logs, lines, strict=True):
        assert line.startswith(b"2 ")
        assert info.generation_id.encode() in line and info.chat_id.encode() in line


async def test_append_many_pushes_expiries_only_when_a_renewal_is_asked(
    backend: Backend, admin: aioredis.Redis
) -> None:
    # A cluster runs the per-log script, a single server the batch script: both obey it.
    store = await make(backend)
    logs = [await begin(store, f"chat-{index}") for index in range(2)]
    quiet = [Append(i.chat_id, i.generation_id, 1, [b"one"], 1, renew=False) for i in logs]
    assert await store.append_many(quiet) == [None, None]  # loads the script(s)
    later = [Append(i.chat_id, i.generation_id, 2, [b"two"], 1, renew=False) for i in logs]
    calls = await calls_during(admin, store.append_many(later))
    assert calls["xadd"] == 2
    assert calls.get("pexpire", 0) == 0
    renewing = [Append(i.chat_id, i.generation_id, 3, [b"three"], 1) for i in logs]
    calls = await calls_during(admin, store.append_many(renewing))
    assert calls["pexpire"] == 4  # the lease and the log, of each
    read = await store.read(logs[0].chat_id, logs[0].generation_id, 0)
    assert [entry.data for entry in read.entries] == [b"one", b"two", b"three"]


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_append_many_leaves_the_lease_expiry_alone_without_a_renewal(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_server" if kind == "redis" else "redis_cluster").url
    backend = Backend(kind, url)
    try:
        store = await make(backend, lease_seconds=15)
        info = await begin(store)
        lease = store.key(info.chat_id, "lease", info.generation_id)
        client = store._redis
        # A lease expiry the store would never set itself: a renewal is seen replacing it.
        await client.pexpire(lease, 600_000)
        quiet = Append(info.chat_id, info.generation_id, 1, [b"one"], 1, renew=False)
        assert await store.append_many([quiet]) == [None]
        assert await client.pttl(lease) > 15_000
        renewing = Append(info.chat_id, info.generation_id, 2, [b"two"], 1)
        assert await store.append_many([renewing]) == [None]
        assert 0 < await client.pttl(lease) <= 15_000
    finally:
        await backend.close()


async def test_append_conflict_runs_no_write(backend: Backend, admin: aioredis.Redis) -> None:
    store = await make(backend)
    info = await begin(store)

    with pytest.raises(OffsetConflict):
        await calls_during(admin, append_range(store, info, 5, 9))

    assert await store.read(info.chat_id, info.generation_id, -1) == LogRead(expected(0), False)


async def test_read_is_one_pipelined_round_trip(backend: Backend, admin: aioredis.Redis) -> None:
    store = await make(backend)
    info = await begin(store)
    await append_range(store, info, 1, 3)

    calls = await calls_during(admin, store.read(info.chat_id, info.generation_id, 0))

    assert calls == {"xrange": 1, "xrevrange": 1}


async def test_begin_and_end_are_single_script_calls(
    backend: Backend, admin: aioredis.Redis
) -> None:
    store = await make(backend)

    info = await begin(store)
    second = new_generation("chat-2")

    begin_calls = await calls_during(admin, store.begin_generation(second, START, []))
    end_calls = await calls_during(
        admin, store.end_generation(info.chat_id, info.generation_id, 1, Outcome.ERROR, [], epoch=1)
    )

    # Exactly one EVALSHA each; everything else runs inside the script, atomically.
    assert begin_calls == {
        "evalsha": 1,
        "hget": 2,  # the active generation, the revision
        "exists": 1,
        "hset": 1,
        "hdel": 1,
        "set": 4,  # history, lease, epoch, plan
        "xadd": 1,
        "pexpire": 2,
    }
    assert end_calls == {
        "evalsha": 1,
        "xrevrange": 1,
        "get": 1,
        "xadd": 1,
        "pexpire": 2,
        "del": 1,
        "set": 1,
        "hget": 2,
        "hdel": 1,
        "hset": 1,
        "hincrby": 1,  # the history revision
        "publish": 1,
    }


# --- TTLs --------------------------------------------------------------------------------


async def test_ttls_are_set_on_every_key(backend: Backend, admin: aioredis.Redis) -> None:
    store = await make(backend, log_ttl_seconds=100, history_ttl_seconds=1000, lease_seconds=10)
    info = await begin(store, "chat-1")

    def key(kind: str, generation: bool = False) -> str:
        return store.key("chat-1", kind, info.generation_id if generation else None)

    assert 990_000 < await admin.pttl(key("chat")) <= 1_000_000
    assert 990_000 < await admin.pttl(key("messages")) <= 1_000_000
    assert 90_000 < await admin.pttl(key("log", True)) <= 100_000
    assert 9_000 < await admin.pttl(key("lease", True)) <= 10_000

    await store.request_stop("chat-1", info.generation_id)
    assert 90_000 < await admin.pttl(key("stop", True)) <= 100_000

    await admin.pexpire(key("log", True), 5_000)  # appends and the end restore the log TTL
    await append_range(store, info, 1, 1)
    assert 90_000 < await admin.pttl(key("log", True)) <= 100_000

    await admin.pexpire(key("log", True), 5_000)
    await store.end_generation(
        "chat-1", info.generation_id, 2, Outcome.FINISHED, [{"id": "a"}], epoch=1
    )
    assert 90_000 < await admin.pttl(key("log", True)) <= 100_000
    assert await admin.exists(key("lease", True)) == 0
    assert 990_000 < await admin.pttl(key("messages")) <= 1_000_000


# --- stop across processes -----------------------------------------------------------------


async def subscriptions(admin: aioredis.Redis, store: RedisStore) -> int:
    """How many subscriptions the server has on the store's channels (one per store)."""
    ((_, count),) = await admin.pubsub_numsub(store.keys.stop_channel)
    return int(count)


async def test_stop_reaches_a_waiter_in_another_store(
    backend: Backend, admin: aioredis.Redis
) -> None:
    producer, other = await make(backend), await make(backend)
    info = await begin(producer)
    waiter = asyncio.create_task(producer.wait_for_stop(info.chat_id, info.generation_id))
    # The waiter's store subscribed: the stop below travels as a message, not as the key.
    await until(lambda: subscriptions(admin, producer), 5, "the producer's subscription")
    assert not waiter.done()

    await other.request_stop(info.chat_id, info.generation_id)

    await asyncio.wait_for(waiter, 5)


async def test_stop_requested_in_another_store_before_waiting_is_seen(backend: Backend) -> None:
    producer, other = await make(backend), await make(backend)
    info = await begin(producer)
    await other.request_stop(info.chat_id, info.generation_id)

    await asyncio.wait_for(producer.wait_for_stop(info.chat_id, info.generation_id), 5)


async def test_stop_listener_recovers_from_a_lost_subscription(
    backend: Backend, admin: aioredis.Redis
) -> None:
    store = await make(backend)
    info = await begin(store)
    waiter = asyncio.create_task(store.wait_for_stop(info.chat_id, info.generation_id))
    await until(lambda: subscriptions(admin, store), 5, "the store's subscription")

    await admin.client_kill_filter(_type="pubsub")
    # Published while the listener is (likely) disconnected: only the key tells.
    await store.request_stop(info.chat_id, info.generation_id)

    await asyncio.wait_for(waiter, 5)
    second = await begin(store, "chat-2")
    later = asyncio.create_task(store.wait_for_stop(second.chat_id, second.generation_id))
    await until(lambda: subscriptions(admin, store), 5, "the store subscribed again")
    await store.request_stop(second.chat_id, second.generation_id)
    await asyncio.wait_for(later, 5)


# --- connections -----------------------------------------------------------------------------


async def clients(admin: aioredis.Redis) -> list[dict[str, str]]:
    listing: list[dict[str, str]] = await admin.client_list()
    return listing


async def test_waiting_readers_hold_no_connection(backend: Backend, admin: aioredis.Redis) -> None:
    store = await make(backend, max_connections=2)
    info = await begin(store)
    before = (await command_calls(admin)).get("xrevrange", 0)
    readers = [
        asyncio.create_task(store.read(info.chat_id, info.generation_id, 0, wait=10))
        for _ in range(50)
    ]

    async def all_waiting() -> bool:  # each read's first range read is done: it waits
        return (await command_calls(admin)).get("xrevrange", 0) - before >= 50

    await until(all_waiting, 5, "50 reads waiting")

    # Nobody blocks on the server; the one subscription is all the waiting costs: the
    # admin client, at most the pool's 2 command connections, 1 subscription.
    listing = await clients(admin)
    assert not any("b" in client["flags"] for client in listing)
    assert len(listing) <= 1 + 2 + 1
    async with asyncio.timeout(5):
        await append_range(store, info, 1, 1)  # a writer still gets a connection
        results = await asyncio.gather(*readers)
    assert all(result.entries == expected(1)[1:] for result in results)


async def test_more_callers_than_connections_wait_instead_of_failing(
    backend: Backend,
) -> None:
    store = await make(backend, max_connections=2)
    infos = [await begin(store, f"chat-{i}") for i in range(40)]

    await asyncio.gather(*(append_range(store, info, 1, 3) for info in infos))
    reads = await asyncio.gather(
        *(store.read(info.chat_id, info.generation_id, -1) for info in infos)
    )

    assert all(read.entries == expected(3) for read in reads)


async def test_redis_failures_surface_as_store_errors() -> None:
    store = RedisStore("redis://127.0.0.1:1/0", options=RedisOptions(connect_timeout=0.5))
    with pytest.raises(StoreError):
        await store.get_chat("chat-1")
    with pytest.raises(StoreError):
        await store.start()
    await store.close()


def test_cluster_urls_are_recognised() -> None:
    assert cluster_url("redis+cluster://h:7000/0") == "redis://h:7000/0"
    assert cluster_url("rediss+cluster://u:p@h:7000") == "rediss://u:p@h:7000"
    assert cluster_url("redis://h:6379") is None
