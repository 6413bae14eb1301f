"""Several bridge processes sharing one real Redis: same chunks everywhere, stop from
anywhere, history everywhere, a crashed producer taken over."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bridge_server import BridgeFactory, chat_body
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import LiveServer, Text
from tests.session_client import StreamResult, read_stream
from tests.support.bridge_process import BridgeProcess
from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis

WORDS = " ".join(f"w{index}" for index in range(150))
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pair(
    bridge_factory: BridgeFactory, fake: OpenAIFake, redis_server: RedisServer
) -> tuple[LiveServer, LiveServer]:
    """Two app instances, one Redis, a key prefix of their own."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = {
        "openai_api_key": "test-key",
        "openai_base_url": fake.base_url,
        "bridge_model": "openai:gpt-test",
        "redis_url": redis_server.url,
        "bridge_key_prefix": prefix,
    }
    return bridge_factory(**settings), bridge_factory(**settings)


async def answering(
    client: httpx.AsyncClient, server: LiveServer, chat_id: str
) -> asyncio.Task[StreamResult]:
    """POST a turn and return once its answer is streaming; the task reads it to the end."""
    streaming = asyncio.Event()
    producer = asyncio.create_task(
        read_stream(
            client,
            "POST",
            f"{server.url}/api/chat",
            json=chat_body(chat_id, "go"),
            streaming=streaming,
        )
    )
    await asyncio.wait_for(streaming.wait(), 10)
    return producer


async def test_two_instances_serve_identical_sequences(
    pair: tuple[LiveServer, LiveServer], fake: OpenAIFake
) -> None:
    first, second = pair
    fake.enqueue([Text(WORDS)], token_delay=0.005)
    async with httpx.AsyncClient(timeout=30) as client:
        producer = await answering(client, first, "shared")
        readers = [
            read_stream(client, "GET", f"{server.url}/api/chat/shared/stream?cursor=-1")
            for server in (first, second, second)
        ]
        results = await asyncio.gather(*readers)
        original = await producer
        history_b = (await client.get(f"{second.url}/api/chat/shared/messages")).json()
    assert original.done and original.text() == WORDS
    for result in results:
        assert result.status == 200
        assert result.events == original.events
    assert history_b["messages"][-1]["id"] == original.chunks[0]["messageId"]


async def test_stop_from_another_instance_reaches_the_provider(
    pair: tuple[LiveServer, LiveServer], fake: OpenAIFake
) -> None:
    first, second = pair
    fake.enqueue([Text(WORDS * 4)], token_delay=0.01)
    async with httpx.AsyncClient(timeout=30) as client:
        producer = await answering(client, first, "stop-x")
        stop = await client.post(f"{second.url}/api/chat/stop-x/stop")
        result = await producer
        history = (await client.get(f"{second.url}/api/chat/stop-x/messages")).json()
    assert stop.json()["stopped"] is True
    assert await fake.wait_for_disconnect(5)
    assert result.types[-1] == "abort"
    stored = "".join(p["text"] for p in history["messages"][-1]["parts"] if p["type"] == "text")
    assert stored == result.text()
    assert history["activeGenerationId"] is None


async def test_busy_chat_is_409_on_every_instance(
    pair: tuple[LiveServer, LiveServer], fake: OpenAIFake
) -> None:
    first, second = pair
    fake.enqueue([Text(WORDS)], token_delay=0.01)
    async with httpx.AsyncClient(timeout=30) as client:
        producer = await answering(client, first, "busy-x")
        second_post = await client.post(f"{second.url}/api/chat", json=chat_body("busy-x", "again"))
        await producer
    assert second_post.status_code == 409


@pytest.fixture
def doomed_bridge(
    fake: OpenAIFake, redis_server: RedisServer
) -> Iterator[tuple[BridgeProcess, str]]:
    """A bridge in a process of its own (so it can be killed), with a short lease. Fails
    the test when it does not start."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    bridge = BridgeProcess(
        {
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": fake.base_url,
            "BRIDGE_MODEL": "openai:gpt-test",
            "REDIS_URL": redis_server.url,
            "BRIDGE_KEY_PREFIX": prefix,
            "BRIDGE_LEASE_SECONDS": "1",
            "BRIDGE_HEARTBEAT_SECONDS": "0.5",
        }
    )
    try:
        bridge.spawn().wait_ready()
        yield bridge, prefix
    finally:
        bridge.close()


async def test_a_crashed_producer_is_taken_over_by_a_reader(
    bridge_factory: BridgeFactory,
    fake: OpenAIFake,
    redis_server: RedisServer,
    doomed_bridge: tuple[BridgeProcess, str],
) -> None:
    """Kill -9 the process running a generation: a reader on another instance notices the
    lost lease, takes the generation over (the interrupted step again, after `reset-step`)
    and the complete answer is delivered and stored."""
    doomed, prefix = doomed_bridge
    survivor = bridge_factory(
        openai_api_key="test-key",
        openai_base_url=fake.base_url,
        bridge_model="openai:gpt-test",
        redis_url=redis_server.url,
        bridge_key_prefix=prefix,
        bridge_lease_seconds=1,
        bridge_heartbeat_seconds=0.5,
    )
    answer = WORDS * 10
    fake.enqueue([Text(answer)], token_delay=0.02)  # the doomed process's call
    fake.enqueue([Text(answer)])  # the step again, by the survivor
    async with httpx.AsyncClient(timeout=30) as client:
        dropped = await read_stream(
            client,
            "POST",
            f"{doomed.url}/api/chat?client=7",  # a client that applies `reset-step`
            json=chat_body("crash", "go"),
            stop_after=10,
        )
        doomed.signal(signal.SIGKILL)
        await asyncio.to_thread(doomed.process.wait, 5)
        resumed = await read_stream(
            client, "GET", f"{survivor.url}/api/chat/crash/stream?cursor=-1&client=7"
        )
        history = (await client.get(f"{survivor.url}/api/chat/crash/messages")).json()
    assert dropped.events[:10] == resumed.events[:10]
    assert resumed.done
    assert "reset-step" in resumed.types
    assert resumed.types[-1] == "finish"
    assert history["activeGenerationId"] is None
    assert history["messages"][-1]["role"] == "assistant"
    assert history["messages"][-1]["id"] == dropped.chunks[0]["messageId"]
    stored = "".join(p["text"] for p in history["messages"][-1]["parts"] if p["type"] == "text")
    assert stored == answer
