"""A stalled upstream (the model's bytes stop, its connection stays open) is cut by the
watchdog after BRIDGE_PROVIDER_IDLE_SECONDS: the step is retried (`reset-step`) or the answer
ends with an error; the stream is never left open."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.bridge_server import BridgeFactory, chat_body, openai_settings, sse_events
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Hang, Text

LEVEL_7 = {"x-ai-sdk-level": "7"}


def _answer(url: str, chat_id: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{url}/api/chat", json=chat_body(chat_id, "hi"), headers=LEVEL_7, timeout=60
    )
    assert response.status_code == 200, response.text
    events = sse_events(response)
    assert events[-1][1] == "[DONE]"
    return [orjson.loads(data) for _, data in events[:-1]]


def test_stalled_upstream_is_cut_and_the_step_retried(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(**openai_settings(openai_fake, bridge_provider_idle_seconds=0.5))
    openai_fake.enqueue([Text("Partial"), Hang()])
    openai_fake.enqueue([Text("Whole answer.")])
    chunks = _answer(server.url, "stall-retry")
    types = [c["type"] for c in chunks]
    assert types.count("reset-step") == 1
    assert types.index("reset-step") > types.index("text-delta")
    assert chunks[-1]["finishReason"] == "stop"
    assert openai_fake.disconnects == 1  # the bridge closed the stalled response
    stored = httpx.get(f"{server.url}/api/chat/stall-retry/messages").json()["messages"]
    texts = [p["text"] for p in stored[-1]["parts"] if p["type"] == "text"]
    assert texts == ["Whole answer."]


def test_stalled_upstream_without_retries_ends_the_answer_with_an_error(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(
        **openai_settings(openai_fake, bridge_provider_idle_seconds=0.5, bridge_step_retries=0)
    )
    openai_fake.enqueue([Text("Partial"), Hang()])
    chunks = _answer(server.url, "stall-end")
    types = [c["type"] for c in chunks]
    assert types[-3:] == ["error", "finish-step", "finish"]
    assert chunks[-1]["finishReason"] == "error"
    chat = httpx.get(f"{server.url}/api/chat/stall-end/messages").json()
    assert chat["activeGenerationId"] is None
    texts = [p["text"] for p in chat["messages"][-1]["parts"] if p["type"] == "text"]
    assert texts == ["Partial"]  # the partial answer is kept
