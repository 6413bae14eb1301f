"""The bridge as a library: mounted under a prefix in a host FastAPI app that has its own
routes, its own identity check and its own lifespan, driven by the real `ai` client; the
host saves finished messages through `on_finish`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from starlette.requests import HTTPConnection

from bridge.access.identity import CallableAuth
from bridge.app import Bridge
from bridge.store.memory import MemoryStore
from tests.bridge_server import make_settings
from tests.fakes.server import LiveServer
from tests.node_harness import NodeHarness

SESSIONS = {"token-alice": "alice", "token-bob": "bob"}


def host_app(saved: list[dict[str, Any]]) -> FastAPI:
    async def current_user(connection: HTTPConnection) -> str:
        """The host's own session check (here: a bearer token of its own)."""
        token = connection.headers.get("authorization", "").removeprefix("Bearer ")
        return SESSIONS.get(token, "")

    async def save(chat_id: str, message: dict[str, Any], usage: Any, user: str | None) -> None:
        saved.append({"chat": chat_id, "message": message, "user": user})

    bridge = Bridge(
        make_settings(bridge_demo_token_delay_ms=0),
        auth=CallableAuth(current_user),
        store=MemoryStore(),
        on_finish=save,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.host_started = True  # the host's own start-up, composed with the bridge's
        async with bridge.lifespan(app):
            yield

    app = FastAPI(lifespan=lifespan)
    bridge.install(app, prefix="/bridge")

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, str]:
        user = await current_user(request)
        if not user:
            raise HTTPException(401)
        return {"user": user}

    return app


@pytest.fixture
def host() -> Any:
    saved: list[dict[str, Any]] = []
    server = LiveServer(host_app(saved))
    server.start()
    yield server, saved
    server.stop()


@pytest.mark.node
def test_embedding_the_bridge_under_a_prefix_serves_the_real_client(
    node: NodeHarness, host: Any
) -> None:
    server, saved = host
    base = server.url
    assert httpx.get(f"{base}/whoami", headers={"authorization": "Bearer token-alice"}).json() == {
        "user": "alice"
    }
    result = node.chat(
        {
            "api": f"{base}/bridge/api/chat",
            "chatId": "embedded-1",
            "headers": {"authorization": "Bearer token-alice"},
            "steps": [{"op": "send", "text": "Hello from the host app"}, {"op": "settle"}],
        }
    )
    assert result["status"] == "ready", result["error"]
    answer = result["messages"][1]
    assert answer["role"] == "assistant"
    # The host's on_finish got the same message, with the host's user.
    assert len(saved) == 1
    assert saved[0]["chat"] == "embedded-1" and saved[0]["user"] == "alice"
    assert saved[0]["message"]["parts"] == answer["parts"]
    # The host's identity check guards the bridge's routes: another user sees nothing.
    bob = {"authorization": "Bearer token-bob"}
    theirs = httpx.get(f"{base}/bridge/api/chat/embedded-1/messages", headers=bob)
    assert theirs.status_code == 200 and theirs.json()["messages"] == []  # as an unused id
    nobody = httpx.post(f"{base}/bridge/api/chat", json={}, headers={})
    assert nobody.status_code == 401
    # Nothing of the bridge outside its prefix.
    assert httpx.get(f"{base}/api/models").status_code == 404
    assert httpx.get(f"{base}/bridge/api/models", headers=bob).status_code == 200
