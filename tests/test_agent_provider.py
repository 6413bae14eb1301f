"""A pydantic-ai agent behind the durable log: its text, reasoning and its own tool run
stream to the client, a reader that dropped mid-answer resumes it, and the stored message
is what the real `ai` client builds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from bridge.providers.registry import load_provider
from protocol.sse import SSEParser
from tests import agents
from tests.bridge_server import BridgeFactory, chat_body
from tests.node_harness import NodeHarness
from tests.session_client import read_stream


@pytest.fixture
def agent_bridge(bridge_factory: BridgeFactory) -> str:
    server = bridge_factory(
        bridge_providers=["agent=tests.agents:make_provider"],
        bridge_model="agent:weather",
    )
    return server.url


async def test_agent_provider_streams_text_reasoning_and_its_own_tool_run(
    agent_bridge: str,
) -> None:
    agents.LOOKUPS.clear()
    async with httpx.AsyncClient(base_url=agent_bridge, timeout=30) as client:
        result = await read_stream(
            client, "POST", "/api/chat", json=chat_body("agent-1", "Weather in Paris?")
        )
        assert result.status == 200 and result.done
        types = result.types
        assert types[0] == "start" and types[-1] == "finish"
        assert "reasoning-delta" in types
        call = next(c for c in result.chunks if c["type"] == "tool-input-available")
        assert call["toolName"] == "lookup" and call["input"] == {"city": "Paris"}
        assert call["providerExecuted"] is True
        output = next(c for c in result.chunks if c["type"] == "tool-output-available")
        assert output["output"] == "sunny in Paris" and output["providerExecuted"] is True
        assert result.text() == "Let me check. It is sunny in Paris."
        # The agent ran its tool once; the bridge never ran it.
        assert agents.LOOKUPS == ["Paris"]
        stored = (await client.get("/api/chat/agent-1/messages")).json()["messages"][-1]
    tool = next(p for p in stored["parts"] if p["type"] == "tool-lookup")
    assert tool["state"] == "output-available" and tool["output"] == "sunny in Paris"
    assert [p["type"] for p in stored["parts"] if p["type"] in {"reasoning", "text"}] == [
        "reasoning",
        "text",
        "text",
    ]


async def _chunks(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    parser = SSEParser()
    async for piece in response.aiter_raw():
        for event in parser.feed(piece):
            if event.data is not None and event.data != "[DONE]":
                yield orjson.loads(event.data)


async def _read_until(
    chunks: AsyncIterator[dict[str, Any]], chunk_type: str | None
) -> list[dict[str, Any]]:
    """The next chunks up to the first of `chunk_type` (None: to the end of the stream)."""
    read: list[dict[str, Any]] = []
    async for chunk in chunks:
        read.append(chunk)
        if chunk["type"] == chunk_type:
            break
    return read


async def test_agent_provider_answer_resumes_after_a_drop_mid_answer(agent_bridge: str) -> None:
    agents.GATE.clear()  # the agent's second model call waits until we open it
    try:
        async with httpx.AsyncClient(base_url=agent_bridge, timeout=30) as client:
            body = chat_body("agent-2", "Weather in Paris?")
            async with client.stream("POST", "/api/chat", json=body) as response:
                seen = await _read_until(_chunks(response), "tool-output-available")
            assert seen[-1]["output"] == "sunny in Paris"  # then we hang up, mid-answer
            async with client.stream("GET", "/api/chat/agent-2/stream") as resumed:
                assert resumed.status_code == 200
                stream = _chunks(resumed)
                replayed = await _read_until(stream, "tool-output-available")
                agents.GATE.set()
                rest = await _read_until(stream, None)
    finally:
        agents.GATE.set()
    chunks = replayed + rest
    assert chunks[0]["type"] == "start" and chunks[-1]["type"] == "finish"
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text == "Let me check. It is sunny in Paris."
    assert sum(c["type"] == "tool-output-available" for c in chunks) == 1


def test_load_provider_refuses_what_is_not_a_provider() -> None:
    with pytest.raises(ValueError, match=r"name=package\.module:attribute"):
        load_provider("tests.agents:make_provider")
    with pytest.raises(ValueError, match="not a provider"):
        load_provider("x=tests.agents:LOOKUPS")


@pytest.mark.node
def test_agent_provider_message_is_what_the_ai_client_builds(
    node: NodeHarness, agent_bridge: str
) -> None:
    agents.GATE.set()
    result = node.chat(
        {
            "api": f"{agent_bridge}/api/chat",
            "chatId": "agent-3",
            "steps": [{"op": "send", "text": "Weather in Paris?"}, {"op": "settle"}],
        }
    )
    assert result["status"] == "ready", result["error"]
    stored = httpx.get(f"{agent_bridge}/api/chat/agent-3/messages").json()["messages"]
    assert result["messages"][1]["parts"] == stored[-1]["parts"]
