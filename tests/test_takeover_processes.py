"""Two bridge processes on one real Redis: the process producing an answer dies (SIGKILL)
or is told to stop (SIGTERM); a reader resuming on the other process gets the complete
answer, each offset once, and the complete answer is stored."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import httpx
import orjson
import pytest

from protocol.assembler import MessageAssembler
from protocol.chunks import parse_chunk
from protocol.messages import TextUIPart
from tests.bridge_server import chat_body
from tests.session_client import StreamResult, read_stream
from tests.support.bridge_process import BridgeProcess
from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis

PROMPT = "tell me a long story"
# These readers fold the log as ai 7 does (`reset-step` applied, every offset once): they
# declare it, as the resilient transport does.
AI_7 = {"x-ai-sdk-level": "7"}


def _env(redis_server: RedisServer, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_server.url,
        "BRIDGE_KEY_PREFIX": prefix,
        "OPENAI_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
        "BRIDGE_MODEL": "demo:scripted",
        "BRIDGE_DEMO_TOKEN_DELAY_MS": "15",
        "BRIDGE_LEASE_SECONDS": "1",
        "BRIDGE_HEARTBEAT_SECONDS": "0.5",
        "BRIDGE_TAKEOVER_SWEEP_SECONDS": "0",
        **extra,
    }


def _folded_text(events: list[tuple[str | None, str]]) -> str:
    assembler = MessageAssembler()
    for _, data in events:
        if data != "[DONE]":
            assembler.apply(parse_chunk(data))
    message = assembler.message
    return "".join(p.text for p in message.parts if isinstance(p, TextUIPart))


def _stored_text(history: dict[str, Any]) -> str:
    last = history["messages"][-1]
    assert last["role"] == "assistant"
    return "".join(p["text"] for p in last["parts"] if p["type"] == "text")


async def _reference(client: httpx.AsyncClient, bridge: BridgeProcess) -> str:
    """The demo model's answer to PROMPT, produced without interruption."""
    body = chat_body(f"ref-{uuid.uuid4().hex[:6]}", PROMPT)
    result = await read_stream(client, "POST", f"{bridge.url}/api/chat", json=body)
    assert result.done and result.types[-1] == "finish"
    return _folded_text(result.events)


def _joined(first: StreamResult, resumed: StreamResult) -> list[tuple[str | None, str]]:
    """The events a client holds after reading `first` and resuming after its last offset:
    every offset exactly once and in order."""
    events = [e for e in first.events if e[1] != "[DONE]"] + resumed.events
    offsets = [int(e[0]) for e in events if e[0] is not None and e[1] != "[DONE]"]
    assert offsets == list(range(len(offsets))), offsets
    return events


async def test_takeover_after_sigkill_completes_the_answer_once(
    bridge_processes: Any, redis_server: RedisServer
) -> None:
    env = _env(redis_server, f"t{uuid.uuid4().hex[:8]}")
    doomed: BridgeProcess = bridge_processes(**env)
    survivor: BridgeProcess = bridge_processes(**env)
    async with httpx.AsyncClient(timeout=60, headers=AI_7) as client:
        expected = await _reference(client, survivor)
        body = chat_body("killed", PROMPT)
        first = await read_stream(
            client, "POST", f"{doomed.url}/api/chat", json=body, stop_after=40
        )
        assert first.status == 200 and "text-delta" in first.types
        doomed.signal(signal.SIGKILL)
        await asyncio.to_thread(doomed.process.wait, 10)
        resumed = await read_stream(
            client,
            "GET",
            f"{survivor.url}/api/chat/killed/stream",
            headers={"last-event-id": str(first.offsets[-1])},
        )
        history = (await client.get(f"{survivor.url}/api/chat/killed/messages")).json()
    assert resumed.status == 200 and resumed.done
    assert resumed.types[-1] == "finish"
    assert "error" not in resumed.types
    assert _folded_text(_joined(first, resumed)) == expected
    assert _stored_text(history) == expected
    assert history["activeGenerationId"] is None


