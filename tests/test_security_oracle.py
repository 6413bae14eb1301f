"""No existence oracle: on every entry point of the gate's table that reads or controls a
chat, someone else's chat answers exactly as an unused chat id does (status, headers that
describe the chat, body), over HTTP and over WebSocket frames. The table is walked: an
entry with a chat and no request here fails the test, so a new route is checked from the
start.

An entry that starts a turn cannot answer alike (an unused id starts a chat; a taken one
cannot be given to another user): it answers 404 and leaves the chat as it was."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bridge.api.gate import entries
from tests.bridge_server import BridgeFactory, chat_body
from tests.fakes.server import LiveServer
from tests.support.waiting import until
from tests.ws_client import RawSocket, Reply, resume_frame, send_frame, ws_url

TOKENS = ["ta:alice", "tb:bob"]
ALICE = {"authorization": "Bearer ta"}
BOB = {"authorization": "Bearer tb"}
THEIRS, UNUSED = "alices-chat", "never-used"
STEER = {"message": {"id": "s1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}}

# Entry name -> (method, path, request options); {chat} and {generation} are filled in.
HTTP: dict[str, tuple[str, str, dict[str, Any]]] = {
    "GET /api/chat/{chat_id}/stream": ("GET", "/api/chat/{chat}/stream", {}),
    "POST /api/chat/{chat_id}/stop": (
        "POST",
        "/api/chat/{chat}/stop",
        {"headers": {"x-requested-with": "t"}},
    ),
    "POST /api/chat/{chat_id}/steer": ("POST", "/api/chat/{chat}/steer", {"json": STEER}),
    "DELETE /api/chat/{chat_id}": ("DELETE", "/api/chat/{chat}", {}),
    "GET /api/chat/{chat_id}/messages": ("GET", "/api/chat/{chat}/messages", {}),
    "GET /api/chat/{chat_id}/live": ("GET", "/api/chat/{chat}/live", {}),
    "GET /api/chat/{chat_id}/poll": ("GET", "/api/chat/{chat}/poll", {}),
    "GET /api/chat/{chat_id}/steer/{steering_id}": ("GET", "/api/chat/{chat}/steer/s1", {}),
    "GET /api/ds/chat/{chat_id}/generation/{generation_id}": (
        "GET",
        "/api/ds/chat/{chat}/generation/{generation}",
        {},
    ),
    "HEAD /api/ds/chat/{chat_id}/generation/{generation_id}": (
        "HEAD",
        "/api/ds/chat/{chat}/generation/{generation}",
        {},
    ),
    "GET /api/ds/chat/{chat_id}/live": ("GET", "/api/ds/chat/{chat}/live", {}),
    "HEAD /api/ds/chat/{chat_id}/live": ("HEAD", "/api/ds/chat/{chat}/live", {}),
}
FRAMES = {"frame resume", "frame steer", "frame live"}
STARTS: dict[str, tuple[str, dict[str, Any]]] = {
    "POST /api/chat": ("/api/chat", {}),
    "POST /api/chat/poll": ("/api/chat/poll", {}),
    "frame send": ("", {}),
}
DESCRIBING_HEADERS = ("content-type", "stream-next-offset", "stream-up-to-date", "etag")


@pytest.fixture
def server(bridge_factory: BridgeFactory) -> LiveServer:
    return bridge_factory(
        bridge_auth_tokens=TOKENS,
        bridge_demo_token_delay_ms=0,
        bridge_max_poll_wait_seconds=0.2,
        bridge_heartbeat_seconds=0.2,
    )


@pytest.fixture
def generation(server: LiveServer) -> str:
    """Alice's chat, with an ended answer; its generation id."""
    response = httpx.post(
        f"{server.url}/api/chat", json=chat_body(THEIRS, "hello"), headers=ALICE, timeout=30
    )
    assert response.status_code == 200, response.text
    return str(response.headers["x-bridge-generation-id"])


def test_oracle_every_chat_entry_is_covered() -> None:
    with_chat = {entry.name for entry in entries() if entry.chat is not None}
    assert with_chat == set(HTTP) | FRAMES | set(STARTS)
    assert {entry.name for entry in entries() if entry.starts} == set(STARTS)


def _answer(server: LiveServer, entry: str, chat_id: str, generation: str) -> tuple[Any, ...]:
    method, path, options = HTTP[entry]
    url = server.url + path.format(chat=chat_id, generation=generation)
    headers = {**BOB, **options.get("headers", {})}
    with httpx.stream(
        method, url, headers=headers, json=options.get("json"), timeout=30
    ) as response:
        if "text/event-stream" in response.headers.get("content-type", ""):
            body = next(response.iter_text(), "")  # a live tail never ends: its first event
        else:
            body = response.read().decode()
        described = {
            name: (response.headers.get(name) or "").replace(chat_id, "ID")
            for name in DESCRIBING_HEADERS
        }
        return response.status_code, described, body.replace(chat_id, "ID")


@pytest.mark.parametrize("entry", sorted(HTTP))
def test_oracle_someone_elses_chat_answers_as_an_unused_id(
    server: LiveServer, generation: str, entry: str
) -> None:
    theirs = _answer(server, entry, THEIRS, generation)
    unused = _answer(server, entry, UNUSED, generation)
    assert theirs == unused


async def _first_frames(sock: RawSocket, request_id: str) -> Reply:
    """A live frame's answer never ends: its first frame stands for it."""
    reply = sock.replies[request_id]
    await until(lambda: reply.frames, 10, f"a first frame for {request_id}")
    return reply


async def test_oracle_frames_on_someone_elses_chat_answer_as_an_unused_id(
    server: LiveServer, generation: str
) -> None:
    replies: dict[str, list[Any]] = {}
    async with await RawSocket.open(ws_url(server.url, "/api/chat?token=tb")) as sock:
        for chat_id in (THEIRS, UNUSED):
            resume = await sock.request(resume_frame(f"r-{chat_id}", chat_id))
            steer = await sock.request(
                {"type": "steer", "requestId": f"s-{chat_id}", "id": chat_id, **STEER}
            )
            live_id = f"l-{chat_id}"
            await sock.send({"type": "live", "requestId": live_id, "id": chat_id})
            live = await _first_frames(sock, live_id)
            replies[chat_id] = [
                [{k: v for k, v in f.items() if k != "requestId"} for f in resume.frames],
                [str(f).replace(chat_id, "ID") for f in steer.frames],
                [str(f).replace(chat_id, "ID") for f in live.frames[:1]],
            ]
    assert replies[THEIRS] == replies[UNUSED]


async def test_oracle_a_turn_on_someone_elses_chat_is_404_and_changes_nothing(
    server: LiveServer, generation: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        before = (await client.get(f"/api/chat/{THEIRS}/messages", headers=ALICE)).json()
        for path in ("/api/chat", "/api/chat/poll"):
            response = await client.post(path, json=chat_body(THEIRS, "mine now"), headers=BOB)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "not_found"
        after = (await client.get(f"/api/chat/{THEIRS}/messages", headers=ALICE)).json()
    async with await RawSocket.open(ws_url(server.url, "/api/chat?token=tb")) as sock:
        reply = await sock.request(send_frame("send-theirs", THEIRS))
    assert reply.final == "error"
    assert after == before
