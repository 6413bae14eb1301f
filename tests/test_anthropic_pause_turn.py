"""Anthropic's `pause_turn`: the API paused a long turn of its own (server) tools and expects
the assistant content back, as is, to continue it. The step loop makes the next model call
with the paused step's content (its web search call and results, the call alone when it has
no result yet) instead of ending the answer; on later turns the searches go back as the API
sent them (the AI SDK's mapping), never as a tool result of ours."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.bridge_server import BridgeFactory, chat_body
from tests.fakes.replay import ReplayServer
from tests.session_client import read_stream
from tests.test_provider_fidelity import BODIES, RECORDINGS, next_request

ANTHROPIC = RECORDINGS / "anthropic"
SEARCH_ID = "srvtoolu_01WYG3ziw53XMcoyKL4XcZmE"
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
LEVEL_7 = {"x-ai-sdk-level": "7"}


@pytest.fixture
def replay() -> Any:
    with ReplayServer() as server:
        yield server


def _paused(recording: str) -> bytes:
    """The recording with the API's `pause_turn` as its stop reason."""
    body = BODIES[ANTHROPIC / recording]
    return body.replace(b'"stop_reason":"end_turn"', b'"stop_reason":"pause_turn"')


async def _answer(bridge_factory: BridgeFactory, replay: ReplayServer) -> list[dict[str, Any]]:
    model = "anthropic:claude-test"
    server = bridge_factory(
        anthropic_api_key="k",
        anthropic_base_url=replay.url,
        bridge_model=model,
        bridge_model_options={model: {"provider_tools": [WEB_SEARCH]}},
    )
    async with httpx.AsyncClient(timeout=30, headers=LEVEL_7) as client:
        result = await read_stream(
            client, "POST", f"{server.url}/api/chat", json=chat_body("paused", "Research it")
        )
    assert result.status == 200 and result.done
    return [orjson.loads(data) for _, data in result.events if data != "[DONE]"]


async def test_pause_turn_continues_the_turn_with_the_paused_content_as_is(
    bridge_factory: BridgeFactory, replay: ReplayServer
) -> None:
    replay.serve(_paused("web-search.sse"))
    replay.serve(BODIES[ANTHROPIC / "text.sse"])
    chunks = await _answer(bridge_factory, replay)

    types = [c["type"] for c in chunks]
    assert types.count("start-step") == 2 and types.count("finish-step") == 2
    assert chunks[-1] == {**chunks[-1], "type": "finish", "finishReason": "stop"}
    assert len(replay.requests) == 2
    sent = replay.requests[1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant"]
    content = sent[-1]["content"]
    assert [b["type"] for b in content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert content[0] == {
        "type": "server_tool_use",
        "id": SEARCH_ID,
        "name": "web_search",
        "input": {"query": "weather paris"},
    }
    assert content[1]["tool_use_id"] == SEARCH_ID
    assert [r["encrypted_content"] for r in content[1]["content"]] == [
        "EqgfCioIARgBIiQ3YTAwMjY1Mi1",
        "EpQBCioIARgBIiQ1ZGY2",
    ]
    assert content[1]["content"][0] == {
        "type": "web_search_result",
        "url": "https://weather.example.com/paris",
        "title": "Paris weather",
        "page_age": "August 4, 2025",
        "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1",
    }
    assert content[2] == {"type": "text", "text": "It is sunny, 24 °C."}


async def test_pause_turn_sends_back_a_search_not_run_yet_alone(
    bridge_factory: BridgeFactory, replay: ReplayServer
) -> None:
    replay.serve(BODIES[ANTHROPIC / "pause-turn.sse"])
    replay.serve(BODIES[ANTHROPIC / "text.sse"])
    chunks = await _answer(bridge_factory, replay)

    assert chunks[-1] == {**chunks[-1], "type": "finish", "finishReason": "stop"}
    content = replay.requests[1]["body"]["messages"][-1]["content"]
    assert content == [
        {
            "type": "server_tool_use",
            "id": "srvtoolu_01Pause",
            "name": "web_search",
            "input": {"query": "long research"},
        }
    ]


async def test_pause_turn_next_turn_sends_searches_back_as_the_api_sent_them(
    replay: ReplayServer,
) -> None:
    body = await next_request(replay, "anthropic", BODIES[ANTHROPIC / "web-search.sse"])
    assistant, question = body["messages"][1], body["messages"][2]
    kinds = [b["type"] for b in assistant["content"]]
    assert kinds == ["server_tool_use", "web_search_tool_result", "text"]
    # Never as a tool of ours: no tool_result in the user turn after it.
    assert [b["type"] for b in question["content"]] == ["text"]


async def test_pause_turn_call_without_result_is_left_out_of_a_later_turn(
    replay: ReplayServer,
) -> None:
    body = await next_request(replay, "anthropic", BODIES[ANTHROPIC / "pause-turn.sse"])
    # The paused call had no result and is not the last step: nothing of it is sent.
    assert [m["role"] for m in body["messages"]] == ["user"]
