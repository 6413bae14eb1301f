"""The session log over HTTP: resume, offsets, heartbeats, stop, errors, the finish race."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from bridge.store.memory import MemoryStore
from protocol.sse import SSEParser
from tests.bridge_server import BridgeFactory, chat_body, openai_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Delay, HttpError, LiveServer, StreamError, Text
from tests.session_client import StreamResult, read_stream
from tests.support.clock import Clock

WORDS = " ".join(f"word{index}" for index in range(120))


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, openai_fake: OpenAIFake) -> LiveServer:
    return bridge_factory(**openai_settings(openai_fake))


async def post(
    client: httpx.AsyncClient, server: LiveServer, chat_id: str, text: str = "hi", **kwargs: Any
) -> StreamResult:
    return await read_stream(
        client, "POST", f"{server.url}/api/chat", json=chat_body(chat_id, text), **kwargs
    )


def assert_complete(result: StreamResult) -> None:
    assert result.status == 200
    assert result.done, result.types
    assert result.offsets == list(range(len(result.chunks)))
    assert result.types[0] == "start"
    assert result.types[-1] in {"finish", "abort"}


async def test_resume_replays_from_the_first_chunk_then_live(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    """The resume begins while the answer is still being written (the model pauses between
    the halves): it replays what was written, then follows live. A grace-period replay of
    an ended answer would fail the check on the headers."""
    first_half, second_half = "alpha beta gamma ", "delta epsilon zeta"
    openai_fake.enqueue([Text(first_half), Delay(2.0), Text(second_half)], token_delay=0.005)
    seen = StreamResult(status=0, headers={})
    first_half_read = asyncio.Event()

    async def original_reader(client: httpx.AsyncClient) -> None:
        parser = SSEParser()
        url = f"{bridge.url}/api/chat"
        async with client.stream("POST", url, json=chat_body("resume-1", "hi")) as response:
            seen.status = response.status_code
            async for piece in response.aiter_raw():
                for event in parser.feed(piece):
                    if event.data is not None:
                        seen.events.append((event.id, event.data))
                if seen.text() == first_half:
                    first_half_read.set()

    async with httpx.AsyncClient(timeout=30) as client:
        original = asyncio.create_task(original_reader(client))
        await asyncio.wait_for(first_half_read.wait(), 20)
        resumed = StreamResult(status=0, headers={})
        parser = SSEParser()
        async with client.stream("GET", f"{bridge.url}/api/chat/resume-1/stream") as response:
            resumed.status = response.status_code
            assert second_half.split()[0] not in seen.text()  # still running
            async for piece in response.aiter_raw():
                for event in parser.feed(piece):
                    if event.data is not None:
                        resumed.events.append((event.id, event.data))
        await original
    assert_complete(seen)
    assert_complete(resumed)
    assert resumed.events == seen.events
    assert seen.text() == first_half + second_half


async def test_resume_after_a_dropped_post_loses_nothing(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text(WORDS)], token_delay=0.005)
    async with httpx.AsyncClient(timeout=30) as client:
        dropped = await post(client, bridge, "drop-1", stop_after=10)
        assert not dropped.done
        resumed = await read_stream(client, "GET", f"{bridge.url}/api/chat/drop-1/stream")
    assert resumed.status == 200 and resumed.done
    assert resumed.types[0] == "start" and resumed.types[-1] == "finish"
    # A full replay is compacted: the same start and offsets that only rise, the whole text.
    assert resumed.events[0] == dropped.events[0]
    assert resumed.offsets == sorted(set(resumed.offsets))
    assert resumed.text() == WORDS
    assert openai_fake.disconnects == 0  # the generation kept running


@pytest.mark.parametrize("cursor_in", ["query", "header"])
async def test_resume_from_an_offset_sends_only_what_follows(
    bridge: LiveServer, openai_fake: OpenAIFake, cursor_in: str
) -> None:
    openai_fake.enqueue([Text(WORDS)], token_delay=0.002)
    async with httpx.AsyncClient(timeout=30) as client:
        full = await post(client, bridge, "offsets")
        generation = full.headers["x-bridge-generation-id"]
        last = len(full.chunks) - 1
        for cursor in sorted({-1, 0, 1, 7, last // 2, last - 1, last}):
            url = f"{bridge.url}/api/chat/offsets/stream?generation={generation}"
            headers = {}
            if cursor_in == "query":
                url += f"&cursor={cursor}"
            else:
                headers["last-event-id"] = str(cursor)
            part = await read_stream(client, "GET", url, headers=headers)
            assert part.status == 200
            assert part.done
            assert part.offsets == list(range(cursor + 1, last + 1))
            assert part.events[:-1] == full.events[cursor + 1 : -1]


async def test_resume_past_retention_is_410(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    clock = Clock()
    store = MemoryStore(log_ttl_seconds=1, clock=clock)
    server = bridge_factory(store=store, **openai_settings(openai_fake, bridge_log_ttl_seconds=1))
    async with httpx.AsyncClient(timeout=30) as client:
        full = await post(client, server, "retention")
        generation = full.headers["x-bridge-generation-id"]
        clock.advance(2.2)  # past the log's retention
        response = await client.get(
            f"{server.url}/api/chat/retention/stream?generation={generation}&cursor=2"
        )
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "generation_gone"


async def test_resume_sends_heartbeats_while_the_model_is_silent(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(**openai_settings(openai_fake, bridge_heartbeat_seconds=0.2))
    openai_fake.enqueue([Text("before "), Delay(1.2), Text("after")])
    async with httpx.AsyncClient(timeout=30) as client:
        result = await post(client, server, "heartbeat")
    assert_complete(result)
    assert result.comments.count("keep-alive") >= 3
    assert result.text() == "before after"


async def test_second_post_while_running_is_409(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text(WORDS)], token_delay=0.01)
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{bridge.url}/api/chat"
        async with client.stream("POST", url, json=chat_body("busy", "hi")) as first:
            # The headers come once the generation began: the second POST is second.
            assert first.status_code == 200
            second = await client.post(url, json=chat_body("busy", "again"))
            await first.aread()
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "generation_active"


async def test_stop_closes_the_provider_and_keeps_the_partial_answer(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text(WORDS * 5)], token_delay=0.01)
    async with httpx.AsyncClient(timeout=30) as client:
        text_flows = asyncio.Event()
        streaming = asyncio.create_task(post(client, bridge, "stop-1", streaming=text_flows))
        await asyncio.wait_for(text_flows.wait(), 10)  # part of the answer is out
        stop = await client.post(f"{bridge.url}/api/chat/stop-1/stop")
        result = await streaming
        again = await client.post(f"{bridge.url}/api/chat/stop-1/stop")
        history = (await client.get(f"{bridge.url}/api/chat/stop-1/messages")).json()
        after = await client.get(f"{bridge.url}/api/chat/stop-1/stream")
    assert stop.status_code == 200
    assert stop.json()["stopped"] is True
    assert again.json() == {"stopped": False, "generationId": None}
    assert await openai_fake.wait_for_disconnect(5)
    assert_complete(result)
    assert result.types[-1] == "abort"
    partial = result.text()
    assert 0 < len(partial) < len(WORDS * 5)
    assert history["activeGenerationId"] is None
    assistant = history["messages"][-1]
    assert assistant["id"] == result.chunks[0]["messageId"]
    stored = "".join(p["text"] for p in assistant["parts"] if p["type"] == "text")
    assert stored == partial
    assert after.status_code == 204


async def test_stop_before_the_first_token_works(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Delay(10), Text("too late")])
    async with httpx.AsyncClient(timeout=30) as client:
        began = asyncio.Event()
        streaming = asyncio.create_task(post(client, bridge, "stop-early", started=began))
        await asyncio.wait_for(began.wait(), 10)  # the generation began, no token yet
        stop = await client.post(f"{bridge.url}/api/chat/stop-early/stop")
        result = await streaming
    assert stop.json()["stopped"] is True
    assert result.types[-1] == "abort"
    assert "text-delta" not in result.types


async def test_provider_refusal_before_streaming_is_an_http_error(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([HttpError(401)])
    openai_fake.enqueue([Text("fine now")])
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{bridge.url}/api/chat", json=chat_body("auth", "hi"))
        resume = await read_stream(client, "GET", f"{bridge.url}/api/chat/auth/stream")
        again = await post(client, bridge, "auth", "hi again")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "provider_auth_failed"
    assert "test-key" not in response.text
    # The refused generation ended at once: a resume within the grace period replays it
    # to its end (the error), and the chat takes a new message at once.
    assert_complete(resume)
    assert "error" in resume.types
    assert resume.chunks[-1]["finishReason"] == "error"
    assert_complete(again)
    assert again.text() == "fine now"


async def test_provider_error_mid_stream_becomes_an_error_chunk(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(**openai_settings(openai_fake, bridge_step_retries=0))
    openai_fake.enqueue([Text("partial answer "), StreamError("upstream broke")])
    async with httpx.AsyncClient(timeout=30) as client:
        result = await post(client, server, "midstream")
    assert_complete(result)
    assert "error" in result.types
    assert result.chunks[-1] == {
        "type": "finish",
        "finishReason": "error",
        "messageMetadata": result.chunks[-1]["messageMetadata"],
    }


async def test_resume_around_the_finish_never_truncates(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    """Resumes fired just before, at and after the last chunk: each is either nothing
    (204) or the whole generation, never a truncated or hanging stream."""
    server = bridge_factory(**openai_settings(openai_fake))
    rng = random.Random(7)
    complete = 0
    async with httpx.AsyncClient(timeout=15) as client:
        for round_number in range(25):
            chat_id = f"race-{round_number}"
            openai_fake.enqueue([Text("a b c d e f g h")], token_delay=0.005)
            original = asyncio.create_task(post(client, server, chat_id))
            await asyncio.sleep(rng.uniform(0.0, 0.12))
            # `cursor=-1`: the log's own chunks (a resume without any cursor is compacted).
            resumes = [
                read_stream(client, "GET", f"{server.url}/api/chat/{chat_id}/stream?cursor=-1")
                for _ in range(3)
            ]
            results = await asyncio.wait_for(asyncio.gather(*resumes), timeout=15)
            first = await original
            for result in results:
                if result.status == 204:
                    continue
                complete += 1
                assert_complete(result)
                assert result.events == first.events
    # The property needs resumes that got the whole answer, not only 204s.
    assert complete > 0


async def test_provider_error_mid_stream_is_retried_with_reset_step(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text("doomed attempt "), StreamError("upstream broke")])
    openai_fake.enqueue([Text("second attempt")])
    async with httpx.AsyncClient(timeout=30) as client:
        result = await post(client, bridge, "retry", headers={"x-ai-sdk-level": "7"})
        history = (await client.get(f"{bridge.url}/api/chat/retry/messages")).json()
    assert_complete(result)
    assert "reset-step" in result.types
    assert result.chunks[-1]["finishReason"] == "stop"
    stored = history["messages"][-1]
    texts = [p["text"] for p in stored["parts"] if p["type"] == "text"]
    assert texts == ["second attempt"]
