"""The bridge on Redis at load, end to end: quiet streams, overload, Redis Cluster.

A generation silent for longer than any client-library timeout (a tool running, a model
thinking) holds on every transport: SSE, WebSocket and long-poll read the same quiet
generation at once, keep-alives arrive, and the answer completes. The silence is real
(61 s, once for the three transports together); only the heartbeat settings are small,
so the keep-alives are many."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.bridge_server import BridgeFactory, chat_body
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Delay, Text
from tests.session_client import read_stream
from tests.support.redis import (  # noqa: F401
    RedisClusterServers,
    RedisServer,
    redis_cluster,
    redis_server,
)
from tests.ws_client import RawSocket, resume_frame, ws_url

pytestmark = pytest.mark.redis

SILENCE_SECONDS = 61.0
WITHIN = SILENCE_SECONDS + 30


async def test_quiet_generation_holds_on_sse_websocket_and_long_poll(
    bridge_factory: BridgeFactory,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    fake = OpenAIFake(api_key="test-key")
    fake.start()
    try:
        bridge = bridge_factory(
            openai_api_key="test-key",
            openai_base_url=fake.base_url,
            bridge_model="openai:gpt-test",
            redis_url=redis_server.url,
            bridge_key_prefix=f"quiet-{uuid.uuid4().hex[:8]}",
            bridge_heartbeat_seconds=1,
            bridge_ws_ping_seconds=1,
            bridge_max_poll_wait_seconds=20,
        )
        fake.enqueue([Text("before the silence"), Delay(SILENCE_SECONDS), Text(" and after")])
        async with httpx.AsyncClient(timeout=WITHIN) as client:
            # The long-poll starts the generation; SSE and WebSocket resume it meanwhile.
            started = await client.post(
                f"{bridge.url}/api/chat/poll", params={"wait": 5}, json=chat_body("quiet", "go")
            )
            assert started.status_code == 200, started.text
            first_poll = started.json()
            assert first_poll["generationId"] is not None and not first_poll["done"]
            sse = asyncio.create_task(
                read_stream(client, "GET", f"{bridge.url}/api/chat/quiet/stream")
            )
            async with await RawSocket.open(ws_url(bridge.url)) as socket:
                websocket = asyncio.create_task(
                    socket.request(resume_frame("r1", "quiet"), within=WITHIN)
                )
                pages = await _poll_to_end(client, bridge.url, first_poll)
                reply = await websocket
                streamed = await sse
                keep_alives = len(socket.keep_alives)
    finally:
        fake.stop()

    text = "before the silence and after"
    assert streamed.done and streamed.text() == text
    assert reply.final == "end" and reply.text() == text
    poll_text = "".join(
        item["chunk"]["delta"]
        for page in pages
        for item in page["chunks"]
        if item["chunk"]["type"] == "text-delta"
    )
    assert poll_text == text
    assert pages[-1]["done"] and pages[-1]["outcome"] == "finished"
    # The silence was bridged by keep-alives on the streams and by empty pages on the poll.
    assert sum("keep-alive" in comment for comment in streamed.comments) >= 10
    assert keep_alives >= 10
    assert sum(1 for page in pages if not page["chunks"]) >= 2


async def _poll(client: httpx.AsyncClient, url: str, cursor: int, wait: float) -> Any:
    response = await client.get(
        f"{url}/api/chat/quiet/poll", params={"cursor": cursor, "wait": wait}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _poll_to_end(client: httpx.AsyncClient, url: str, first: Any) -> list[Any]:
    pages = [first]
    # Chunks of the first page are kept; later pages continue from its cursor.
    while not pages[-1]["done"]:
        pages.append(await _poll(client, url, pages[-1]["cursor"], wait=20))
    return pages


async def test_overload_slows_answers_down_and_loses_none(
    bridge_factory: BridgeFactory,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Far more chats at once than Redis connections: requests wait for a connection
    (backpressure) instead of failing, and every answer arrives whole, with a reader of
    each on the same process."""
    fake = OpenAIFake(api_key="test-key")
    fake.start()
    words = " ".join(f"w{i}" for i in range(40))
    chats = 60
    try:
        bridge = bridge_factory(
            openai_api_key="test-key",
            openai_base_url=fake.base_url,
            bridge_model="openai:gpt-test",
            redis_url=redis_server.url,
            bridge_key_prefix=f"load-{uuid.uuid4().hex[:8]}",
            bridge_redis_max_connections=2,
        )
        for _ in range(chats):
            fake.enqueue([Text(words)], token_delay=0.01)
        async with httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=2 * chats)
        ) as client:
            results = await asyncio.gather(
                *(
                    read_stream(
                        client, "POST", f"{bridge.url}/api/chat", json=chat_body(f"load-{i}", "go")
                    )
                    for i in range(chats)
                )
            )
            replays = await asyncio.gather(
                *(
                    read_stream(client, "GET", f"{bridge.url}/api/chat/load-{i}/stream?cursor=-1")
                    for i in range(chats)
                )
            )
    finally:
        fake.stop()

    assert [result.status for result in results] == [200] * chats
    assert all(result.done and result.text() == words for result in results)
    # A replay within the grace period gets the same bytes, offsets included.
    assert [replay.events for replay in replays] == [result.events for result in results]


async def test_a_chat_through_redis_cluster_streams_and_resumes(
    bridge_factory: BridgeFactory,
    redis_cluster: RedisClusterServers,  # noqa: F811
) -> None:
    fake = OpenAIFake(api_key="test-key")
    fake.start()
    words = " ".join(f"w{i}" for i in range(30))
    try:
        bridge = bridge_factory(
            openai_api_key="test-key",
            openai_base_url=fake.base_url,
            bridge_model="openai:gpt-test",
            redis_url=redis_cluster.url,
            bridge_key_prefix=f"cl-{uuid.uuid4().hex[:8]}",
        )
        fake.enqueue([Text(words)], token_delay=0.005)
        async with httpx.AsyncClient(timeout=30) as client:
            streamed = await read_stream(
                client, "POST", f"{bridge.url}/api/chat", json=chat_body("on-cluster", "go")
            )
            replay = await read_stream(
                client, "GET", f"{bridge.url}/api/chat/on-cluster/stream?cursor=-1"
            )
            history = (await client.get(f"{bridge.url}/api/chat/on-cluster/messages")).json()
    finally:
        fake.stop()

    assert streamed.done and streamed.text() == words
    assert replay.events == streamed.events
    assert history["messages"][-1]["id"] == streamed.chunks[0]["messageId"]
