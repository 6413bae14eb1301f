"""Steering a running answer: `POST /api/chat/{id}/steer` in queue and interrupt mode, what
the provider receives (the user turn where the message was delivered), what the real `ai`
client ends up with, refusals, steering through a second process sharing Redis, and
messages that arrive too late starting the next turn."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests import gated_tools
from tests.bridge_server import BridgeFactory, chat_body, openai_settings, sse_events
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import LiveServer, ParallelToolCalls, Text, ToolCall
from tests.node_harness import NodeHarness
from tests.support.redis import RedisServer

TOOLS = "tests.gated_tools"


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, fake: OpenAIFake) -> LiveServer:
    return bridge_factory(**openai_settings(fake, bridge_tools=TOOLS))


def steering_body(text: str, mode: str = "queue", message_id: str = "s1") -> dict[str, Any]:
    return {
        "message": {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]},
        "mode": mode,
    }


def gate_name() -> str:
    return f"gate-{uuid.uuid4().hex[:8]}"


class Posting(threading.Thread):
    """POST /api/chat in the background; `chunks` once joined; `texted` is set at the first
    text delta."""

    def __init__(self, server: LiveServer, chat_id: str, text: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{server.url}/api/chat?client=7"  # an ai 7 client: steering-message chunks
        self.body = chat_body(chat_id, text)
        self.chunks: list[dict[str, Any]] = []
        self.texted = threading.Event()
        self.status = 0

    def run(self) -> None:
        from protocol.sse import SSEParser

        parser = SSEParser()
        with httpx.stream("POST", self.url, json=self.body, timeout=30) as response:
            self.status = response.status_code
            for piece in response.iter_bytes():
                for event in parser.feed(piece):
                    if event.data is None or event.data == "[DONE]":
                        continue
                    chunk = orjson.loads(event.data)
                    self.chunks.append(chunk)
                    if chunk["type"] == "text-delta":
                        self.texted.set()

    def finish(self) -> list[dict[str, Any]]:
        self.join(30)
        assert not self.is_alive(), "the answer did not end"
        assert self.status == 200
        return self.chunks


def types_of(chunks: list[dict[str, Any]]) -> list[str]:
    return [str(chunk["type"]) for chunk in chunks]


def stored(server: LiveServer, chat_id: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = httpx.get(f"{server.url}/api/chat/{chat_id}/messages").json()[
        "messages"
    ]
    return messages


def part_types(message: dict[str, Any]) -> list[str]:
    return [str(part["type"]) for part in message["parts"]]


def input_roles(request_body: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, text) of each input item of a Responses request."""
    items = []
    for item in request_body["input"]:
        kind = item.get("role") or item.get("type")
        content = item.get("content")
        if isinstance(content, list):
            text = "".join(str(c.get("text", "")) for c in content)
        else:
            text = str(content or item.get("output") or "")
        items.append((str(kind), text))
    return items


