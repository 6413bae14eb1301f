"""The live-session store methods (steering queues, the generation feed) against both
stores, with the contract suite's backends."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bridge.store.base import SessionStore
from bridge.store.redis.store import RedisStore
from tests import test_store_contract as contract
from tests.support.redis import (  # noqa: F401  (the redis and cluster backends)
    RedisServer,
    redis_cluster,
    redis_server,
)
from tests.test_store_contract import HOSTILE_CHAT_IDS, Backend, blocked

# The contract suite's fixtures: every store, the same way.
backend = contract.backend
store = contract.store


async def test_steering_queue_keeps_order_and_positions(store: SessionStore) -> None:
    assert await store.push_steering("c", "g", b"one") == 1
    assert await store.push_steering("c", "g", b"two") == 2
    assert await store.read_steering("c", "g", 0) == [(1, b"one"), (2, b"two")]
    assert await store.read_steering("c", "g", 1) == [(2, b"two")]
    assert await store.read_steering("c", "g", 2) == []
    assert await store.read_steering("c", "other", 0) == []


async def test_steering_queue_refuses_pushes_once_closed(store: SessionStore) -> None:
    assert await store.push_steering("c", "g", b"one") == 1
    await store.close_steering("c", "g")
    await store.close_steering("c", "g")  # idempotent
    assert await store.push_steering("c", "g", b"late") is None
    assert await store.read_steering("c", "g", 0) == [(1, b"one")]
    # Another generation's queue is untouched.
    assert await store.push_steering("c", "g2", b"x") == 1


async def test_steering_read_waits_for_a_push_from_another_store(backend: Backend) -> None:
    reader = await backend.make()
    writer = await backend.make() if backend.redis_url else reader  # memory: one process
    waiting = asyncio.create_task(reader.read_steering("c", "g", 0, wait=60))
    await blocked(reader, waiting)
    await writer.push_steering("c", "g", b"hello")
    async with asyncio.timeout(10):
        assert await waiting == [(1, b"hello")]


async def test_steering_record_first_of_two_wins_then_updates(backend: Backend) -> None:
    first = await backend.make()
    second = await backend.make() if backend.redis_url else first
    assert await first.steering_record("c", "s1") is None
    assert await first.put_steering_record("c", "s1", b"queued", only_if_absent=True) is None
    # A racing request with the same id (another process) gets the first one's record.
    assert await second.put_steering_record("c", "s1", b"other", only_if_absent=True) == b"queued"
    assert await second.steering_record("c", "s1") == b"queued"
    await second.put_steering_record("c", "s1", b"delivered")  # the outcome, overwritten
    assert await first.steering_record("c", "s1") == b"delivered"
    assert await first.steering_record("other-chat", "s1") is None


async def test_steering_read_with_nothing_returns_empty_after_waiting(store: SessionStore) -> None:
    assert await store.read_steering("c", "g", 0, wait=0.05) == []


async def test_generation_feed_per_chat_in_order(backend: Backend) -> None:
    first = await backend.make()
    second = await backend.make() if backend.redis_url else first
    waiting = asyncio.create_task(second.read_generations("chat-a", 0, wait=10))
    assert await first.announce_generation("chat-a", "g1", b'{"n":1}') == 1
    assert await waiting == [(1, b'{"n":1}')]
    assert await second.announce_generation("chat-a", "g2", b'{"n":2}') == 2
    assert await first.announce_generation("chat-b", "g3", b'{"n":3}') == 1
    assert await first.read_generations("chat-a", 0) == [(1, b'{"n":1}'), (2, b'{"n":2}')]
    assert await first.read_generations("chat-a", 1) == [(2, b'{"n":2}')]
    assert await first.read_generations("chat-b", 0) == [(1, b'{"n":3}')]


@pytest.mark.parametrize("chat_id", HOSTILE_CHAT_IDS)
async def test_live_keys_hold_for_hostile_chat_ids(store: SessionStore, chat_id: str) -> None:
    assert await store.announce_generation(chat_id, "g", b"r") == 1
    assert await store.push_steering(chat_id, "g", b"m") == 1
    assert await store.read_generations(chat_id, 0) == [(1, b"r")]
    assert await store.read_steering(chat_id, "g", 0) == [(1, b"m")]


@pytest.mark.redis
async def test_redis_steering_wait_ends_when_the_store_closes(redis_server: RedisServer) -> None:  # noqa: F811
    store = RedisStore(redis_server.url, key_prefix=f"test-{uuid.uuid4().hex}")
    await store.start()
    waiting = asyncio.create_task(store.read_steering("c", "g", 0, wait=60))
    await blocked(store, waiting)
    await store.close()
    async with asyncio.timeout(10):
        assert await waiting == []
