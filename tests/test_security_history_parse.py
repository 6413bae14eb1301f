"""A chat's stored history costs one parse and one dump per turn, none for a request the
chat cannot take (a busy chat's 409), and a history past the size limit is refused before it
is parsed at all.

The counts are taken in-process on a real server (uvicorn in a thread): the store's
`load_messages` (one JSON parse of the whole history per call), `UIMessage.model_validate`
(a stored message turned into a model) and `UIMessage.dump` (a message turned back into
JSON) are wrapped and counted. No timing anywhere.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest

from bridge.store.memory import MemoryStore
from protocol.messages import UIMessage
from tests.bridge_server import BridgeFactory, user_message
from tests.fakes.server import LiveServer
from tests.faulty_store import FaultyStore

HISTORY_LIMIT = 64 * 1024


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts of every stored-history parse and every message dump, from now on."""
    counts: Counter[str] = Counter()
    validate = UIMessage.model_validate.__func__  # type: ignore[attr-defined]
    dump = UIMessage.dump

    def counting_validate(cls: type[UIMessage], obj: Any, *args: Any, **kwargs: Any) -> Any:
        counts["validate"] += 1
        counts[f"validate {obj.get('id') if isinstance(obj, dict) else None}"] += 1
        return validate(cls, obj, *args, **kwargs)

    def counting_dump(self: UIMessage) -> dict[str, Any]:
        counts["dump"] += 1
        counts[f"dump {self.id}"] += 1
        return dump(self)

    monkeypatch.setattr(UIMessage, "model_validate", classmethod(counting_validate))
    monkeypatch.setattr(UIMessage, "dump", counting_dump)
    return counts


@pytest.fixture
def store(counted: Counter[str]) -> FaultyStore:
    faulty = FaultyStore(MemoryStore())

    def observe(method: str, args: tuple[Any, ...]) -> None:
        counted[method] += 1

    faulty.observer = observe
    return faulty


@pytest.fixture
def server(bridge_factory: BridgeFactory, store: FaultyStore) -> LiveServer:
    return bridge_factory(
        store=store,
        bridge_demo_token_delay_ms=20,
        bridge_max_history_bytes=HISTORY_LIMIT,
    )


def _turn(client: httpx.Client, chat_id: str, text: str, message_id: str) -> httpx.Response:
    body = {"id": chat_id, "message": user_message(text, message_id)}
    return client.post("/api/chat", json=body)


def test_history_a_turn_parses_and_dumps_the_stored_history_once(
    server: LiveServer, counted: Counter[str]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for n in range(3):
            assert _turn(client, "once", f"hello {n}", f"u{n}").status_code == 200
        stored = [m["id"] for m in client.get("/api/chat/once/messages").json()["messages"]]
        assert len(stored) == 6
        counted.clear()
        assert _turn(client, "once", "one more", "u3").status_code == 200
    assert counted["load_messages"] == 1  # the one parse of the stored history's JSON
    # Each stored message made a model once; dumped once for the start's history and once
    # for the end's (with the answer), never again for a size check.
    assert {id_: counted[f"validate {id_}"] for id_ in stored} == dict.fromkeys(stored, 1)
    assert {id_: counted[f"dump {id_}"] for id_ in stored} == dict.fromkeys(stored, 2)


def test_history_a_busy_chat_answers_409_without_parsing_its_history(
    server: LiveServer, counted: Counter[str]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert _turn(client, "busy", "hello", "u0").status_code == 200
        body = {"id": "busy", "message": user_message("tell me something long", "u1")}
        with client.stream("POST", "/api/chat", json=body) as running:
            assert running.status_code == 200
            lines = running.iter_lines()
            next(line for line in lines if '"text-delta"' in line)  # the answer runs
            counted.clear()
            refused = _turn(client, "busy", "and now?", "u2")
            assert next(lines, None) is not None  # still running after the refusal
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "generation_active"
    assert counted["load_messages"] == 0
    assert counted["validate"] == 0
    assert counted["dump"] == 0


async def test_history_past_the_limit_is_refused_before_it_is_parsed(
    server: LiveServer, store: FaultyStore, counted: Counter[str]
) -> None:
    # A history stored past the limit (the limit lowered since, or grown another way).
    big = [
        user_message("x" * 1024, f"m{n}") | {"role": "user" if n % 2 == 0 else "assistant"}
        for n in range(2 * HISTORY_LIMIT // 1024)
    ]
    await store.inner.claim_chat("big", "anon:someone")
    await store.inner.save_messages("big", big)
    counted.clear()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post(
            "/api/chat", json={"id": "big", "message": user_message("more", "new")}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert counted["load_messages"] == 0
    assert counted["validate"] == 0
