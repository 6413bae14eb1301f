"""CSRF/CORS and limits: media types, credentials with `*`, the WebSocket origin behind a
trusted proxy, rate and concurrency limits, history size, generation duration, JSON depth
and cursor bounds (issue 11, items 4 and 5)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.bridge_server import BridgeFactory, chat_body, sse_events, user_message
from tests.fakes.server import LiveServer
from tests.ws_client import RawSocket, resume_frame, send_frame, ws_url


def post_raw(server: LiveServer, content: bytes, content_type: str | None) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return httpx.post(f"{server.url}/api/chat", content=content, headers=headers, timeout=30)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_post_body_that_is_not_declared_json_is_415(
    memory_bridge: LiveServer, content_type: str | None
) -> None:
    """A cross-site page can send these without a preflight."""
    response = post_raw(memory_bridge, orjson.dumps(chat_body("csrf", "hi")), content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert httpx.get(f"{memory_bridge.url}/api/chat/csrf/messages").json()["messages"] == []


def test_json_with_a_charset_is_accepted(memory_bridge: LiveServer) -> None:
    body = orjson.dumps(chat_body("charset", "hi"))
    assert post_raw(memory_bridge, body, "application/json; charset=utf-8").status_code == 200


def test_stop_refuses_a_form_post(memory_bridge: LiveServer) -> None:
    url = f"{memory_bridge.url}/api/chat/any/stop"
    assert (
        httpx.post(url, content=b"a=1", headers={"content-type": "text/plain"}).status_code == 415
    )
    assert httpx.post(url).status_code == 200


def test_cors_star_never_allows_credentials(bridge_factory: BridgeFactory) -> None:
    star = bridge_factory(bridge_cors_origins=["*"])
    listed = bridge_factory(bridge_cors_origins=["http://app.example"])
    preflight = {
        "origin": "http://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    for server, credentials in ((star, None), (listed, "true")):
        answer = httpx.options(f"{server.url}/api/chat", headers=preflight)
        assert answer.headers.get("access-control-allow-credentials") == credentials
        get = httpx.get(f"{server.url}/api/models", headers={"origin": "http://app.example"})
        assert get.headers.get("access-control-allow-credentials") == credentials


async def test_websocket_origin_forwarded_by_a_trusted_proxy(
    bridge_factory: BridgeFactory,
) -> None:
    """Behind a Next.js rewrite Host is the bridge's, X-Forwarded-Host the page's."""
    page = {"origin": "http://site.example", "x-forwarded-host": "site.example"}
    trusted = bridge_factory()  # loopback is trusted by default
    async with await RawSocket.open(ws_url(trusted.url), additional_headers=page):
        pass
    untrusted = bridge_factory(bridge_forwarded_allow_ips="10.9.9.9")
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(ws_url(untrusted.url), additional_headers=page)
    assert refused.value.response.status_code == 403
    forged = {"origin": "http://evil.example", "x-forwarded-host": "site.example"}
    with pytest.raises(InvalidStatus):
        await websockets.connect(ws_url(trusted.url), additional_headers=forged)


def test_requests_past_the_rate_limit_get_429_with_retry_after(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_rate_limit_per_minute=3, bridge_auth_tokens=["t:u", "o:v"])
    statuses = [
        httpx.get(f"{server.url}/api/chats", headers={"authorization": "Bearer t"}).status_code
        for _ in range(3)
    ]
    limited = httpx.get(f"{server.url}/api/chats", headers={"authorization": "Bearer t"})
    other = httpx.get(f"{server.url}/api/chats", headers={"authorization": "Bearer o"})
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert other.status_code == 200


def test_concurrent_generations_per_user_and_per_process(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(
        bridge_max_generations_per_user=1,
        bridge_max_generations=2,
        bridge_auth_tokens=["a:alice", "b:bob", "c:carol"],
        bridge_demo_token_delay_ms=50,
    )

    def start(token: str, chat_id: str, text: str = "a long answer please") -> httpx.Response:
        return httpx.post(
            f"{server.url}/api/chat",
            json=chat_body(chat_id, text),
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )

    with httpx.Client(timeout=30) as client:
        first = client.build_request(
            "POST",
            f"{server.url}/api/chat",
            json=chat_body("alice-1", "a long answer please"),
            headers={"authorization": "Bearer a"},
        )
        streaming = client.send(first, stream=True)
        try:
            assert streaming.status_code == 200
            again = start("a", "alice-2")
            assert again.status_code == 429
            assert again.json()["error"]["code"] == "too_many_generations"
            assert "retry-after" in again.headers
            bob = client.send(
                client.build_request(
                    "POST",
                    f"{server.url}/api/chat",
                    json=chat_body("bob-1", "a long answer please"),
                    headers={"authorization": "Bearer b"},
                ),
                stream=True,
            )
            try:
                assert bob.status_code == 200
                carol = start("c", "carol-1")
                assert carol.status_code == 429
                assert carol.json()["error"]["code"] == "server_busy"
            finally:
                bob.close()
        finally:
            streaming.close()
    for token, chat_id in (("a", "alice-1"), ("b", "bob-1")):
        httpx.post(
            f"{server.url}/api/chat/{chat_id}/stop",
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
    # Once they ended, the slots are free again.
    assert start("c", "carol-2", "hi").status_code == 200


async def test_websockets_per_user_are_limited(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_max_sockets_per_user=1, bridge_auth_tokens=["t:u"])
    url = ws_url(server.url, "/api/chat?token=t")
    async with await RawSocket.open(url):
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url)
        assert refused.value.response.status_code == 429
        assert int(refused.value.response.headers["retry-after"]) >= 1
    async with await RawSocket.open(url):  # the first one closed: room again
        pass


def test_history_messages_and_bytes_are_limited(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_max_history_messages=3, bridge_demo_token_delay_ms=0)
    url = f"{server.url}/api/chat"
    assert httpx.post(url, json=chat_body("long", "one"), timeout=30).status_code == 200
    second = {"id": "long", "message": user_message("two", "u2")}
    assert httpx.post(url, json=second, timeout=30).status_code == 200
    third = {"id": "long", "message": user_message("three", "u3")}
    response = httpx.post(url, json=third, timeout=30)
    assert response.status_code == 413
    small = bridge_factory(bridge_max_history_bytes=400)
    big = httpx.post(f"{small.url}/api/chat", json=chat_body("big", "x" * 500), timeout=30)
    assert big.status_code == 413


def test_a_generation_past_its_time_limit_ends_with_an_error(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_max_generation_seconds=0.3, bridge_demo_token_delay_ms=100)
    response = httpx.post(
        f"{server.url}/api/chat", json=chat_body("slow", "a long answer please"), timeout=30
    )
    chunks = [orjson.loads(d) for _, d in sse_events(response) if d != "[DONE]"]
    errors = [c for c in chunks if c["type"] == "error"]
    assert errors and "took longer than 0.3 s" in errors[0]["errorText"]
    assert chunks[-1] == {**chunks[-1], "type": "finish", "finishReason": "error"}


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [100, 300, 1000, 5000])
def test_deeply_nested_json_is_400(memory_bridge: LiveServer, depth: int) -> None:
    """254-1024 levels used to pass validation and fail at storage with a 500."""
    body = chat_body("deep", "hi")
    body["messages"][0]["metadata"] = nested(depth)
    content = orjson.dumps(body) if depth < 250 else _dumps_deep(body, depth)
    response = post_raw(memory_bridge, content, "application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def _dumps_deep(body: dict[str, Any], depth: int) -> bytes:
    body["messages"][0]["metadata"] = "HOLE"
    text = orjson.dumps(body)
    return text.replace(b'"HOLE"', b"[" * depth + b'"deep"' + b"]" * depth)


@pytest.mark.parametrize("cursor", [str(2**63), str(2**64), "9" * 19, "-2"])
def test_cursor_past_any_offset_is_400(memory_bridge: LiveServer, cursor: str) -> None:
    httpx.post(f"{memory_bridge.url}/api/chat", json=chat_body("cur", "hi"), timeout=30)
    base = f"{memory_bridge.url}/api/chat/cur"
    answers = [
        httpx.get(f"{base}/stream?cursor={cursor}", timeout=10),
        httpx.get(f"{base}/stream", headers={"last-event-id": cursor}, timeout=10),
        httpx.get(f"{base}/poll?cursor={cursor}", timeout=10),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]


async def test_deeply_nested_websocket_frame_closes_the_socket(memory_bridge: LiveServer) -> None:
    async with await RawSocket.open(ws_url(memory_bridge.url)) as socket:
        frame = send_frame("deep", "deep-ws")
        frame["body"] = {"x": nested(200)}
        await socket.send(orjson.dumps(frame).decode())
        code, reason = await socket.wait_closed()
    assert code == 1008 and "deeper" in reason
    async with await RawSocket.open(ws_url(memory_bridge.url)) as socket:
        await socket.send(resume_frame("r", "deep-ws", lastSequence=2**63))
        code, reason = await socket.wait_closed()
    assert code == 1008 and "lastSequence" in reason


async def test_websocket_requests_count_against_the_rate_limit(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_rate_limit_per_minute=3, bridge_auth_tokens=["t:u"])
    async with await RawSocket.open(ws_url(server.url, "/api/chat?token=t")) as socket:
        # The handshake counted once: two requests pass, the third is refused.
        replies = [await socket.request(resume_frame(f"r{n}", "quiet")) for n in range(3)]
    assert [reply.final for reply in replies] == ["no-active", "no-active", "error"]
    assert "too many requests" in replies[2].frames[-1]["errorText"]
