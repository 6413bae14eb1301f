"""Per-model options (BRIDGE_MODEL_OPTIONS) reach each API in its own parameter, through the
real SDKs; models without options send none."""

from __future__ import annotations

from typing import Any

import httpx

from bridge.settings import ModelOptionsSetting
from tests.bridge_server import BridgeFactory, chat_body
from tests.fakes.anthropic_server import AnthropicFake
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Text


def _ask(url: str, chat_id: str, model: str) -> None:
    response = httpx.post(f"{url}/api/chat", json=chat_body(chat_id, "hi", model=model), timeout=30)
    assert response.status_code == 200, response.text


def test_model_options_reach_each_api(bridge_factory: BridgeFactory) -> None:
    with OpenAIFake(api_key="test-key") as openai, AnthropicFake(api_key="test-key") as claude:
        server = bridge_factory(
            openai_api_key="test-key",
            openai_base_url=openai.base_url,
            anthropic_api_key="test-key",
            anthropic_base_url=claude.url,
            bridge_models=[
                "openai:o4-mini",
                "openai-chat:qwen3",
                "anthropic:claude-sonnet-4-5",
                "openai-chat:plain",
            ],
            bridge_model_options={
                "openai:o4-mini": ModelOptionsSetting(reasoning_effort="high"),
                "openai-chat:qwen3": ModelOptionsSetting(reasoning_effort="low"),
                "anthropic:claude-sonnet-4-5": ModelOptionsSetting(thinking_budget=2048),
            },
        )
        for _ in range(3):
            openai.enqueue([Text("ok")])
        claude.enqueue([Text("ok")])
        _ask(server.url, "o1", "openai:o4-mini")
        _ask(server.url, "o2", "openai-chat:qwen3")
        _ask(server.url, "o3", "anthropic:claude-sonnet-4-5")
        _ask(server.url, "o4", "openai-chat:plain")
        bodies: list[dict[str, Any]] = [r.body for r in openai.requests]
        assert bodies[0]["reasoning"]["effort"] == "high"
        assert bodies[1]["reasoning_effort"] == "low"
        assert "reasoning_effort" not in bodies[2]
        anthropic_body = claude.requests[0].body
        assert anthropic_body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        # The budget is added to max_tokens, so the answer keeps its own share.
        assert anthropic_body["max_tokens"] > 2048
