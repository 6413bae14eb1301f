"""`DELETE /api/chat/{id}` on a real server: a finished chat, a chat whose answer is still
running (stopped first, nothing left running, no log left), someone else's chat (nothing
changes, the answer is an unused id's) and the gate's CSRF rule for a DELETE (the body-less
POST's: one a browser marks cross-site needs what a form cannot send)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.bridge_server import BridgeFactory, chat_body
from tests.fakes.server import LiveServer
from tests.support.redis import RedisServer
from tests.support.waiting import until

TOKENS = ["ta:alice", "tb:bob"]
ALICE = {"authorization": "Bearer ta"}
BOB = {"authorization": "Bearer tb"}


@pytest.fixture
def server(bridge_factory: BridgeFactory) -> LiveServer:
    return bridge_factory(
        bridge_auth_tokens=TOKENS, bridge_demo_token_delay_ms=0, bridge_heartbeat_seconds=0.2
    )


def _finished_chat(client: httpx.Client, chat_id: str, headers: dict[str, str]) -> str:
    """A chat with one finished answer; its generation id."""
    response = client.post("/api/chat", json=chat_body(chat_id, "hello"), headers=headers)
    assert response.status_code == 200, response.text
    return str(response.headers["x-bridge-generation-id"])


def _seen(client: httpx.Client, chat_id: str, generation: str, headers: dict[str, str]) -> Any:
    """What a client can learn of a chat: its messages, its resume, its resume by the
    generation's id, its place in the chat list."""
    messages = client.get(f"/api/chat/{chat_id}/messages", headers=headers)
    resume = client.get(f"/api/chat/{chat_id}/stream", headers=headers)
    by_id = client.get(f"/api/chat/{chat_id}/stream?generation={generation}", headers=headers)
    listed = client.get("/api/chats", headers=headers).json()["chats"]
    return (
        messages.status_code,
        messages.json()["messages"],
        messages.json()["activeGenerationId"],
        resume.status_code,
        by_id.status_code,
        by_id.json()["error"]["code"] if by_id.status_code >= 400 else None,
        chat_id in [chat["id"] for chat in listed],
    )


