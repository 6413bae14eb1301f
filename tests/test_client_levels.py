"""Clients on ai 5, 6 and 7: the real client of each version (tests/node) accepts what the
bridge sends it, and its `Chat` completes text, reasoning, tool, retried-step and resume
flows. The level comes from BRIDGE_CLIENT_LEVEL, `?client=` or `x-ai-sdk-level`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bridge.access.client_level import LEVEL_HEADER
from bridge.app import create_app
from protocol.chunks import UIMessageChunk, encode_chunk
from protocol.compat import ClientLevel, ClientLevelError, adapt_chunk, known_chunk_types
from tests.bridge_server import BridgeFactory, chat_body, make_settings, openai_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import LiveServer, Reasoning, StreamError, Text, ToolCall
from tests.node_harness import CLIENTS, NodeHarness
from tests.test_protocol_chunks import FULL, MINIMAL
from tests.test_resume import assert_one_complete_answer

pytestmark = pytest.mark.node

EXAMPLES: list[UIMessageChunk] = [chunk for chunk, _ in MINIMAL] + [chunk for chunk, _ in FULL]
ANSWER = " ".join(f"word{index}" for index in range(40))
LOCATION_TOOL = {
    "name": "get_location",
    "description": "The user's city, from the browser",
    "inputSchema": {"type": "object", "properties": {}},
}


# --- the schema of each version ----------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_known_chunk_types_are_exactly_the_types_each_client_accepts(
    node: NodeHarness, client: int
) -> None:
    minimal = [chunk for chunk, _ in MINIMAL]
    out = node.for_client(client).schema_check([encode_chunk(c).decode() for c in minimal])
    accepted = {c.type for c, r in zip(minimal, out["results"], strict=True) if r["ok"]}
    fixed = {c.type for c in minimal if not c.type.startswith("data-")}
    assert accepted & fixed == known_chunk_types(ClientLevel(client))
    assert any(t.startswith("data-") for t in accepted)


@pytest.mark.parametrize("client", CLIENTS)
def test_every_adapted_chunk_passes_the_clients_schema(node: NodeHarness, client: int) -> None:
    level = ClientLevel(client)
    adapted = [adapt_chunk(level, encode_chunk(chunk)) for chunk in EXAMPLES]
    sent = [data.decode() for data in adapted if data is not None]
    out = node.for_client(client).schema_check(sent)
    assert out["ok"], [(sent[i], out["results"][i]["reason"]) for i in out["failed"]]
    if client != 7:  # what a client does not know is not sent as it is
        raw = node.for_client(client).schema_check([encode_chunk(c).decode() for c in EXAMPLES])
        assert raw["failed"], "the older client rejects some v7 chunks"


# --- the level of a request --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "params", "headers"),
    [
        ("/api/chat", "POST", {"client": "4"}, {}),
        ("/api/chat", "POST", {}, {LEVEL_HEADER: "banana"}),
        ("/api/chat/c1/stream", "GET", {"client": "8"}, {}),
        ("/api/chat/c1/poll", "GET", {"client": ""}, {}),
        ("/api/chat/poll", "POST", {"client": "v7"}, {}),
    ],
)
def test_an_invalid_client_level_is_a_400(
    memory_bridge: LiveServer,
    path: str,
    method: str,
    params: dict[str, str],
    headers: dict[str, str],
) -> None:
    response = httpx.request(
        method,
        f"{memory_bridge.url}{path}",
        params=params,
        headers=headers,
        json=chat_body("c1", "hi") if method == "POST" else None,
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "must be 5, 6 or 7" in response.json()["error"]["message"]


def test_the_query_parameter_wins_over_the_header(memory_bridge: LiveServer) -> None:
    response = httpx.post(
        f"{memory_bridge.url}/api/chat",
        params={"client": "7"},
        headers={LEVEL_HEADER: "nonsense"},
        json=chat_body("query-wins", "hi"),
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_ai5_turn_is_refused_when_tools_need_approval(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_tools="bridge.tools.examples", bridge_demo_token_delay_ms=0)
    url = f"{server.url}/api/chat"
    body = chat_body("no-approvals", "delete /tmp/x")
    refused = httpx.post(url, json=body, headers={LEVEL_HEADER: "5"}, timeout=30)
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert "cannot answer tool approvals" in message and "delete_file" in message
    assert httpx.post(url, json=body, headers={LEVEL_HEADER: "6"}, timeout=30).status_code == 200


def test_bridge_configured_for_ai5_with_approval_tools_refuses_to_start() -> None:
    settings = make_settings(bridge_client_level=5, bridge_tools="bridge.tools.examples")
    with pytest.raises(ClientLevelError, match="delete_file"), TestClient(create_app(settings)):
        pass


# --- the Chat class of each version --------------------------------------------------------------


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, fake: OpenAIFake) -> LiveServer:
    """A bridge answering with `fake` (the fake OpenAI server of tests/bridge_server.py)."""
    return bridge_factory(**openai_settings(fake, bridge_allow_client_tools=True))


def scenario(bridge: LiveServer, chat_id: str, client: int, **extra: Any) -> dict[str, Any]:
    return {
        "api": f"{bridge.url}/api/chat",
        "chatId": chat_id,
        "headers": {LEVEL_HEADER: str(client)},
        "body": {"tools": [LOCATION_TOOL]},
        **extra,
    }


def stored(bridge: LiveServer, chat_id: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = httpx.get(f"{bridge.url}/api/chat/{chat_id}/messages").json()[
        "messages"
    ]
    return messages


def text_of(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message["parts"] if p["type"] == "text")


@pytest.mark.parametrize("client", CLIENTS)
def test_chat_class_runs_reasoning_text_and_a_browser_tool(
    node: NodeHarness, bridge: LiveServer, fake: OpenAIFake, client: int
) -> None:
    fake.enqueue(
        [Reasoning("thinking it over"), Text(ANSWER), ToolCall("get_location", "{}", "call_1")]
    )
    fake.enqueue([Text("You are in Lisbon.")])
    chat_id = f"full-turn-{client}"
    result = node.for_client(client).chat(
        scenario(
            bridge,
            chat_id,
            client,
            clientTools={"get_location": {"output": {"city": "Lisbon"}}},
            auto="toolCalls",
            steps=[{"op": "send", "text": "where am I?"}, {"op": "settle"}],
        )
    )
    assert result["status"] == "ready", result["error"]
    messages = result["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    parts = messages[1]["parts"]
    kinds = [p["type"] for p in parts]
    assert "reasoning" in kinds and "tool-get_location" in kinds
    tool = next(p for p in parts if p["type"] == "tool-get_location")
    assert tool["state"] == "output-available" and tool["output"] == {"city": "Lisbon"}
    assert text_of(messages[1]) == ANSWER + "You are in Lisbon."
    assert stored(bridge, chat_id)[-1]["parts"] == parts


@pytest.mark.parametrize("client", CLIENTS)
def test_chat_class_never_shows_a_retried_steps_failed_attempt(
    node: NodeHarness, bridge: LiveServer, fake: OpenAIFake, client: int
) -> None:
    fake.enqueue([Text("doomed attempt "), StreamError("overloaded", "server_error")])
    fake.enqueue([Text("recovered")])
    chat_id = f"retried-{client}"
    result = node.for_client(client).chat(
        scenario(bridge, chat_id, client, steps=[{"op": "send", "text": "go"}])
    )
    assert result["status"] == "ready", result["error"]
    assistant = result["messages"][1]
    assert text_of(assistant) == "recovered"
    assert stored(bridge, chat_id)[-1]["parts"] == assistant["parts"]
    types = [chunk["type"] for chunk in result["responses"][0]["chunks"]]
    assert ("reset-step" in types) == (client == 7)
    if client != 7:
        assert "doomed" not in str(result["responses"][0]["chunks"])


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("k", [3, 30])
def test_chat_class_resumes_after_a_page_reload(
    node: NodeHarness, bridge: LiveServer, fake: OpenAIFake, client: int, k: int
) -> None:
    fake.enqueue([Reasoning("thinking it over"), Text(ANSWER)], token_delay=0.01)
    chat_id = f"reload-{client}-{k}"
    result = node.for_client(client).chat(
        scenario(
            bridge,
            chat_id,
            client,
            steps=[
                {"op": "dropAfterChunks", "n": k, "message": "network error"},
                {"op": "send", "text": "go", "allowThrow": True},
                {"op": "newChat"},
                {"op": "resume"},
            ],
        )
    )
    assert_one_complete_answer(result, bridge, chat_id, ANSWER)


@pytest.mark.parametrize("client", CLIENTS)
def test_chat_class_recovers_a_dropped_connection_in_the_same_chat(
    node: NodeHarness, bridge: LiveServer, fake: OpenAIFake, client: int
) -> None:
    fake.enqueue([Text(ANSWER)], token_delay=0.01)
    chat_id = f"drop-{client}"
    result = node.for_client(client).chat(
        scenario(
            bridge,
            chat_id,
            client,
            steps=[
                {"op": "dropAfterChunks", "n": 20},
                {"op": "send", "text": "go", "allowThrow": True},
                {"op": "resume"},
            ],
        )
    )
    assert_one_complete_answer(result, bridge, chat_id, ANSWER)


@pytest.mark.parametrize("client", [6, 7])
def test_chat_class_answers_an_approval(
    node: NodeHarness, bridge_factory: BridgeFactory, client: int
) -> None:
    server = bridge_factory(bridge_tools="bridge.tools.examples", bridge_demo_token_delay_ms=0)
    chat_id = f"approval-{client}"
    result = node.for_client(client).chat(
        {
            "api": f"{server.url}/api/chat",
            "chatId": chat_id,
            "headers": {LEVEL_HEADER: str(client)},
            "auto": "approvals",
            "steps": [
                {"op": "send", "text": "delete /tmp/report.txt"},
                {
                    "op": "addToolApprovalResponse",
                    "match": {"toolName": "delete_file"},
                    "approved": True,
                },
                {"op": "settle"},
            ],
        }
    )
    assert result["status"] == "ready", result["error"]
    assistant = result["messages"][1]
    tool = next(p for p in assistant["parts"] if p["type"] == "tool-delete_file")
    assert tool["state"] == "output-available"
    assert stored(server, chat_id)[-1]["parts"] == assistant["parts"]
