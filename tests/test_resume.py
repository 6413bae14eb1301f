"""Disconnect at chunk k, then resume: the final message equals the uninterrupted one.

Property-based over k with a fast Python reader, and with the real `Chat` class of
`@ai-sdk/react` for a drop in the same Chat and for a page reload (a fresh Chat)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.assembler import MessageAssembler
from protocol.chunks import parse_chunk
from tests.bridge_server import BridgeFactory, chat_body, openai_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import LiveServer, Reasoning, Text, ToolCall
from tests.node_harness import NodeHarness
from tests.session_client import read_stream

ANSWER = " ".join(f"token{index}" for index in range(60))
SCRIPT = [
    Reasoning("thinking it over"),
    Text(ANSWER),
    ToolCall("get_location", ["{", "}"], call_id="call_1"),
]


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, fake: OpenAIFake) -> LiveServer:
    """A bridge answering with `fake` (the fake OpenAI server of tests/bridge_server.py)."""
    return bridge_factory(**openai_settings(fake, bridge_tools="bridge.tools.examples"))


def fold(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    assembler = MessageAssembler()
    for chunk in chunks:
        assembler.apply(parse_chunk(chunk))
    return assembler.message.dump()


async def interrupted_run(
    server: LiveServer, chat_id: str, k: int, use_cursor: bool
) -> tuple[list[dict[str, Any]], list[int]]:
    """Drop the POST after k chunks, then resume: from the start or from the last offset."""
    async with httpx.AsyncClient(timeout=30) as client:
        first = await read_stream(
            client, "POST", f"{server.url}/api/chat", json=chat_body(chat_id, "go"), stop_after=k
        )
        received = first.chunks[:k]
        url = f"{server.url}/api/chat/{chat_id}/stream"
        headers = {}
        if use_cursor and received:
            headers["last-event-id"] = str(first.offsets[len(received) - 1])
            generation = first.headers["x-bridge-generation-id"]
            url += f"?generation={generation}"
        rest = await read_stream(client, "GET", url, headers=headers)
        assert rest.status == 200, rest.raw
        assert rest.done
        if use_cursor and received:
            return received + rest.chunks, first.offsets[:k] + rest.offsets
        return rest.chunks, rest.offsets  # a full replay replaces what the client had


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(k=st.integers(min_value=1, max_value=75), use_cursor=st.booleans())
def test_disconnect_at_any_chunk_then_resume_gives_the_same_message(
    bridge: LiveServer, fake: OpenAIFake, k: int, use_cursor: bool
) -> None:
    fake.enqueue(SCRIPT, token_delay=0.001)
    chat_id = f"prop-{k}-{use_cursor}-{fake.pending}"
    chunks, offsets = asyncio.run(interrupted_run(bridge, chat_id, k, use_cursor))
    if use_cursor:
        assert offsets == list(range(len(chunks)))  # no gap, nothing twice
    else:  # a full replay, compacted: each chunk stands for the offsets up to its own
        assert offsets == sorted(set(offsets)) and offsets[0] == 0
    stored = httpx.get(f"{bridge.url}/api/chat/{chat_id}/messages").json()["messages"][-1]
    assert fold(chunks) == stored
    texts = "".join(p.get("text", "") for p in stored["parts"] if p["type"] == "text")
    assert texts == ANSWER


@pytest.mark.node
@pytest.mark.parametrize("k", [1, 3, 12, 40])
def test_chat_class_recovers_a_dropped_connection_in_the_same_chat(
    node: NodeHarness, bridge: LiveServer, fake: OpenAIFake, k: int
) -> None:
    fake.enqueue(SCRIPT, token_delay=0.01)
    result = node.chat(
        {
            "api": f"{bridge.url}/api/chat",
            "chatId": f"drop-{k}",
            "steps": [
                {"op": "dropAfterChunks", "n": k},
                {"op": "send", "text": "go", "allowThrow": True},
                {"op": "resume"},
            ],
        }
    )
    assert_one_complete_answer(result, bridge, f"drop-{k}")


@pytest.mark.node
@pytest.mark.parametrize("k", [2, 25])
def test_chat_class_resumes_after_a_page_reload(
    node: NodeHarness, bridge: LiveServer, fake: OpenAIFake, k: int
) -> None:
    fake.enqueue(SCRIPT, token_delay=0.01)
    result = node.chat(
        {
            "api": f"{bridge.url}/api/chat",
            "chatId": f"reload-{k}",
            "steps": [
                {"op": "dropAfterChunks", "n": k, "message": "network error"},
                {"op": "send", "text": "go", "allowThrow": True},
                {"op": "newChat"},
                {"op": "resume"},
            ],
        }
    )
    assert_one_complete_answer(result, bridge, f"reload-{k}")


def assert_one_complete_answer(
    result: dict[str, Any], bridge: LiveServer, chat_id: str, answer: str = ANSWER
) -> None:
    """A Node `Chat` run ended ready with one user message and one assistant message, whose
    text is `answer` and which is the message the bridge stored."""
    assert result["status"] == "ready", result.get("error")
    messages = result["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"], messages
    stored = httpx.get(f"{bridge.url}/api/chat/{chat_id}/messages").json()["messages"]
    assert messages[1]["id"] == stored[1]["id"]
    assert messages[1]["parts"] == stored[1]["parts"]
    text = "".join(p.get("text", "") for p in messages[1]["parts"] if p["type"] == "text")
    assert text == answer