def test_chat_delete_of_a_finished_chat_leaves_an_unused_id(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        generation = _finished_chat(client, "doomed", ALICE)
        _finished_chat(client, "kept", ALICE)
        before = _seen(client, "doomed", generation, ALICE)
        assert before[0] == 200 and len(before[1]) == 2 and before[-1] is True

        response = client.delete("/api/chat/doomed", headers=ALICE)
        assert response.status_code == 204
        assert response.content == b""

        unused = _seen(client, "never-used", generation, ALICE)
        assert _seen(client, "doomed", generation, ALICE) == unused
        assert unused == (200, [], None, 204, 410, "generation_gone", False)
        # The other chat is untouched; the id starts over as a new chat of whoever uses it.
        assert [c["id"] for c in client.get("/api/chats", headers=ALICE).json()["chats"]] == [
            "kept"
        ]
        assert client.delete("/api/chat/doomed", headers=ALICE).status_code == 204
        assert client.delete("/api/chat/never-used", headers=ALICE).status_code == 204
        _finished_chat(client, "doomed", BOB)
        assert len(client.get("/api/chat/doomed/messages", headers=BOB).json()["messages"]) == 2


async def test_chat_delete_during_a_running_answer_stops_it_first(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(
        bridge_auth_tokens=TOKENS, bridge_demo_token_delay_ms=50, bridge_heartbeat_seconds=0.2
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        body = chat_body("running", "write something long")
        async with client.stream("POST", "/api/chat", json=body, headers=ALICE) as answer:
            assert answer.status_code == 200
            generation = answer.headers["x-bridge-generation-id"]
            lines = answer.aiter_lines()
            async for line in lines:
                if '"text-delta"' in line:
                    break  # the answer is streaming
            health = (await client.get("/healthz")).json()
            assert health["runningGenerations"] == 1

            response = await client.delete("/api/chat/running", headers=ALICE)
            assert response.status_code == 204
            # The stream ends (stopped), well before the long answer would have.
            rest = [line async for line in lines]
        assert any('"abort"' in line for line in rest), rest[-5:]

        async def stopped() -> bool:
            return (await client.get("/healthz")).json()["runningGenerations"] == 0

        await until(stopped, 10, "no generation running")
        messages = await client.get("/api/chat/running/messages", headers=ALICE)
        assert messages.json() == {"chatId": "running", "messages": [], "activeGenerationId": None}
        assert (await client.get("/api/chat/running/stream", headers=ALICE)).status_code == 204
        gone = await client.get(f"/api/chat/running/stream?generation={generation}", headers=ALICE)
        assert gone.status_code == 410  # no log left
        chats = (await client.get("/api/chats", headers=ALICE)).json()["chats"]
        assert chats == []


async def test_chat_delete_on_another_process_stops_the_answer_and_leaves_no_key(
    bridge_factory: BridgeFactory, redis_server: RedisServer
) -> None:
    prefix = f"del{uuid.uuid4().hex[:8]}"
    shared = {
        "redis_url": redis_server.url,
        "bridge_key_prefix": prefix,
        "bridge_auth_tokens": TOKENS,
        "bridge_heartbeat_seconds": 0.2,
    }
    producing = bridge_factory(bridge_demo_token_delay_ms=50, **shared)
    other = bridge_factory(bridge_demo_token_delay_ms=0, **shared)
    async with httpx.AsyncClient(timeout=30) as client:
        kept = await client.post(
            f"{other.url}/api/chat", json=chat_body("kept", "hello"), headers=ALICE
        )
        assert kept.status_code == 200
        body = chat_body("elsewhere", "write something long")
        async with client.stream(
            "POST", f"{producing.url}/api/chat", json=body, headers=ALICE
        ) as answer:
            assert answer.status_code == 200
            lines = answer.aiter_lines()
            async for line in lines:
                if '"text-delta"' in line:
                    break
            # The delete reaches the other process: it stops the answer where it runs.
            response = await client.delete(f"{other.url}/api/chat/elsewhere", headers=ALICE)
            assert response.status_code == 204
            rest = [line async for line in lines]
        assert any('"abort"' in line for line in rest), rest[-5:]

        async def stopped() -> bool:
            health = (await client.get(f"{producing.url}/healthz")).json()
            return health["runningGenerations"] == 0

        await until(stopped, 10, "no generation running")
        chats = (await client.get(f"{producing.url}/api/chats", headers=ALICE)).json()["chats"]
        assert [chat["id"] for chat in chats] == ["kept"]
    keys = [key.decode() for key in redis_server.client().keys(f"{prefix}:*")]
    assert keys, "the kept chat's keys are there"
    assert [key for key in keys if "{elsewhere}" in key] == []


def test_chat_delete_of_someone_elses_chat_changes_nothing(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        generation = _finished_chat(client, "alices", ALICE)
        before = _seen(client, "alices", generation, ALICE)

        theirs = client.delete("/api/chat/alices", headers=BOB)
        unused = client.delete("/api/chat/never-used", headers=BOB)
        assert (theirs.status_code, theirs.headers.get("content-type"), theirs.content) == (
            unused.status_code,
            unused.headers.get("content-type"),
            unused.content,
        )
        assert theirs.status_code == 204

        assert _seen(client, "alices", generation, ALICE) == before


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        # What a page of another site could try: refused before identity is even asked.
        (
            {"origin": "https://evil.example", "content-type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        ({"origin": "https://evil.example"}, 400, "bad_request"),
        ({"sec-fetch-site": "cross-site"}, 400, "bad_request"),
        # What a form cannot send (a browser asks the server first): passes.
        ({"origin": "https://evil.example", "x-requested-with": "t"}, 204, None),
        ({"origin": "https://evil.example", "content-type": "application/json"}, 204, None),
    ],
)
def test_chat_delete_cross_site_follows_the_csrf_rule(
    bridge_factory: BridgeFactory, headers: dict[str, str], status: int, code: str | None
) -> None:
    # Anonymous mode (the cookie is the identity, as a browser sends it): the CSRF case.
    server = bridge_factory(bridge_demo_token_delay_ms=0)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        _finished_chat(client, "mine", {})
        response = client.delete("/api/chat/mine", headers=headers)
        assert response.status_code == status, response.text
        if code is not None:
            assert response.json()["error"]["code"] == code
        left = client.get("/api/chat/mine/messages").json()["messages"]
        assert len(left) == (0 if status == 204 else 2)


def test_chat_delete_preflight_is_allowed_for_listed_origins_only(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_cors_origins=["https://app.example"])
    asked = {"access-control-request-method": "DELETE"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        listed = client.options("/api/chat/c1", headers={"origin": "https://app.example", **asked})
        other = client.options("/api/chat/c1", headers={"origin": "https://evil.example", **asked})
    assert listed.status_code == 200
    assert "DELETE" in listed.headers["access-control-allow-methods"]
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
