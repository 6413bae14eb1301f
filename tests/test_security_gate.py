"""The gate against a real server: CSRF on steer and stop, identity on open sockets, the
rate on every frame, ownership failing closed, no existence oracle, the readers cap,
bounded live-tail cursors, hosts and origins, errors that leak nothing, slow and vanishing
clients. Each test reproduces a finding against a server on a real socket."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import orjson
import pytest
import websockets

from bridge.access.identity import CallableAuth
from bridge.app import create_app
from bridge.errors import Unauthorized
from tests.bridge_server import BridgeFactory, chat_body, make_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import HttpError, LiveServer
from tests.ws_client import RawSocket, resume_frame, ws_url

TOKENS = ["ta:alice", "tb:bob"]
ALICE = {"authorization": "Bearer ta"}
BOB = {"authorization": "Bearer tb"}
SECRET = "a-secret-of-at-least-thirty-two-bytes!"


def _steer_body(text: str = "also this") -> dict[str, Any]:
    return {"message": {"id": "s1", "role": "user", "parts": [{"type": "text", "text": text}]}}


async def _start_long_answer(client: httpx.AsyncClient, url: str, chat_id: str, **kw: Any) -> None:
    """Start an answer that runs for a while and return once its first chunk arrived."""
    async with client.stream(
        "POST", f"{url}/api/chat", json=chat_body(chat_id, "long answer please"), **kw
    ) as response:
        assert response.status_code == 200
        async for _ in response.aiter_bytes():
            return


# --- CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"message": {}}'),
        ("application/x-www-form-urlencoded", b"a=1"),
        (None, b"{}"),
    ],
)
def test_steer_refuses_bodies_that_are_not_json(
    bridge_factory: BridgeFactory, content_type: str | None, body: bytes
) -> None:
    server = bridge_factory()
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(f"{server.url}/api/chat/csrf-steer/steer", content=body, headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_stop_refuses_a_cross_site_bodyless_post(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=20)
    url = f"{server.url}/api/chat/csrf-stop/stop"
    async with httpx.AsyncClient(timeout=30) as client:
        await _start_long_answer(client, server.url, "csrf-stop")
        forged = await client.post(url, headers={"origin": "https://evil.example"})
        fetched = await client.post(url, headers={"sec-fetch-site": "cross-site"})
        still = (await client.get(f"{server.url}/api/chat/csrf-stop/messages")).json()
        own = await client.post(url, headers={"x-requested-with": "fetch"})
    assert forged.status_code == 400
    assert fetched.status_code == 400
    assert still["activeGenerationId"] is not None  # the forged stops stopped nothing
    assert own.status_code == 200 and own.json()["stopped"] is True


# --- identity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["anon:someone", "anonymous"])
def test_token_user_ids_that_look_anonymous_are_refused(
    bridge_factory: BridgeFactory, user: str
) -> None:
    server = bridge_factory(bridge_auth_tokens=[f"tk:{user}"])
    response = httpx.get(f"{server.url}/api/chats", headers={"authorization": "Bearer tk"})
    assert response.status_code == 401


async def test_expired_jwt_closes_an_open_socket(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_jwt_secret=SECRET)
    # The verifier allows 30 s of clock skew: a token that expired 27 s ago has ~3 s left.
    expires = int(time.time()) - 27
    token = jwt.encode({"sub": "erin", "exp": expires}, SECRET, algorithm="HS256")
    async with await RawSocket.open(ws_url(server.url, f"/api/chat?token={token}")) as sock:
        first = await sock.request(resume_frame("r1", "jwt-chat"))
        # Past `exp` and the skew the token is expired, and so is every frame sent with it:
        # the wait is for the wall clock itself, nothing else is waited on.
        await asyncio.sleep(max(0.0, expires + 31 - time.time()))
        await sock.send(resume_frame("r2", "jwt-chat"))
        code, reason = await sock.wait_closed()
    assert first.final == "no-active"
    assert code == 1008
    assert "expired" in reason


# --- the rate on every frame --------------------------------------------------------------------


async def test_abort_frames_count_against_the_rate(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_rate_limit_per_minute=3, bridge_auth_tokens=["t:u"])
    async with await RawSocket.open(ws_url(server.url, "/api/chat?token=t")) as sock:
        # The handshake counted once, two aborts twice: the next frame is over the rate.
        await sock.send({"type": "abort", "requestId": "x1"})
        await sock.send({"type": "abort", "requestId": "x2"})
        refused = await sock.request(resume_frame("r1", "rate-chat"))
    assert refused.final == "error"
    assert "too many requests" in refused.frames[-1]["errorText"]


async def test_large_frames_past_the_rate_close_the_socket_unparsed(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_rate_limit_per_minute=2, bridge_auth_tokens=["t:u"])
    big = orjson.dumps({"type": "abort", "requestId": "big", "pad": "x" * 200_000}).decode()
    async with await RawSocket.open(ws_url(server.url, "/api/chat?token=t")) as sock:
        await sock.send({"type": "abort", "requestId": "a1"})
        await sock.send(big)
        code, reason = await sock.wait_closed()
    assert code == 1008
    assert "too many requests" in reason


# --- ownership and the existence oracle -------------------------------------------------------


async def test_someone_elses_chat_answers_as_an_unused_id(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_auth_tokens=TOKENS, bridge_demo_token_delay_ms=20)
    async with httpx.AsyncClient(timeout=30) as client:
        await _start_long_answer(client, server.url, "alices", headers=ALICE)
        answers: dict[str, list[tuple[int, str]]] = {}
        for chat_id in ("alices", "nobodys"):
            got = answers[chat_id] = []
            for method, path, kw in (
                ("GET", "messages", {}),
                ("GET", "stream", {}),
                ("GET", "poll", {}),
                ("POST", "stop", {"headers": {**BOB, "x-requested-with": "t"}}),
                ("POST", "steer", {"json": _steer_body()}),
            ):
                kw = {"headers": BOB, **kw}
                response = await client.request(
                    method, f"{server.url}/api/chat/{chat_id}/{path}", **kw
                )
                got.append((response.status_code, response.text.replace(chat_id, "ID")))
            # The live tail: the same first event (ready), then only keep-alives.
            async with client.stream(
                "GET", f"{server.url}/api/chat/{chat_id}/live", headers=BOB
            ) as tail:
                events = tail.aiter_text()
                got.append((tail.status_code, await anext(events)))
                await events.aclose()
        status = (await client.get(f"{server.url}/api/chat/alices/messages", headers=ALICE)).json()
    assert answers["alices"] == answers["nobodys"]
    assert status["activeGenerationId"] is not None  # bob's stop stopped nothing of alice's


async def test_websocket_frames_on_someone_elses_chat_answer_as_an_unused_id(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_auth_tokens=TOKENS, bridge_demo_token_delay_ms=20)
    async with httpx.AsyncClient(timeout=30) as client:
        await _start_long_answer(client, server.url, "alices-ws", headers=ALICE)
    async with await RawSocket.open(ws_url(server.url, "/api/chat?token=tb")) as sock:
        replies = {}
        for chat_id in ("alices-ws", "unused-ws"):
            resume = await sock.request(resume_frame(f"r-{chat_id}", chat_id))
            steer = await sock.request(
                {"type": "steer", "requestId": f"s-{chat_id}", "id": chat_id, **_steer_body()}
            )
            replies[chat_id] = (
                [f["type"] for f in resume.frames],
                steer.frames[-1]["errorText"].replace(chat_id, "ID"),
            )
    assert replies["alices-ws"] == replies["unused-ws"]


async def test_ownerless_chat_with_history_is_nobodys_on_redis(
    bridge_factory: BridgeFactory, redis_server: Any
) -> None:
    prefix = f"own{uuid.uuid4().hex[:8]}"
    server = bridge_factory(
        redis_url=redis_server.url, bridge_key_prefix=prefix, bridge_auth_tokens=TOKENS
    )
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(
            f"{server.url}/api/chat", json=chat_body("evicted", "my secret"), headers=ALICE
        )
        assert first.status_code == 200
        # The chat's record goes (an eviction under volatile-lru), its history stays.
        redis_server.client().delete(f"{prefix}:{{evicted}}:chat")
        read = await client.get(f"{server.url}/api/chat/evicted/messages", headers=BOB)
        taken = await client.post(
            f"{server.url}/api/chat", json=chat_body("evicted", "mine now"), headers=BOB
        )
    assert read.status_code == 200 and read.json()["messages"] == []
    assert taken.status_code == 404


# --- limits ------------------------------------------------------------------------------------


async def test_readers_per_user_are_capped_on_every_transport(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_auth_tokens=TOKENS, bridge_max_readers_per_user=2)
    url = f"{server.url}/api/chat/many-tails/live"
    async with httpx.AsyncClient(timeout=30) as client:
        async with (
            client.stream("GET", url, headers=ALICE) as one,
            client.stream("GET", url, headers=ALICE) as two,
        ):
            assert one.status_code == two.status_code == 200
            # Held while the tails are: a dropped iterator would close its response.
            first, second = one.aiter_text(), two.aiter_text()
            await anext(first)
            await anext(second)
            third = await client.get(f"{server.url}/api/chat/many-tails/poll", headers=ALICE)
            others = await client.get(f"{server.url}/api/chat/many-tails/poll", headers=BOB)
            async with await RawSocket.open(ws_url(server.url, "/api/chat?token=ta")) as sock:
                frame = await sock.request({"type": "live", "requestId": "l1", "id": "many-tails"})
        # Both tails are closed: the slots are given back once the server sees them go.
        for _ in range(400):
            again = await client.get(f"{server.url}/api/chat/many-tails/poll", headers=ALICE)
            if again.status_code != 429:
                break
            await asyncio.sleep(0.025)
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "too_many_readers"
    assert others.status_code == 200
    assert frame.final == "error" and "readers" in frame.frames[-1]["errorText"]
    assert again.status_code == 200


def test_live_tail_cursor_is_bounded(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory()
    huge = "gen_x:" + "9" * 30
    response = httpx.get(f"{server.url}/api/chat/tail-cursor/live", params={"cursor": huge})
    assert response.status_code == 400


async def test_live_frame_cursor_is_bounded(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory()
    async with await RawSocket.open(ws_url(server.url)) as sock:
        reply = await sock.request(
            {"type": "live", "requestId": "l1", "id": "c", "cursor": "gen_x:" + "9" * 30}
        )
    assert reply.final == "error"


def test_stop_of_an_unknown_generation_writes_no_stop_record(
    bridge_factory: BridgeFactory, redis_server: Any
) -> None:
    prefix = f"stop{uuid.uuid4().hex[:8]}"
    server = bridge_factory(redis_url=redis_server.url, bridge_key_prefix=prefix)
    response = httpx.post(
        f"{server.url}/api/chat/never-used/stop",
        params={"generation": "gen_made_up"},
        headers={"x-requested-with": "t"},
    )
    assert response.status_code == 200
    assert response.json() == {"stopped": False, "generationId": None}
    assert redis_server.client().keys(f"{prefix}:*stop*") == []


# --- hosts and origins ----------------------------------------------------------------------------


def test_anonymous_bridge_answers_only_to_loopback_hosts(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory()
    rebound = httpx.get(f"{server.url}/api/models", headers={"host": "evil.example"})
    local = httpx.get(f"{server.url}/api/models", headers={"host": f"localhost:{server.port}"})
    assert rebound.status_code == 400
    assert rebound.json()["error"]["code"] == "host_not_allowed"
    assert local.status_code == 200


def test_anonymous_bridge_refuses_a_rebound_websocket_handshake(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"GET /api/chat HTTP/1.1\r\nhost: evil.example\r\nupgrade: websocket\r\n"
            b"connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"sec-websocket-version: 13\r\norigin: http://evil.example\r\n\r\n"
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"host_not_allowed" in answer


def test_allowed_hosts_setting_names_the_hosts(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_auth_tokens=TOKENS, bridge_allowed_hosts=["chat.example"])
    named = httpx.get(f"{server.url}/api/models", headers={**ALICE, "host": "chat.example"})
    other = httpx.get(f"{server.url}/api/models", headers=ALICE)
    assert named.status_code == 200
    assert other.status_code == 400


async def test_websocket_origin_check_compares_the_scheme(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory()
    host = f"127.0.0.1:{server.port}"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_url(server.url), origin=f"https://{host}")  # type: ignore[arg-type]
    async with await RawSocket.open(ws_url(server.url), origin=f"http://{host}") as sock:
        reply = await sock.request(resume_frame("r1", "origin-chat"))
    assert refused.value.response.status_code == 403
    assert reply.final == "no-active"


async def test_cors_star_websocket_never_carries_cookies() -> None:
    """The README's cookie-auth embedding with BRIDGE_CORS_ORIGINS=*: a socket opened from
    any other site is served without the user's cookie, so it is nobody."""

    async def by_cookie(connection: Any) -> str:
        session = connection.cookies.get("session")
        if session != "s3cret":
            raise Unauthorized("not signed in")
        return "carol"

    settings = make_settings(bridge_cors_origins=["*"])
    server = LiveServer(create_app(settings, auth=CallableAuth(by_cookie)))
    server.start()
    try:
        cookie = {"cookie": "session=s3cret"}
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(
                ws_url(server.url),
                origin="https://evil.example",
                additional_headers=cookie,  # type: ignore[arg-type]
            )
        async with await RawSocket.open(ws_url(server.url), additional_headers=cookie) as sock:
            own = await sock.request(resume_frame("r1", "cookie-chat"))
    finally:
        server.stop()
    assert refused.value.response.status_code == 401
    assert own.final == "no-active"


