"""POST /api/chat and friends, through a real uvicorn server, with the demo model."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.bridge_server import BridgeFactory, chat_body, sse_events, user_message
from tests.fakes.server import LiveServer


def post_chat(
    server: LiveServer, body: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        f"{server.url}/api/chat",
        content=content,
        headers={"content-type": "application/json", **(headers or {})},
        timeout=30,
    )


def chunks_of(response: httpx.Response) -> list[dict[str, object]]:
    return [orjson.loads(data) for _, data in sse_events(response) if data != "[DONE]"]


def test_chat_post_streams_a_complete_answer(memory_bridge: LiveServer) -> None:
    response = post_chat(memory_bridge, chat_body("chat-1", "hello there"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert "no-transform" in response.headers["cache-control"]
    events = sse_events(response)
    assert events[-1][1] == "[DONE]"
    chunks = chunks_of(response)
    assert chunks[0]["type"] == "start"
    assert isinstance(chunks[0]["messageId"], str) and chunks[0]["messageId"]
    assert chunks[1]["type"] == "start-step"
    assert chunks[-1]["type"] == "finish"
    assert chunks[-1]["finishReason"] == "stop"
    assert [chunk["type"] for chunk in chunks].count("finish-step") == 1
    # Every chunk event carries its offset, consecutive from 0.
    ids = [event_id for event_id, data in events if data != "[DONE]"]
    assert ids == [str(offset) for offset in range(len(chunks))]


def test_chat_post_stores_the_history(memory_bridge: LiveServer) -> None:
    response = post_chat(memory_bridge, chat_body("chat-h", "hello"))
    message_id = chunks_of(response)[0]["messageId"]
    history = httpx.get(f"{memory_bridge.url}/api/chat/chat-h/messages").json()
    assert history["activeGenerationId"] is None
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][1]["id"] == message_id
    text = "".join(p["text"] for p in history["messages"][1]["parts"] if p["type"] == "text")
    streamed = "".join(str(c["delta"]) for c in chunks_of(response) if c["type"] == "text-delta")
    assert text == streamed and text


def test_chat_post_accepts_only_the_newest_message(memory_bridge: LiveServer) -> None:
    post_chat(memory_bridge, chat_body("chat-m", "first question"))
    second = {
        "id": "chat-m",
        "message": user_message("second question", "u2"),
        "trigger": "submit-message",
    }
    assert post_chat(memory_bridge, second).status_code == 200
    history = httpx.get(f"{memory_bridge.url}/api/chat/chat-m/messages").json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[2]["id"] == "u2"


def test_chat_regenerate_with_only_message_truncates_history(memory_bridge: LiveServer) -> None:
    first = post_chat(memory_bridge, chat_body("chat-r", "question"))
    old_id = chunks_of(first)[0]["messageId"]
    body = {
        "id": "chat-r",
        "message": user_message("question"),
        "trigger": "regenerate-message",
        "messageId": old_id,
    }
    again = post_chat(memory_bridge, body)
    new_id = chunks_of(again)[0]["messageId"]
    assert new_id != old_id
    history = httpx.get(f"{memory_bridge.url}/api/chat/chat-r/messages").json()["messages"]
    assert [m["id"] for m in history] == ["u1", new_id]


def test_chat_text_protocol_sends_plain_text(memory_bridge: LiveServer) -> None:
    response = httpx.post(
        f"{memory_bridge.url}/api/chat?protocol=text", json=chat_body("chat-t", "hello"), timeout=30
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    history = httpx.get(f"{memory_bridge.url}/api/chat/chat-t/messages").json()["messages"]
    stored = "".join(p["text"] for p in history[1]["parts"] if p["type"] == "text")
    assert response.text == stored


def test_models_lists_the_allowlist(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(
        bridge_models=["demo:scripted", "demo:other"], bridge_model="demo:scripted"
    )
    body = httpx.get(f"{server.url}/api/models").json()
    assert body["default"] == "demo:scripted"
    assert [m["id"] for m in body["models"]] == ["demo:scripted", "demo:other"]


def test_chat_model_outside_allowlist_is_400(memory_bridge: LiveServer) -> None:
    response = post_chat(memory_bridge, chat_body("chat-x", "hi", model="openai:gpt-5"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert "openai:gpt-5" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"", 400, None),
        (b"[1, 2]", 422, None),
        (orjson.dumps({"messages": []}), 422, "id"),
        (orjson.dumps({"id": "c"}), 422, None),
        (orjson.dumps({"id": "c", "messages": "hello"}), 422, "messages"),
        (
            orjson.dumps({"id": "c", "messages": [{"id": "m", "role": "robot", "parts": []}]}),
            422,
            "messages.0.role",
        ),
        (
            orjson.dumps({"id": "c", "messages": [{"id": "", "role": "user", "parts": []}]}),
            422,
            "messages.0.id",
        ),
        (
            orjson.dumps(
                {
                    "id": "c",
                    "messages": [{"id": "m", "role": "user", "parts": [{"type": "hologram"}]}],
                }
            ),
            422,
            "messages.0",
        ),
        (
            orjson.dumps(
                {
                    "id": "c",
                    "messages": [
                        {"id": "m", "role": "user", "parts": [{"type": "text", "text": 5}]}
                    ],
                }
            ),
            422,
            "messages.0.parts.0",
        ),
        (orjson.dumps({"id": "../etc", "messages": [user_message("x")]}), 422, "id"),
        (
            orjson.dumps({"id": "c", "messages": [user_message("x")], "trigger": "nope"}),
            422,
            "trigger",
        ),
        (
            orjson.dumps(
                {
                    "id": "c",
                    "messages": [
                        {"id": "s", "role": "system", "parts": [{"type": "text", "text": "x"}]}
                    ],
                }
            ),
            400,
            None,
        ),
    ],
)
def test_chat_bad_input_gets_a_clear_error(
    memory_bridge: LiveServer, body: bytes, status: int, field: str | None
) -> None:
    response = post_chat(memory_bridge, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if field is not None:
        assert any(detail["field"].startswith(field) for detail in error["details"]), error


def test_chat_oversized_body_is_413(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_max_body_bytes=2048)
    big = chat_body("chat-big", "x" * 5000)
    response = post_chat(server, big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_chat_oversized_chunked_body_is_413(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_max_body_bytes=2048)

    def body() -> object:
        yield orjson.dumps(chat_body("chat-big", "x" * 5000))

    response = httpx.post(
        f"{server.url}/api/chat",
        content=body(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413


def test_chat_hostile_nesting_is_rejected_cleanly(memory_bridge: LiveServer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    response = post_chat(memory_bridge, deep)
    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_resume_without_generation_is_204(memory_bridge: LiveServer) -> None:
    response = httpx.get(f"{memory_bridge.url}/api/chat/unknown-chat/stream")
    assert response.status_code == 204
    assert response.content == b""


def test_resume_bad_cursor_is_400(memory_bridge: LiveServer) -> None:
    response = httpx.get(f"{memory_bridge.url}/api/chat/c1/stream?cursor=abc")
    assert response.status_code == 400
    assert "cursor" in response.json()["error"]["message"]


def test_resume_unknown_generation_is_410(memory_bridge: LiveServer) -> None:
    response = httpx.get(f"{memory_bridge.url}/api/chat/c1/stream?generation=gen_nope")
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "generation_gone"


def test_stop_without_generation_is_a_noop(memory_bridge: LiveServer) -> None:
    response = httpx.post(f"{memory_bridge.url}/api/chat/idle/stop")
    assert response.status_code == 200
    assert response.json() == {"stopped": False, "generationId": None}


def test_routes_reject_bad_chat_ids(memory_bridge: LiveServer) -> None:
    for path in ("/api/chat/a%20b/stream", "/api/chat/a%7Bb/messages", "/api/chat/x%22/stop"):
        method = httpx.post if path.endswith("stop") else httpx.get
        response = method(f"{memory_bridge.url}{path}")
        assert response.status_code == 400, path


def test_chats_lists_the_callers_chats_newest_first(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_auth_tokens=["t-alice:alice", "t-bob:bob"])
    alice = {"authorization": "Bearer t-alice"}
    bob = {"authorization": "Bearer t-bob"}
    for chat_id, text in (("first", "Plan a   trip to Rome"), ("second", "x" * 300)):
        response = post_chat(server, chat_body(chat_id, text), headers=alice)
        assert response.status_code == 200
    chats = httpx.get(f"{server.url}/api/chats", headers=alice).json()["chats"]
    assert [c["id"] for c in chats] == ["second", "first"]
    assert chats[1]["title"] == "Plan a trip to Rome"
    assert len(chats[0]["title"]) == 80
    assert httpx.get(f"{server.url}/api/chats", headers=bob).json() == {"chats": []}
    # Someone else's chat answers bob as an unused id does: no history, no resume, no stop.
    for method, path in (("GET", "/messages"), ("GET", "/stream"), ("POST", "/stop")):
        response = httpx.request(method, f"{server.url}/api/chat/first{path}", headers=bob)
        unused = httpx.request(method, f"{server.url}/api/chat/unused{path}", headers=bob)
        assert response.status_code == unused.status_code, path
        assert response.text.replace("first", "unused") == unused.text, path
    taken = post_chat(server, chat_body("first", "mine now"), headers=bob)
    assert taken.status_code == 404


def test_auth_rejects_missing_and_wrong_tokens(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_auth_tokens=["t-alice:alice"])
    assert post_chat(server, chat_body("c", "hi")).status_code == 401
    wrong = post_chat(server, chat_body("c", "hi"), headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"
    assert httpx.get(f"{server.url}/api/models").status_code == 401


def test_chat_edit_with_only_message_truncates_after_it(memory_bridge: LiveServer) -> None:
    post_chat(memory_bridge, chat_body("chat-e", "first"))
    second = {"id": "chat-e", "message": user_message("second", "u2")}
    post_chat(memory_bridge, second)
    edited = {"id": "chat-e", "message": user_message("first, edited", "u1"), "messageId": "u1"}
    assert post_chat(memory_bridge, edited).status_code == 200
    history = httpx.get(f"{memory_bridge.url}/api/chat/chat-e/messages").json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["parts"][0]["text"] == "first, edited"


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/api/chat/c1/stream?cursor=" + "9" * 100, {}, 422),
        ("GET", "/api/chat/c1/stream?cursor=-5", {}, 400),
        ("GET", "/api/chat/c1/stream", {"last-event-id": "x1"}, 400),
        ("GET", "/api/chat/c1/stream?generation=" + "g" * 500, {}, 422),
        ("GET", "/api/chat/c1/stream?protocol=binary", {}, 422),
        ("POST", "/api/chat/c1/stop?generation=" + "g" * 500, {}, 422),
        ("GET", "/api/chats?limit=0", {}, 422),
        ("GET", "/api/chats?limit=abc", {}, 422),
        ("POST", "/api/chat?protocol=xml", {}, 415),  # the gate answers first
        ("GET", "/api/chat/" + "a" * 300 + "/messages", {}, 400),
    ],
)
def test_endpoints_reject_hostile_parameters(
    memory_bridge: LiveServer, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = httpx.request(method, f"{memory_bridge.url}{path}", headers=headers, timeout=10)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
