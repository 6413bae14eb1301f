"""Provider-defined tools by configuration (BRIDGE_MODEL_OPTIONS `provider_tools`): the
tools reach the provider's request as configured, with what they need (OpenAI's `include`
for their sources and outputs, Anthropic's beta headers), and their calls come back as
provider-executed tool calls (the recordings of tests/test_provider_fidelity.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.providers.base import ModelRequest, ToolCall, ToolResult, ToolSpec
from bridge.providers.registry import ProviderRegistry
from bridge.settings import Settings
from tests.fakes import collect, message, of_type
from tests.fakes.replay import ReplayServer
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