# --- errors that say enough and no more --------------------------------------------------------


def test_provider_error_bodies_do_not_quote_the_upstream(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(
        openai_api_key="test-key",
        openai_base_url=openai_fake.base_url,
        bridge_model="openai:gpt-test",
    )
    openai_fake.enqueue([HttpError(400, "internal detail: shard db-7.internal refused")])
    response = httpx.post(f"{server.url}/api/chat", json=chat_body("upstream", "hi"), timeout=30)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "provider_bad_request"
    assert "db-7.internal" not in response.text
    assert error["message"] == "the model provider refused the request (HTTP 400)"


def test_jwks_failure_does_not_name_the_jwks_url(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    # A real server that answers 404 for the JWKS (its error names the URL).
    jwks = f"{openai_fake.base_url}/internal/jwks.json"
    server = bridge_factory(bridge_jwt_jwks_url=jwks)
    # An RS256 token: its key would come from the JWKS (which cannot be fetched).
    parts = [{"alg": "RS256", "kid": "k1", "typ": "JWT"}, {"sub": "x", "exp": 2**31}]
    token = (
        ".".join(
            base64.urlsafe_b64encode(orjson.dumps(part)).rstrip(b"=").decode() for part in parts
        )
        + ".c2ln"
    )
    response = httpx.get(f"{server.url}/api/chats", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "internal" not in response.text and "jwks" not in response.text
    assert str(openai_fake.base_url.split(":")[-1].split("/")[0]) not in response.text


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own (it gets killed)."""
    binary = os.environ.get("REDIS_SERVER_BIN", "redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    for line in process.stdout:  # wait for its own word that it accepts connections
        if b"Ready to accept connections" in line:
            break
    try:
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.kill()
        process.wait(10)


async def test_store_errors_name_no_host_or_key(
    bridge_factory: BridgeFactory, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, process = own_redis
    server = bridge_factory(
        redis_url=url,
        bridge_key_prefix="leaky",
        bridge_redis_socket_timeout_seconds=1,
        bridge_redis_connect_timeout_seconds=1,
        bridge_ready_timeout_seconds=1,
    )
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{server.url}/readyz")).status_code == 200
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        ready = await client.get(f"{server.url}/readyz")
        messages = await client.get(f"{server.url}/api/chat/gone/messages")
    port = url.rsplit(":", 1)[1].split("/")[0]
    async with await RawSocket.open(ws_url(server.url)) as sock:
        frame = await sock.request(resume_frame("r1", "gone"))
    assert ready.status_code == 503 and ready.json()["status"] == "store_unavailable"
    for text in (ready.text, messages.text, orjson.dumps(frame.frames).decode()):
        assert port not in text and "leaky" not in text and "127.0.0.1" not in text
    assert messages.status_code == 503


# --- slow and vanishing clients ----------------------------------------------------------------


def _raw_post(port: int, head_extra: str, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        (
            f"POST /api/chat HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
            f"content-type: application/json\r\n{head_extra}\r\n"
        ).encode()
        + body
    )
    return sock


def test_a_body_that_stalls_is_answered_408(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_body_timeout_seconds=0.5)
    sock = _raw_post(server.port, "content-length: 1000\r\n", b'{"id": "slow"')
    sock.settimeout(30)
    with sock:
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request_timeout" in answer


def test_a_client_leaving_mid_body_logs_no_error(
    bridge_factory: BridgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = bridge_factory()
    caplog.set_level(logging.INFO)
    _raw_post(server.port, "content-length: 1000\r\n", b'{"id": "gone"').close()
    deadline = time.monotonic() + 20
    while not any("left before its request body" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the server never noticed the client leaving"
        time.sleep(0.02)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_refused_request_leaves_the_chat_id_unclaimed(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_auth_tokens=TOKENS)
    refused = httpx.post(
        f"{server.url}/api/chat",
        json=chat_body("unclaimed", "hi", model="nope:x"),
        headers=ALICE,
        timeout=30,
    )
    taken = httpx.post(
        f"{server.url}/api/chat", json=chat_body("unclaimed", "mine"), headers=BOB, timeout=30
    )
    assert refused.status_code == 400
    assert taken.status_code == 200


def test_a_tool_output_for_a_tool_this_process_does_not_declare_is_refused(
    bridge_factory: BridgeFactory, redis_server: Any
) -> None:
    """A call waiting for the browser, answered on a process that does not declare that
    tool (another deployment, a tool since removed): the output is refused."""
    shared = {
        "redis_url": redis_server.url,
        "bridge_key_prefix": f"tools{uuid.uuid4().hex[:8]}",
        "bridge_auth_tokens": TOKENS,
        "bridge_demo_token_delay_ms": 0,
    }
    declaring = bridge_factory(**shared, bridge_tools="bridge.tools.examples")
    other = bridge_factory(**shared)
    asked = httpx.post(
        f"{declaring.url}/api/chat",
        json=chat_body("where", "use get_location"),
        headers=ALICE,
        timeout=30,
    )
    assert asked.status_code == 200
    history = httpx.get(f"{declaring.url}/api/chat/where/messages", headers=ALICE).json()
    user, assistant = history["messages"]
    part = next(p for p in assistant["parts"] if p["type"] == "tool-get_location")
    assert part["state"] == "input-available"
    part.update(state="output-available", output={"city": "Atlantis"})
    body = {"id": "where", "messages": [user, assistant], "trigger": "submit-message"}
    answered = httpx.post(f"{other.url}/api/chat", json=body, headers=ALICE, timeout=30)
    assert answered.status_code == 400
    assert answered.json()["error"]["code"] == "approval_rejected"
