"""Run the bridge for real (uvicorn on a free loopback port) with chosen settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bridge.app import create_app
from bridge.settings import Settings
from bridge.store.base import SessionStore
from protocol.sse import SSEParser
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import LiveServer

BridgeFactory = Callable[..., LiveServer]


def make_settings(**overrides: Any) -> Settings:
    """Settings isolated from the machine's environment and any .env file."""
    base: dict[str, Any] = {
        "openai_api_key": None,
        "anthropic_api_key": None,
        "openai_base_url": None,
        "anthropic_base_url": None,
        "redis_url": None,
        "bridge_model": None,
        "bridge_models": [],
        "bridge_demo_token_delay_ms": 1,
        "bridge_heartbeat_seconds": 15,
    }
    base.update(overrides)
    # In-process unless Redis is given, so tests leave no files behind; SQLite tests ask.
    base.setdefault("bridge_store", "redis" if base["redis_url"] else "memory")
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.fixture
def bridge_factory() -> Iterator[BridgeFactory]:
    servers: list[LiveServer] = []

    def start(*, store: SessionStore | None = None, **overrides: Any) -> LiveServer:
        server = LiveServer(create_app(make_settings(**overrides), store=store))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def openai_fake() -> Iterator[OpenAIFake]:
    """The fake OpenAI server (Responses and Chat Completions), accepting key `test-key`."""
    fake = OpenAIFake(api_key="test-key")
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(openai_fake: OpenAIFake) -> OpenAIFake:
    """`openai_fake` under the short name the session tests use."""
    return openai_fake


def openai_settings(fake: OpenAIFake, **extra: Any) -> dict[str, Any]:
    """Bridge settings that send `openai:gpt-test` to the fake."""
    return {
        "openai_api_key": "test-key",
        "openai_base_url": fake.base_url,
        "bridge_model": "openai:gpt-test",
        **extra,
    }


@pytest.fixture
def memory_bridge(bridge_factory: BridgeFactory) -> LiveServer:
    return bridge_factory()


def user_message(text: str, message_id: str = "u1") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def chat_body(chat_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"id": chat_id, "messages": [user_message(text)], "trigger": "submit-message", **extra}


def sse_events(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(id, data) of every event in a complete SSE body, comments excluded."""
    parser = SSEParser()
    events = parser.feed(response.content)
    return [(event.id, event.data) for event in events if event.data is not None]
