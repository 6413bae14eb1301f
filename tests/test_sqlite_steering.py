"""Steering queues and records in the SQLite store's file: they outlive the store (a restart
of the process), and a message queued as the next turn of an answer whose process was
SIGKILLed becomes that turn once the restarted process has taken the answer over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from bridge.store.sqlite.store import SQLiteStore
from protocol.sse import SSEParser
from tests.bridge_server import chat_body
from tests.support.clock import Clock
from tests.test_sqlite_restart import AUTH, launch  # noqa: F401  (the process fixture)


async def test_sqlite_steering_queue_records_and_closed_mark_outlive_the_store(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bridge.sqlite3"
    store = SQLiteStore(path)
    await store.start()
    assert await store.push_steering("c", "g", b"one") == 1
    assert await store.push_steering("c", "g", b"two") == 2
    assert await store.put_steering_record("c", "s1", b"queued") is None
    await store.push_steering("c", "ended", b"x")
    await store.close_steering("c", "ended")
    await store.close()

    again = SQLiteStore(path)
    await again.start()
    try:
        assert await again.read_steering("c", "g", 0) == [(1, b"one"), (2, b"two")]
        assert await again.push_steering("c", "g", b"three") == 3  # positions go on
        assert await again.steering_record("c", "s1") == b"queued"
        assert await again.put_steering_record("c", "s1", b"other", only_if_absent=True) == (
            b"queued"
        )
        assert await again.push_steering("c", "ended", b"late") is None  # still closed
    finally:
        await again.close()


async def test_sqlite_steering_rows_expire_with_the_logs(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteStore(tmp_path / "bridge.sqlite3", log_ttl_seconds=60, clock=clock)
    await store.start()
    try:
        await store.push_steering("c", "g", b"one")
        await store.put_steering_record("c", "s1", b"queued")
        await store.push_steering("c", "closed", b"x")
        await store.close_steering("c", "closed")
        clock.advance(59)
        assert await store.read_steering("c", "g", 0) == [(1, b"one")]
        clock.advance(2)
        assert await store.read_steering("c", "g", 0) == []
        assert await store.steering_record("c", "s1") is None
        # A closed queue's mark lapses with it: the key may be used again (a new queue).
        assert await store.push_steering("c", "closed", b"new") == 1
    finally:
        await store.close()


def test_sqlite_queued_turn_survives_a_sigkill_of_the_process(launch: Any) -> None:  # noqa: F811
    first = launch()
    with httpx.Client(base_url=first.url, timeout=60, headers=AUTH) as client:
        body = chat_body("chat-q", "write something long")
        with client.stream("POST", "/api/chat?client=7", json=body) as response:
            assert response.status_code == 200
            running = response.headers["x-bridge-generation-id"]
            parser = SSEParser()
            queued = False
            for data in response.iter_bytes():
                for event in parser.feed(data):
                    if event.data is None or event.data == "[DONE]":
                        continue
                    chunk = orjson.loads(event.data)
                    if chunk["type"] == "text-delta" and not queued:
                        # The long-poll POST answers at once: the message waits as queued.
                        message = {
                            "id": "u2",
                            "role": "user",
                            "parts": [{"type": "text", "text": "Hello"}],
                        }
                        page = client.post(
                            "/api/chat/poll?wait=0",
                            json={"id": "chat-q", "message": message},
                            headers={"x-bridge-busy": "queue"},
                        )
                        assert page.status_code == 200 and page.headers["x-bridge-busy"] == "queued"
                        queued = True
                    if chunk["type"] == "data-steering-queued":
                        break
                else:
                    continue
                break
            first.kill()

    second = launch()
    assert "taking it over" in second.output()
    with httpx.Client(base_url=second.url, timeout=60, headers=AUTH) as client:
        # The queued message's record is still there, and its turn starts once the answer
        # taken over has ended.
        turn_page: dict[str, Any] = {"generationId": None}
        for _ in range(10):
            turn_page = client.get(
                "/api/chat/chat-q/poll", params={"steering": "u2", "wait": 10}
            ).json()
            if turn_page["generationId"] is not None or turn_page["done"]:
                break
        turn = turn_page["generationId"]
        assert turn is not None and turn != running, turn_page
        page = turn_page
        while not page["done"]:
            page = client.get(
                "/api/chat/chat-q/poll",
                params={"generation": turn, "cursor": page["cursor"], "wait": 10},
            ).json()
        assert page["outcome"] == "finished"
        history = client.get("/api/chat/chat-q/messages").json()["messages"]
        assert [(m["role"], m["id"]) for m in history][2] == ("user", "u2")
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        record = client.get("/api/chat/chat-q/steer/u2").json()
        assert record["nextTurn"] == turn
