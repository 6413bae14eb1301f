"""The client a user has works on default settings: the real `ai` 6 `Chat` (what Node 20's
npm installs) sends no level, and the bridge never sends it a chunk it rejects, through a
retried step (a provider cut mid-answer) and a takeover (a process killed mid-answer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from bridge.access.client_level import LEVEL_HEADER
from bridge.settings import Settings
from protocol.sse import SSEParser
from tests.bridge_server import BridgeFactory, chat_body
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import StreamError, Text
from tests.node_harness import NodeHarness
from tests.support.bridge_process import BridgeProcess

TOKEN = "default-level-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def text_of(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message["parts"] if p["type"] == "text")


def test_default_client_level_is_auto() -> None:
    assert Settings.model_fields["bridge_client_level"].default == "auto"


def test_default_settings_ai6_chat_survives_a_retried_step(
    node: NodeHarness, bridge_factory: BridgeFactory
) -> None:
    fake = OpenAIFake(api_key="k")
    fake.start()
    try:
        fake.enqueue([Text("doomed attempt "), StreamError("overloaded", "server_error")])
        fake.enqueue([Text("recovered")])
        bridge = bridge_factory(
            openai_api_key="k", openai_base_url=fake.base_url, bridge_model="openai:gpt-test"
        )
        result = node.for_client(6).chat(
            {
                "api": f"{bridge.url}/api/chat",
                "chatId": "retried-on-defaults",
                "steps": [{"op": "send", "text": "go"}],
            }
        )
    finally:
        fake.stop()
    assert result["status"] == "ready", result["error"]
    types = [chunk["type"] for chunk in result["responses"][0]["chunks"]]
    assert "reset-step" not in types
    # Streamed as it came: the failed attempt was closed, the retry follows it.
    assert text_of(result["messages"][1]).endswith("recovered")
    stored = httpx.get(f"{bridge.url}/api/chat/retried-on-defaults/messages").json()
    assert text_of(stored["messages"][1]) == "recovered"


def test_default_settings_declared_ai7_still_gets_reset_step(
    bridge_factory: BridgeFactory,
) -> None:
    fake = OpenAIFake(api_key="k")
    fake.start()
    try:
        fake.enqueue([Text("doomed attempt "), StreamError("overloaded", "server_error")])
        fake.enqueue([Text("recovered")])
        bridge = bridge_factory(
            openai_api_key="k", openai_base_url=fake.base_url, bridge_model="openai:gpt-test"
        )
        body = chat_body("declared-7", "go")
        response = httpx.post(
            f"{bridge.url}/api/chat", json=body, headers={LEVEL_HEADER: "7"}, timeout=60
        )
    finally:
        fake.stop()
    assert response.status_code == 200
    assert '"type":"reset-step"' in response.text


def test_default_settings_ai6_chat_resumes_a_taken_over_answer(
    node: NodeHarness, bridge_processes: Any, tmp_path: Path
) -> None:
    env = {
        "BRIDGE_STORE": "sqlite",
        "BRIDGE_DATA_DIR": str(tmp_path / "data"),
        "BRIDGE_AUTH_TOKENS": f"{TOKEN}:alice",
        "BRIDGE_DEMO_TOKEN_DELAY_MS": "10",
        "BRIDGE_MODEL": "demo:echo",
        "BRIDGE_MODELS": "",
        "BRIDGE_CLIENT_LEVEL": "auto",
        "OPENAI_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
        "REDIS_URL": "",
    }
    first: BridgeProcess = bridge_processes(**env)
    body = chat_body("taken-over", "write something long")
    deltas = 0
    with (
        httpx.Client(base_url=first.url, timeout=60, headers=AUTH) as client,
        client.stream("POST", "/api/chat", json=body) as response,
    ):
        assert response.status_code == 200
        parser = SSEParser()
        for data in response.iter_bytes():
            deltas += sum('"text-delta"' in (e.data or "") for e in parser.feed(data))
            if deltas >= 5:
                break
        first.process.kill()  # SIGKILL mid-answer: the next process takes the answer over
        first.process.wait(30)

    second: BridgeProcess = bridge_processes(**env)
    stored = httpx.get(f"{second.url}/api/chat/taken-over/messages", headers=AUTH).json()
    result = node.for_client(6).chat(
        {
            "api": f"{second.url}/api/chat",
            "chatId": "taken-over",
            "headers": AUTH,
            "steps": [
                {"op": "newChat", "messages": stored["messages"][:1]},
                {"op": "resume"},
            ],
        }
    )
    assert result["status"] == "ready", result["error"]
    chunks = [c for response in result["responses"] for c in response["chunks"]]
    assert "reset-step" not in [c["type"] for c in chunks]
    final = httpx.get(f"{second.url}/api/chat/taken-over/messages", headers=AUTH).json()
    assert final["activeGenerationId"] is None
    assert text_of(result["messages"][1]) == text_of(final["messages"][1])
    # The log the ai 6 client read did carry the takeover's `reset-step`.
    replay = httpx.get(
        f"{second.url}/api/chat/taken-over/stream?cursor=-1",
        headers={**AUTH, LEVEL_HEADER: "7"},
        timeout=60,
    )
    assert replay.status_code == 200
    events = [e.data for e in SSEParser().feed(replay.content) if e.data not in (None, "[DONE]")]
    assert "reset-step" in [orjson.loads(data)["type"] for data in events]
