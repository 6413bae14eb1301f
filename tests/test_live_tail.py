"""The chat-level live tail, `GET /api/chat/{id}/live`: a second client follows a chat across
turns (user messages, then answers, in order), gets the running generation when it
connects, and loses nothing when it reconnects with `Last-Event-ID`."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from protocol.sse import SSEParser
from tests.bridge_server import BridgeFactory, chat_body, openai_settings, sse_events, user_message
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Hang, LiveServer, Text
from tests.support.redis import RedisServer

Event = tuple[str, dict[str, Any]]


class Tail(threading.Thread):
    """Reads the live tail in the background until `done(events)` says so."""

    def __init__(
        self,
        server: LiveServer,
        chat_id: str,
        done: Callable[[list[Event]], bool],
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.url = f"{server.url}/api/chat/{chat_id}/live"
        self.done = done
        self.headers = headers or {}
        self.events: list[Event] = []
        self.ready = threading.Event()
        self.status = 0

    def run(self) -> None:
        parser = SSEParser()
        with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as response:
            self.status = response.status_code
            for piece in response.iter_bytes():
                for event in parser.feed(piece):
                    if event.comment == "live":
                        self.ready.set()
                    if event.data is None:
                        continue
                    assert event.id is not None
                    self.events.append((event.id, orjson.loads(event.data)))
                if self.done(self.events):
                    return

    def result(self) -> list[Event]:
        self.join(30)
        assert not self.is_alive(), "the tail did not see what it waited for"
        assert self.status == 200
        return self.events


def finishes(count: int) -> Callable[[list[Event]], bool]:
    return lambda events: sum(chunk["type"] in ("finish", "abort") for _, chunk in events) >= count


def post(server: LiveServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{server.url}/api/chat", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return [orjson.loads(data) for _, data in sse_events(response) if data != "[DONE]"]


def user_texts(events: list[Event]) -> list[str]:
    return [
        chunk["data"]["message"]["parts"][0]["text"]
        for _, chunk in events
        if chunk["type"] == "data-user-message"
    ]


def by_generation(events: list[Event]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    grouped: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for position, chunk in events:
        generation, _, offset = position.rpartition(":")
        grouped.setdefault(generation, []).append((int(offset), chunk))
    return grouped


@pytest.fixture
def demo(bridge_factory: BridgeFactory) -> LiveServer:
    return bridge_factory(bridge_demo_token_delay_ms=0)


def test_live_tail_follows_two_turns_in_order(demo: LiveServer) -> None:
    tail = Tail(demo, "tail-two", finishes(2))
    tail.start()
    assert tail.ready.wait(10)
    first = post(demo, chat_body("tail-two", "first question"))
    second = post(demo, {"id": "tail-two", "message": user_message("second question", "u2")})
    events = tail.result()

    assert user_texts(events) == ["first question", "second question"]
    grouped = by_generation(events)
    assert len(grouped) == 2
    for answer, (offsets_and_chunks) in zip((first, second), grouped.values(), strict=True):
        offsets = [offset for offset, _ in offsets_and_chunks]
        assert offsets == list(range(-1, len(answer)))  # user message, then every chunk
        assert [chunk for _, chunk in offsets_and_chunks[1:]] == answer
    # The user-message event names the answer that follows it.
    opening = events[0][1]
    assert opening["transient"] is True
    assert opening["data"]["messageId"] == first[0]["messageId"]


def test_live_tail_reconnect_with_last_event_id_loses_nothing(demo: LiveServer) -> None:
    tail = Tail(demo, "tail-again", lambda events: len(events) >= 4)
    tail.start()
    assert tail.ready.wait(10)
    first = post(demo, chat_body("tail-again", "one"))
    seen = tail.result()
    last_id = seen[-1][0]
    second = post(demo, {"id": "tail-again", "message": user_message("two", "u2")})

    rest = Tail(demo, "tail-again", finishes(2), headers={"last-event-id": last_id})
    rest.start()
    events = seen + rest.result()
    assert user_texts(events) == ["one", "two"]
    grouped = list(by_generation(events).values())
    assert [chunk for _, chunk in grouped[0][1:]] == first
    assert [chunk for _, chunk in grouped[1][1:]] == second
    assert [offset for offset, _ in grouped[0]] == list(range(-1, len(first)))


def test_live_tail_starts_with_the_running_generation(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(**openai_settings(openai_fake))
    openai_fake.enqueue([Text("Half an answer"), Hang()])
    started = threading.Event()

    def run() -> None:
        with httpx.stream(
            "POST", f"{server.url}/api/chat", json=chat_body("tail-now", "go"), timeout=30
        ) as response:
            for line in response.iter_lines():
                if "text-delta" in line:
                    started.set()

    producer = threading.Thread(target=run, daemon=True)
    producer.start()
    assert started.wait(10)
    tail = Tail(server, "tail-now", finishes(1))
    tail.start()
    assert tail.ready.wait(10)
    assert httpx.post(f"{server.url}/api/chat/tail-now/stop", timeout=10).status_code == 200
    events = tail.result()
    producer.join(10)
    types = [chunk["type"] for _, chunk in events]
    assert types[:3] == ["data-user-message", "start", "start-step"]
    assert "text-delta" in types
    assert types[-1] == "abort"
    assert user_texts(events) == ["go"]


def test_live_tail_without_current_starts_with_the_next_turn(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(**openai_settings(openai_fake))
    openai_fake.enqueue([Text("Half an answer"), Hang()])
    started = threading.Event()

    def run() -> None:
        with httpx.stream(
            "POST", f"{server.url}/api/chat", json=chat_body("tail-later", "one"), timeout=30
        ) as response:
            for line in response.iter_lines():
                if "text-delta" in line:
                    started.set()

    producer = threading.Thread(target=run, daemon=True)
    producer.start()
    assert started.wait(10)
    tail = Tail(server, "tail-later", finishes(1))
    tail.url += "?current=false"
    tail.start()
    assert tail.ready.wait(10)
    assert httpx.post(f"{server.url}/api/chat/tail-later/stop", timeout=10).status_code == 200
    producer.join(10)
    answer = post(server, {"id": "tail-later", "message": user_message("two", "u2")})
    events = tail.result()
    assert user_texts(events) == ["two"]
    assert [chunk for _, chunk in events[1:]] == answer


@pytest.mark.parametrize("value", ["nocolon", "gen:abc", "gen:-5", ":3"])
def test_live_tail_rejects_a_malformed_position(demo: LiveServer, value: str) -> None:
    response = httpx.get(f"{demo.url}/api/chat/tail-bad/live", params={"cursor": value}, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.redis
def test_live_tail_on_one_process_follows_turns_posted_to_another(
    bridge_factory: BridgeFactory, redis_server: RedisServer
) -> None:
    settings = {
        "bridge_demo_token_delay_ms": 0,
        "redis_url": redis_server.url,
        "bridge_key_prefix": f"t{uuid.uuid4().hex[:8]}",
    }
    laptop, phone = bridge_factory(**settings), bridge_factory(**settings)
    tail = Tail(laptop, "tail-shared", finishes(2))
    tail.start()
    assert tail.ready.wait(10)
    first = post(phone, chat_body("tail-shared", "from the phone"))
    second = post(phone, {"id": "tail-shared", "message": user_message("again", "u2")})
    events = tail.result()
    assert user_texts(events) == ["from the phone", "again"]
    grouped = list(by_generation(events).values())
    assert [chunk for _, chunk in grouped[0][1:]] == first
    assert [chunk for _, chunk in grouped[1][1:]] == second
