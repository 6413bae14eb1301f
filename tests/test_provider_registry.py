"""ProviderRegistry: which providers the settings configure, the default model, resolving."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bridge.errors import ModelNotAllowed
from bridge.providers.anthropic import AnthropicProvider
from bridge.providers.demo import DemoProvider
from bridge.providers.openai_chat import OpenAIChatProvider
from bridge.providers.openai_responses import OpenAIResponsesProvider
from bridge.providers.registry import (
    PLACEHOLDER_KEY,
    ModelConfigError,
    ProviderRegistry,
    default_model,
)
from tests.bridge_server import make_settings


@pytest.fixture
async def registries() -> Any:
    made: list[ProviderRegistry] = []

    def build(**overrides: Any) -> ProviderRegistry:
        registry = ProviderRegistry.from_settings(make_settings(**overrides))
        made.append(registry)
        return registry

    yield build
    for registry in made:
        await registry.aclose()


async def test_no_keys_serves_the_demo_model_with_a_warning(
    registries: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.providers.registry"):
        registry = registries(bridge_demo_token_delay_ms=5)

    assert registry.default_model == "demo:scripted"
    assert registry.allowed_models == ["demo:scripted"]
    assert registry.configured == ["demo"]
    assert any("demo" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    provider, model = registry.resolve("demo:scripted")
    assert isinstance(provider, DemoProvider)
    assert model == "scripted"
    assert provider.token_delay == pytest.approx(0.005)


async def test_openai_key(registries: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        registry = registries(openai_api_key="sk-test-1234567890")

    assert registry.default_model == "openai:gpt-4.1-mini"
    assert registry.configured == ["demo", "openai", "openai-chat"]
    provider, model = registry.resolve("openai:gpt-4.1-mini")
    assert isinstance(provider, OpenAIResponsesProvider)
    assert model == "gpt-4.1-mini"
    chat, chat_model = registry.resolve("openai-chat:gpt-4o")
    assert isinstance(chat, OpenAIChatProvider)
    assert chat_model == "gpt-4o"
    assert not [r for r in caplog.records if "demo" in r.getMessage()]


async def test_base_url_alone_configures_openai_with_a_placeholder_key(registries: Any) -> None:
    registry = registries(
        openai_base_url="http://127.0.0.1:11434/v1", bridge_model="openai-chat:llama3.2:8b"
    )

    provider, model = registry.resolve("openai-chat:llama3.2:8b")
    assert isinstance(provider, OpenAIChatProvider)
    assert model == "llama3.2:8b"  # model names may contain colons (Ollama tags)
    client = provider._client
    assert client.api_key == PLACEHOLDER_KEY
    assert str(client.base_url).startswith("http://127.0.0.1:11434/v1")
    assert registry.default_model == "openai-chat:llama3.2:8b"


async def test_anthropic_key(registries: Any) -> None:
    registry = registries(anthropic_api_key="sk-ant-test", anthropic_base_url="http://a.test")

    assert registry.default_model == "anthropic:claude-sonnet-4-5"
    assert registry.configured == ["anthropic", "demo"]
    provider, model = registry.resolve("anthropic:claude-opus-4-6")
    assert isinstance(provider, AnthropicProvider)
    assert model == "claude-opus-4-6"


def test_default_model_order() -> None:
    both = make_settings(openai_api_key="sk-a", anthropic_api_key="sk-ant-b")
    assert default_model(both) == "openai:gpt-4.1-mini"
    chosen = make_settings(openai_api_key="sk-a", bridge_model="anthropic:claude-haiku-4-5")
    assert default_model(chosen) == "anthropic:claude-haiku-4-5"


async def test_allowlist(registries: Any) -> None:
    registry = registries(
        openai_api_key="sk-a",
        anthropic_api_key="sk-ant-b",
        bridge_models="openai:gpt-4.1-mini, anthropic:claude-sonnet-4-6,demo:scripted",
    )

    assert registry.allowed_models == [
        "openai:gpt-4.1-mini",
        "anthropic:claude-sonnet-4-6",
        "demo:scripted",
    ]
    provider, model, model_string = registry.choose(None)
    assert (model, model_string) == ("gpt-4.1-mini", "openai:gpt-4.1-mini")
    provider, model, _ = registry.choose("demo:scripted")
    assert isinstance(provider, DemoProvider)
    with pytest.raises(ModelNotAllowed, match="not allowed"):
        registry.choose("openai:gpt-5")


@pytest.mark.parametrize("model_string", ["gpt-4.1", "openai:", ":gpt-4.1", "", " : "])
async def test_malformed_model_strings(registries: Any, model_string: str) -> None:
    registry = registries()

    with pytest.raises(ModelNotAllowed, match="provider:model"):
        registry.resolve(model_string)


async def test_unknown_and_unconfigured_providers(registries: Any) -> None:
    registry = registries(openai_api_key="sk-secret-value-123")

    with pytest.raises(ModelNotAllowed, match='unknown provider "mistral"'):
        registry.resolve("mistral:large")
    with pytest.raises(ModelNotAllowed, match="ANTHROPIC_API_KEY") as caught:
        registry.resolve("anthropic:claude-sonnet-4-6")
    assert "sk-secret" not in caught.value.message
    assert caught.value.status_code == 400


async def test_aclose_closes_every_client() -> None:
    registry = ProviderRegistry.from_settings(
        make_settings(openai_api_key="sk-a", anthropic_api_key="sk-ant-b")
    )
    clients = [p._client for p in registry.providers.values() if hasattr(p, "_client")]
    assert len(clients) == 3

    await registry.aclose()

    assert all(client.is_closed() for client in clients)


async def test_unservable_models_stop_the_start_up() -> None:
    with pytest.raises(ModelConfigError, match="ANTHROPIC_API_KEY"):
        ProviderRegistry.from_settings(make_settings(bridge_model="anthropic:claude-sonnet-4-6"))