async def test_sigterm_drains_then_hands_over_and_refuses_new_answers(
    bridge_processes: Any, redis_server: RedisServer
) -> None:
    env = _env(redis_server, f"t{uuid.uuid4().hex[:8]}", BRIDGE_DRAIN_SECONDS="0.5")
    leaving: BridgeProcess = bridge_processes(**env)
    staying: BridgeProcess = bridge_processes(**env)
    async with httpx.AsyncClient(timeout=60, headers=AI_7) as client:
        expected = await _reference(client, staying)
        body = chat_body("drained", PROMPT)
        async with client.stream("POST", f"{leaving.url}/api/chat", json=body) as response:
            assert response.status_code == 200
            raw = b""
            signalled = False
            refused: httpx.Response | None = None
            async for piece in response.aiter_raw():
                raw += piece
                if not signalled and raw.count(b"text-delta") >= 5:
                    leaving.signal(signal.SIGTERM)
                    signalled = True
                    # Readiness flips first (what a load balancer probes, as here); a
                    # new answer is then refused with Retry-After.
                    for _ in range(1000):
                        if (await client.get(f"{leaving.url}/readyz")).status_code == 503:
                            break
                    refused = await client.post(
                        f"{leaving.url}/api/chat", json=chat_body("late", "hi")
                    )
        first = _parse(raw)
        assert refused is not None
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "draining"
        # The reader ended at the hand-over, before the answer's end, and without the
        # end-of-stream mark: the client knows to resume.
        assert "finish" not in first.types
        assert not first.done
        resumed = await read_stream(
            client,
            "GET",
            f"{staying.url}/api/chat/drained/stream",
            headers={"last-event-id": str(first.offsets[-1])},
        )
        history = (await client.get(f"{staying.url}/api/chat/drained/messages")).json()
    await asyncio.to_thread(leaving.process.wait, 30)
    assert resumed.status == 200 and resumed.done
    assert resumed.types[-1] == "finish"
    assert "error" not in resumed.types and "abort" not in resumed.types
    assert _folded_text(_joined(first, resumed)) == expected
    assert _stored_text(history) == expected


def _parse(raw: bytes) -> StreamResult:
    from protocol.sse import SSEParser

    result = StreamResult(status=200, headers={})
    for event in SSEParser().feed(raw):
        if event.data is not None:
            result.events.append((event.id, event.data))
    return result


async def test_takeover_after_sigkill_during_a_tool_never_runs_it_again(
    bridge_processes: Any, redis_server: RedisServer
) -> None:
    env = _env(redis_server, f"t{uuid.uuid4().hex[:8]}", BRIDGE_TOOLS="bridge.tools.examples")
    doomed: BridgeProcess = bridge_processes(**env)
    survivor: BridgeProcess = bridge_processes(**env)
    async with httpx.AsyncClient(timeout=60, headers=AI_7) as client:
        body = chat_body("tool-kill", "use slow_report")
        raw = b""
        async with client.stream("POST", f"{doomed.url}/api/chat", json=body) as response:
            async for piece in response.aiter_raw():
                raw += piece
                if b"data-tool-run" in raw:
                    # The marker is durable before the tool starts: kill while it runs.
                    doomed.signal(signal.SIGKILL)
                    break
        await asyncio.to_thread(doomed.process.wait, 10)
        first = _parse(raw)
        resumed = await read_stream(
            client,
            "GET",
            f"{survivor.url}/api/chat/tool-kill/stream",
            headers={"last-event-id": str(first.offsets[-1])},
        )
        history = (await client.get(f"{survivor.url}/api/chat/tool-kill/messages")).json()
    events = _joined(first, resumed)
    chunks = [orjson.loads(data) for _, data in events if data != "[DONE]"]
    results = [c for c in chunks if str(c["type"]).startswith("tool-output-")]
    assert resumed.done and chunks[-1]["type"] == "finish"
    assert [r["type"] for r in results] == ["tool-output-error"]
    assert "interrupted" in results[0]["errorText"]
    stored = history["messages"][-1]
    tool_part = next(p for p in stored["parts"] if p["type"] == "tool-slow_report")
    assert tool_part["state"] == "output-error"
