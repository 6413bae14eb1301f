"""The busy policy of `POST /api/chat` (a message while the chat's answer runs): `reject` (409
with the running generation's id), `steer` (into the running answer), `queue` (the next turn,
visible as queued, answered when the running one ends), `interrupt` (the running answer ends
at its next safe point, then the message is answered); for the stock `useChat` body and
`{id, message}`, on one process and across two sharing Redis."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import orjson
import pytest

from protocol.sse import SSEParser
from tests import gated_tools
from tests.bridge_server import BridgeFactory, openai_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Hang, LiveServer, Text, ToolCall
from tests.node_harness import NodeHarness
from tests.support.redis import RedisServer
from tests.test_steering import TOOLS, Posting, gate_name, input_roles, stored, types_of

LEVEL_7 = {"x-ai-sdk-level": "7"}


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, openai_fake: OpenAIFake) -> LiveServer:
    return bridge_factory(**openai_settings(openai_fake, bridge_tools=TOOLS))


def user(text: str, message_id: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def post(
    server: LiveServer, body: dict[str, Any], busy: str | None = None
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    headers = dict(LEVEL_7)
    if busy is not None:
        headers["x-bridge-busy"] = busy
    response = httpx.post(f"{server.url}/api/chat", json=body, headers=headers, timeout=60)
    chunks: list[dict[str, Any]] = []
    if response.status_code == 200:
        for event in SSEParser().feed(response.content):
            if event.data is not None and event.data != "[DONE]":
                chunks.append(orjson.loads(event.data))
    return response, chunks


class Background(threading.Thread):
    def __init__(self, server: LiveServer, body: dict[str, Any], busy: str | None) -> None:
        super().__init__(daemon=True)
        self.args = (server, body, busy)
        self.result: tuple[httpx.Response, list[dict[str, Any]]] | None = None

    def run(self) -> None:
        self.result = post(*self.args)

    def finish(self) -> tuple[httpx.Response, list[dict[str, Any]]]:
        self.join(60)
        assert self.result is not None, "the request did not end"
        return self.result


def running_hold(server: LiveServer, fake: OpenAIFake, chat_id: str) -> tuple[Posting, str]:
    """A first answer that runs a gated tool (the test opens the gate)."""
    gate = gate_name()
    fake.enqueue([Text("Working."), ToolCall("hold", orjson.dumps({"gate": gate}).decode())])
    posting = Posting(server, chat_id, "first")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    return posting, gate


def test_busy_reject_answers_409_with_the_running_generation(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    posting, gate = running_hold(bridge, openai_fake, "busy-reject")
    active = httpx.get(f"{bridge.url}/api/chat/busy-reject/messages").json()["activeGenerationId"]
    response, _ = post(bridge, {"id": "busy-reject", "message": user("second", "u2")})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "generation_active"
    assert error["generationId"] == active
    openai_fake.enqueue([Text("Done.")])
    gated_tools.open_gate(gate)
    posting.finish()


def test_busy_steer_delivers_into_the_running_answer(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    posting, gate = running_hold(bridge, openai_fake, "busy-steer")
    openai_fake.enqueue([Text("Steered answer.")])
    second = Background(bridge, {"id": "busy-steer", "message": user("Be brief", "u2")}, "steer")
    second.start()
    # The message is queued for the running answer (its log says so), then the tool ends.
    first_chunks_seen = threading.Event()

    def wait_queued() -> None:
        while not any(c["type"] == "data-steering-queued" for c in list(posting.chunks)):
            if not posting.is_alive():
                return
            posting.join(0.05)
        first_chunks_seen.set()

    waiter = threading.Thread(target=wait_queued, daemon=True)
    waiter.start()
    assert first_chunks_seen.wait(10)
    gated_tools.open_gate(gate)
    response, chunks = second.finish()
    posting.finish()
    assert response.status_code == 200
    assert response.headers["x-bridge-busy"] == "steered"
    assert response.headers["x-bridge-steering-id"] == "u2"
    types = types_of(chunks)
    assert types[0] == "start"  # the running answer, from its start
    at = types.index("steering-message")
    assert chunks[at]["id"] == "u2" and types[at + 1] == "start-step"
    assert input_roles(openai_fake.requests[1].json)[-1] == ("user", "Be brief")
    messages = stored(bridge, "busy-steer")
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_busy_queue_stock_body_becomes_the_next_turn(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    posting, gate = running_hold(bridge, openai_fake, "busy-queue")
    openai_fake.enqueue([Text("First done.")])
    openai_fake.enqueue([Text("Second answer.")])
    # The stock useChat body: the whole history as the client has it, the new message last.
    body = {
        "id": "busy-queue",
        "messages": [user("first", "u1"), user("second", "u2")],
        "trigger": "submit-message",
    }
    second = Background(bridge, body, "queue")
    second.start()

    def queued_seen() -> bool:
        return any(
            c["type"] == "data-steering-queued" and c["data"]["mode"] == "turn"
            for c in list(posting.chunks)
        )

    deadline = threading.Event()
    while not queued_seen() and not deadline.wait(0.05):
        assert posting.is_alive()
    gated_tools.open_gate(gate)
    first_chunks = posting.finish()
    response, chunks = second.finish()
    assert response.status_code == 200
    assert response.headers["x-bridge-busy"] == "queued"
    assert chunks[0]["type"] == "data-busy"
    assert chunks[0]["data"]["state"] == "queued"
    assert chunks[0]["data"]["messageId"] == "u2"
    # The running answer was not steered: the queued message is the next turn.
    assert "steering-message" not in types_of(first_chunks)
    assert chunks[1]["type"] == "start"
    texts = "".join(str(c.get("delta", "")) for c in chunks)
    assert texts == "Second answer."
    messages = stored(bridge, "busy-queue")
    assert [(m["role"], m["id"]) for m in messages][:3] == [
        ("user", "u1"),
        ("assistant", messages[1]["id"]),
        ("user", "u2"),
    ]
    assert len(messages) == 4


def test_busy_interrupt_ends_the_running_answer_and_answers_the_message(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text("A long answer that"), Hang()])
    openai_fake.enqueue([Text("Answering the new message.")])
    posting = Posting(bridge, "busy-interrupt", "first")
    posting.start()
    assert posting.texted.wait(10)
    response, chunks = post(
        bridge, {"id": "busy-interrupt", "message": user("Stop, new question", "u2")}, "interrupt"
    )
    first_chunks = posting.finish()
    assert response.status_code == 200
    assert response.headers["x-bridge-busy"] == "interrupting"
    assert openai_fake.disconnects == 1  # the running model call was cut
    # The running answer ended (its queued message's outcome follows, transient).
    assert [c["type"] for c in first_chunks][-2:] == ["finish", "data-steering-outcome"]
    assert first_chunks[-1]["data"] == {"type": "not-delivered", "id": "u2", "reason": "finished"}
    assert "".join(str(c.get("delta", "")) for c in chunks) == "Answering the new message."
    messages = stored(bridge, "busy-interrupt")
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    first_text = "".join(p.get("text", "") for p in messages[1]["parts"])
    assert first_text == "A long answer that"  # what it wrote stays


def test_busy_policy_setting_and_bad_value(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(
        **openai_settings(openai_fake, bridge_tools=TOOLS, bridge_busy_policy="queue")
    )
    response, _ = post(server, {"id": "busy-bad", "message": user("hi", "u1")}, "sometimes")
    assert response.status_code == 400
    posting, gate = running_hold(server, openai_fake, "busy-setting")
    openai_fake.enqueue([Text("One.")])
    openai_fake.enqueue([Text("Two.")])
    second = Background(server, {"id": "busy-setting", "message": user("next", "u2")}, None)
    second.start()
    deadline = threading.Event()
    while not any(c["type"] == "data-steering-queued" for c in list(posting.chunks)):
        assert not deadline.wait(0.05) and posting.is_alive()
    gated_tools.open_gate(gate)
    posting.finish()
    response, chunks = second.finish()
    assert response.headers["x-bridge-busy"] == "queued"  # the setting's policy
    assert "".join(str(c.get("delta", "")) for c in chunks) == "Two."


@pytest.mark.redis
def test_busy_queue_across_two_processes_sharing_redis(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake, redis_server: RedisServer
) -> None:
    settings = openai_settings(
        openai_fake,
        bridge_tools=TOOLS,
        redis_url=redis_server.url,
        bridge_key_prefix=f"t{uuid.uuid4().hex[:8]}",
    )
    first, second = bridge_factory(**settings), bridge_factory(**settings)
    posting, gate = running_hold(first, openai_fake, "busy-redis")
    openai_fake.enqueue([Text("First done.")])
    openai_fake.enqueue([Text("From the phone, answered.")])
    queued = Background(second, {"id": "busy-redis", "message": user("phone", "u2")}, "queue")
    queued.start()
    deadline = threading.Event()
    while not any(c["type"] == "data-steering-queued" for c in list(posting.chunks)):
        assert not deadline.wait(0.05) and posting.is_alive()
    gated_tools.open_gate(gate)
    posting.finish()
    response, chunks = queued.finish()
    assert response.headers["x-bridge-busy"] == "queued"
    assert "".join(str(c.get("delta", "")) for c in chunks) == "From the phone, answered."
    assert [m["role"] for m in stored(second, "busy-redis")] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


@pytest.mark.node
def test_busy_queue_with_the_real_ai_client(
    node: NodeHarness, bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    """A second device (the SDK's own `Chat`, stock body) sends while the answer runs: it is
    told `queued` (onData), then gets the answer to its own message."""
    posting, gate = running_hold(bridge, openai_fake, "busy-node")
    openai_fake.enqueue([Text("First done.")])
    openai_fake.enqueue([Text("Answered after the first.")])
    result: dict[str, Any] = {}

    def second_device() -> None:
        result.update(
            node.chat(
                {
                    "api": f"{bridge.url}/api/chat",
                    "chatId": "busy-node",
                    "loadMessages": False,
                    "headers": {"x-bridge-busy": "queue", **LEVEL_7},
                    "steps": [
                        {"op": "send", "text": "from the phone", "wait": False},
                        {"op": "waitEvent", "type": "data", "timeoutMs": 20000},
                        {"op": "wait", "timeoutMs": 60000},
                        {"op": "settle"},
                    ],
                }
            )
        )

    device = threading.Thread(target=second_device, daemon=True)
    device.start()
    deadline = threading.Event()
    while not any(c["type"] == "data-steering-queued" for c in list(posting.chunks)):
        assert not deadline.wait(0.05) and posting.is_alive()
    gated_tools.open_gate(gate)
    posting.finish()
    device.join(90)
    assert result.get("ok", True), result.get("error")
    busy = [e["part"] for e in result["events"] if e["type"] == "data"]
    assert busy[0]["type"] == "data-busy" and busy[0]["data"]["state"] == "queued"
    messages = result["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    text = "".join(p.get("text", "") for p in messages[-1]["parts"] if p["type"] == "text")
    assert text == "Answered after the first."
    assert [m["role"] for m in stored(bridge, "busy-node")] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_busy_and_durable_headers_are_exposed_to_cross_origin_pages(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    origin = "http://page.example"
    server = bridge_factory(**openai_settings(openai_fake, bridge_cors_origins=[origin]))
    openai_fake.enqueue([Text("Hi.")])
    response = httpx.post(
        f"{server.url}/api/chat",
        json={"id": "busy-cors", "message": user("hi", "u1")},
        headers={"origin": origin, **LEVEL_7},
        timeout=30,
    )
    assert response.status_code == 200
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {
        "x-bridge-busy",
        "x-bridge-steering-id",
        "x-bridge-running-generation-id",
        "stream-next-offset",
        "stream-cursor",
        "stream-up-to-date",
        "stream-closed",
    } <= exposed
