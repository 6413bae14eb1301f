"""Provider-defined tools by configuration (BRIDGE_MODEL_OPTIONS `provider_tools`): the
tools reach the provider's request as configured, with what they need (OpenAI's `include`
for their sources and outputs, Anthropic's beta headers), and their calls come back as
provider-executed tool calls (the recordings of tests/test_provider_fidelity.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from bridge.providers.base import ModelRequest, ToolCall, ToolResult, ToolSpec
from bridge.providers.registry import ProviderRegistry
from bridge.settings import Settings
from tests.bridge_server import BridgeFactory, chat_body, sse_events
from tests.fakes import collect, message, of_type
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.replay import ReplayServer
from tests.fakes.server import RawBytes, Text, sse
from tests.test_provider_fidelity import BODIES, RECORDINGS

OPENAI_TOOLS: list[dict[str, Any]] = [
    {
        "type": "web_search",
        "filters": {"allowed_domains": ["weather.example.com"]},
        "user_location": {"type": "approximate", "country": "FR", "city": "Paris"},
    },
    {"type": "file_search", "vector_store_ids": ["vs_policies"]},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {
        "type": "mcp",
        "server_label": "deepwiki",
        "server_url": "https://mcp.deepwiki.com/mcp",
        "allowed_tools": ["ask_question"],
        "require_approval": "never",
    },
]
ANTHROPIC_TOOLS: list[dict[str, Any]] = [
    {
        "type": "web_search_20250305",
        "name": "web_search",
        "max_uses": 3,
        "allowed_domains": ["weather.example.com"],
    },
    {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2},
    {"type": "code_execution_20250825", "name": "code_execution"},
]
WEATHER = ToolSpec("get_weather", "The weather of a city.", {"type": "object"})


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def registry_for(replay: ReplayServer, model: str, tools: list[dict[str, Any]]) -> ProviderRegistry:
    settings = Settings(
        _env_file=None,
        openai_base_url=replay.url + "/v1",
        anthropic_api_key="k",
        anthropic_base_url=replay.url,
        bridge_model=model,
        bridge_model_options={model: {"provider_tools": tools}},
    )
    return ProviderRegistry.from_settings(settings)


async def ask(registry: ProviderRegistry, model: str) -> list[Any]:
    provider, name, _ = registry.choose(model)
    request = ModelRequest(name, [message("user", "Weather in Paris?")], tools=[WEATHER])
    try:
        return await collect(provider.stream(request))
    finally:
        await registry.aclose()


async def test_provider_tools_reach_the_openai_request_with_their_includes(
    replay: ReplayServer,
) -> None:
    replay.serve(BODIES[RECORDINGS / "openai" / "web-search.sse"])
    registry = registry_for(replay, "openai:gpt-5-mini", OPENAI_TOOLS)
    events = await ask(registry, "openai:gpt-5-mini")
    body = replay.requests[-1]["body"]
    assert body["tools"][0]["name"] == "get_weather"
    assert body["tools"][1:] == OPENAI_TOOLS
    assert sorted(body["include"]) == [
        "code_interpreter_call.outputs",
        "file_search_call.results",
        "web_search_call.action.sources",
    ]
    (call,) = of_type(events, ToolCall)
    assert (call.tool_name, call.provider_executed) == ("web_search", True)
    (result,) = of_type(events, ToolResult)
    assert result.output["action"] == {"type": "search", "query": "weather paris today"}


async def test_provider_tools_reach_the_anthropic_request_with_their_betas(
    replay: ReplayServer,
) -> None:
    replay.serve(BODIES[RECORDINGS / "anthropic" / "web-fetch.sse"])
    registry = registry_for(replay, "anthropic:claude-sonnet-4-5", ANTHROPIC_TOOLS)
    events = await ask(registry, "anthropic:claude-sonnet-4-5")
    request = replay.requests[-1]
    assert request["body"]["tools"][0]["name"] == "get_weather"
    assert request["body"]["tools"][1:] == ANTHROPIC_TOOLS
    betas = request["headers"]["anthropic-beta"].split(",")
    assert sorted(betas) == ["code-execution-2025-08-25", "web-fetch-2025-09-10"]
    (call,) = of_type(events, ToolCall)
    assert (call.tool_name, call.provider_executed) == ("web_fetch", True)
    (result,) = of_type(events, ToolResult)
    assert result.output["url"] == "https://example.com/article"


async def test_provider_tools_of_another_model_are_not_offered(replay: ReplayServer) -> None:
    replay.serve(BODIES[RECORDINGS / "openai" / "text.sse"])
    registry = registry_for(replay, "openai:gpt-5-mini", OPENAI_TOOLS)
    provider, name = registry.resolve("openai:gpt-4.1")
    try:
        await collect(provider.stream(ModelRequest(name, [message("user", "Hi")])))
    finally:
        await registry.aclose()
    body = replay.requests[-1]["body"]
    assert "tools" not in body
    assert "include" not in body


@pytest.mark.parametrize("tool", [{}, {"type": ""}, {"type": 3}])
def test_provider_tools_setting_refuses_a_tool_without_its_type(tool: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="provider tool needs"):
        Settings(_env_file=None, bridge_model_options={"openai:m": {"provider_tools": [tool]}})


# --------------------------------------------------------------------------- MCP approvals

MCP_REQUEST = {
    "id": "mcpr_approval01",
    "type": "mcp_approval_request",
    "server_label": "deepwiki",
    "name": "ask_question",
    "arguments": '{"question":"What is streamText?"}',
}
MCP_CALL = {
    "id": "mcp_call01",
    "type": "mcp_call",
    "approval_request_id": "mcpr_approval01",
    "server_label": "deepwiki",
    "name": "ask_question",
    "arguments": '{"question":"What is streamText?"}',
    "output": "A function of the AI SDK.",
    "error": None,
}


def output_item(item: dict[str, Any], index: int) -> RawBytes:
    """An output item the fake has no step for, added and done (its real events)."""
    return RawBytes(
        sse(
            {"type": "response.output_item.added", "output_index": index, "item": item},
            "response.output_item.added",
        )
        + sse(
            {"type": "response.output_item.done", "output_index": index, "item": item},
            "response.output_item.done",
        )
    )


@pytest.mark.parametrize("approved", [True, False])
def test_provider_mcp_approval_goes_through_the_approval_flow(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake, approved: bool
) -> None:
    """The API's `mcp_approval_request` is a provider-executed tool part waiting for
    approval; the client's answer (checked like any approval) goes back to the API as
    `mcp_approval_response` on the next request, and the call the API then ran is shown
    with its output. A denial is marked denied, and the API is told so."""
    mcp = {**OPENAI_TOOLS[3], "require_approval": "always"}
    server = bridge_factory(
        openai_api_key="test-key",
        openai_base_url=openai_fake.base_url,
        bridge_model="openai:gpt-test",
        bridge_model_options={"openai:gpt-test": {"provider_tools": [mcp]}},
    )
    openai_fake.enqueue([output_item(MCP_REQUEST, 0)])
    after = (
        [output_item(MCP_CALL, 0), Text("streamText streams.")]
        if approved
        else [Text("I will not ask.")]
    )
    openai_fake.enqueue(after)
    chat = f"mcp-{approved}"
    first = httpx.post(f"{server.url}/api/chat", json=chat_body(chat, "Ask deepwiki"), timeout=30)
    assert first.status_code == 200
    chunks = [orjson.loads(data) for _, data in sse_events(first) if data != "[DONE]"]
    (request,) = [c for c in chunks if c["type"] == "tool-approval-request"]
    assert request == {
        "type": "tool-approval-request",
        "approvalId": "mcpr_approval01",
        "toolCallId": "mcpr_approval01",
    }
    assert chunks[-1]["type"] == "finish"
    history = httpx.get(f"{server.url}/api/chat/{chat}/messages").json()["messages"]
    assistant = history[-1]
    (part,) = [p for p in assistant["parts"] if p["type"].startswith("tool-")]
    assert part["type"] == "tool-mcp.ask_question"
    assert part["state"] == "approval-requested" and part["providerExecuted"] is True
    assert part["input"] == {"question": "What is streamText?"}
    part["state"] = "approval-responded"
    part["approval"] = {**part["approval"], "approved": approved}
    body = {
        "id": chat,
        "messages": history,
        "trigger": "submit-message",
        "messageId": assistant["id"],
    }
    second = httpx.post(f"{server.url}/api/chat", json=body, timeout=30)
    assert second.status_code == 200
    sent = openai_fake.requests[-1].body["input"]
    assert sent == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Ask deepwiki"}],
        },
        {"type": "item_reference", "id": "mcpr_approval01"},
        {
            "type": "mcp_approval_response",
            "approval_request_id": "mcpr_approval01",
            "approve": approved,
        },
    ]
    final = httpx.get(f"{server.url}/api/chat/{chat}/messages").json()["messages"][-1]
    tools = [
        (p["type"], p["toolCallId"], p["state"], p.get("output"))
        for p in final["parts"]
        if p["type"].startswith("tool-")
    ]
    text = "".join(p["text"] for p in final["parts"] if p["type"] == "text")
    if approved:
        assert tools == [
            ("tool-mcp.ask_question", "mcpr_approval01", "approval-responded", None),
            (
                "tool-mcp.ask_question",
                "mcp_call01",
                "output-available",
                {
                    "type": "call",
                    "serverLabel": "deepwiki",
                    "name": "ask_question",
                    "arguments": '{"question":"What is streamText?"}',
                    "output": "A function of the AI SDK.",
                },
            ),
        ]
        assert text == "streamText streams."
    else:
        assert tools == [("tool-mcp.ask_question", "mcpr_approval01", "output-denied", None)]
        assert text == "I will not ask."
    # Answered once: the same answer again is refused.
    again = httpx.post(f"{server.url}/api/chat", json=body, timeout=30)
    assert again.status_code == 409