def steer(server: LiveServer, chat_id: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/chat/{chat_id}/steer", json=body, timeout=10)


def test_steering_queue_is_delivered_at_the_step_boundary(
    bridge: LiveServer, fake: OpenAIFake
) -> None:
    gate = gate_name()
    fake.enqueue([Text("Checking."), ToolCall("hold", orjson.dumps({"gate": gate}).decode())])
    fake.enqueue([Text("Short answer.")])
    posting = Posting(bridge, "steer-queue", "Tell me everything")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    response = steer(bridge, "steer-queue", steering_body("Be brief"))
    assert response.status_code == 202, response.text
    assert response.json()["mode"] == "queue"
    gated_tools.open_gate(gate)
    chunks = posting.finish()

    types = types_of(chunks)
    assert "data-steering-queued" in types
    # After the tool step's end, before the next model call.
    at = types.index("steering-message")
    # The outcome (transient) and the message, right before the step that receives it.
    assert types[at - 2 : at + 2] == [
        "finish-step",
        "data-steering-outcome",
        "steering-message",
        "start-step",
    ] or types[at - 3 : at + 2] == [
        "finish-step",
        "message-metadata",
        "data-steering-outcome",
        "steering-message",
        "start-step",
    ]
    assert chunks[at - 1]["data"] == {"type": "delivered", "id": "s1", "stepNumber": 1}
    assert types.index("data-steering-queued") < at
    assert chunks[at]["parts"] == [{"type": "text", "text": "Be brief"}]
    assert chunks[-1] == {**chunks[-1], "type": "finish", "finishReason": "stop"}

    assistant = stored(bridge, "steer-queue")[-1]
    kinds = part_types(assistant)
    assert kinds.index("tool-hold") < kinds.index("steering-message") < len(kinds) - 2
    assert "data-steering-queued" not in kinds  # transient: never stored

    # The model got the steering message as a user turn after the tool result.
    second = input_roles(fake.requests[1].json)
    assert second[-1] == ("user", "Be brief")
    assert second[-2][0] == "function_call_output"
    assert [kind for kind, _ in second].count("user") == 2


def test_steering_is_refused_when_nothing_runs(bridge: LiveServer, fake: OpenAIFake) -> None:
    response = steer(bridge, "steer-idle", steering_body("hello?"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_active_generation"

    fake.enqueue([Text("Done.")])
    answer = httpx.post(f"{bridge.url}/api/chat", json=chat_body("steer-idle", "hi"), timeout=30)
    assert [data for _, data in sse_events(answer)][-1] == "[DONE]"
    response = steer(bridge, "steer-idle", steering_body("too late"))
    assert response.status_code == 409
    assert "POST /api/chat" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "message",
    [
        {"id": "a", "role": "assistant", "parts": [{"type": "text", "text": "x"}]},
        {"id": "a", "role": "user", "parts": [{"type": "reasoning", "text": "x"}]},
        {"id": "a", "role": "user", "parts": [{"type": "text", "text": ""}]},
        {"id": "a", "role": "user", "parts": []},
    ],
)
def test_steering_rejects_what_is_not_a_user_message(
    bridge: LiveServer, message: dict[str, Any]
) -> None:
    response = steer(bridge, "steer-bad", {"message": message})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_steering_mode_must_be_known(bridge: LiveServer) -> None:
    response = steer(bridge, "steer-bad", {**steering_body("x"), "mode": "shout"})
    assert response.status_code == 422


def test_steering_left_over_when_the_turn_waits_starts_the_next_turn(
    bridge: LiveServer, fake: OpenAIFake
) -> None:
    gate = gate_name()
    fake.enqueue(
        [
            ParallelToolCalls(
                [ToolCall("hold", orjson.dumps({"gate": gate}).decode()), ToolCall("ask_browser")]
            )
        ]
    )
    fake.enqueue([Text("Answering the steering message.")])
    posting = Posting(bridge, "steer-next", "Do two things")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    assert steer(bridge, "steer-next", steering_body("And a third", message_id="s3")).status_code
    gated_tools.open_gate(gate)
    chunks = posting.finish()
    assert "steering-message" not in types_of(chunks)  # the turn waits for the browser

    # The server started the next turn itself, with the message as the user's.
    live = httpx.get(f"{bridge.url}/api/chat/steer-next/stream", timeout=30)
    assert live.status_code == 200
    texts = "".join(
        orjson.loads(data).get("delta", "") for _, data in sse_events(live) if data != "[DONE]"
    )
    assert texts == "Answering the steering message."
    messages = stored(bridge, "steer-next")
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2]["id"] == "s3"
    assert messages[2]["parts"] == [{"type": "text", "text": "And a third"}]


@pytest.mark.node
def test_steering_message_part_in_the_real_client(
    node: NodeHarness, bridge: LiveServer, fake: OpenAIFake
) -> None:
    gate = gate_name()
    fake.enqueue([Text("Checking."), ToolCall("hold", orjson.dumps({"gate": gate}).decode())])
    fake.enqueue([Text("Short answer.")])
    result: dict[str, Any] = {}

    def run_client() -> None:
        result.update(
            node.chat(
                {
                    "api": f"{bridge.url}/api/chat",
                    "headers": {"x-ai-sdk-level": "7"},
                    "chatId": "steer-node",
                    "steps": [{"op": "send", "text": "Tell me everything"}, {"op": "settle"}],
                }
            )
        )

    client = threading.Thread(target=run_client, daemon=True)
    client.start()
    assert gated_tools.entered(gate).wait(30)
    assert steer(bridge, "steer-node", steering_body("Be brief")).status_code == 202
    gated_tools.open_gate(gate)
    client.join(60)
    assert result["status"] == "ready", result.get("error")
    assistant = result["messages"][-1]
    kinds = part_types(assistant)
    assert kinds == ["step-start", "text", "tool-hold", "steering-message", "step-start", "text"]
    steering = assistant["parts"][3]
    assert steering == {
        "type": "steering-message",
        "id": "s1",
        "parts": [{"type": "text", "text": "Be brief"}],
    }
    assert stored(bridge, "steer-node")[-1]["parts"] == assistant["parts"]


@pytest.mark.redis
def test_steering_from_a_second_process_sharing_redis(
    bridge_factory: BridgeFactory, fake: OpenAIFake, redis_server: RedisServer
) -> None:
    settings = openai_settings(
        fake,
        bridge_tools=TOOLS,
        redis_url=redis_server.url,
        bridge_key_prefix=f"t{uuid.uuid4().hex[:8]}",
    )
    first, second = bridge_factory(**settings), bridge_factory(**settings)
    gate = gate_name()
    fake.enqueue([ToolCall("hold", orjson.dumps({"gate": gate}).decode())])
    fake.enqueue([Text("Steered.")])
    posting = Posting(first, "steer-redis", "Go")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    response = steer(second, "steer-redis", steering_body("From the phone", "interrupt"))
    assert response.status_code == 202, response.text
    gated_tools.open_gate(gate)
    chunks = posting.finish()
    steering = [c for c in chunks if c["type"] == "steering-message"]
    assert steering == [
        {
            "type": "steering-message",
            "id": "s1",
            "parts": [{"type": "text", "text": "From the phone"}],
        }
    ]
    assert input_roles(fake.requests[1].json)[-1] == ("user", "From the phone")
    # Once it ended, the second process refuses a new message too.
    assert steer(second, "steer-redis", steering_body("late", message_id="s2")).status_code == 409
    # A retry of the delivered one is its record, from either process (idempotent).
    for server in (first, second):
        retry = steer(server, "steer-redis", steering_body("From the phone"))
        assert retry.status_code == 200
        assert retry.json()["outcome"] == {"type": "delivered", "id": "s1", "stepNumber": 1}


def test_steering_and_live_tail_belong_to_the_chat_owner(
    bridge_factory: BridgeFactory, fake: OpenAIFake
) -> None:
    server = bridge_factory(**openai_settings(fake, bridge_auth_tokens=["ta:alice", "tb:bob"]))
    alice, bob = {"authorization": "Bearer ta"}, {"authorization": "Bearer tb"}
    answer = httpx.post(
        f"{server.url}/api/chat", json=chat_body("owned", "hi"), headers=alice, timeout=30
    )
    assert answer.status_code == 200
    url = f"{server.url}/api/chat/owned"
    # Someone else's chat answers as an unused chat id does (no existence oracle).
    as_bob = httpx.post(f"{url}/steer", json=steering_body("x"), headers=bob, timeout=10)
    unused = httpx.post(
        f"{server.url}/api/chat/never-used/steer", json=steering_body("x"), headers=bob, timeout=10
    )
    assert as_bob.status_code == unused.status_code == 409
    assert (
        as_bob.json()["error"]["code"] == unused.json()["error"]["code"] == "no_active_generation"
    )
    assert httpx.get(f"{url}/steer/x", headers=bob, timeout=10).status_code == 404
    as_alice = httpx.post(f"{url}/steer", json=steering_body("x"), headers=alice, timeout=10)
    assert as_alice.status_code == 409  # hers, but nothing runs
    assert httpx.post(f"{url}/steer", json=steering_body("x"), timeout=10).status_code == 401
