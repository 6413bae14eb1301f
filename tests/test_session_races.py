"""The races users report, each against a real `python -m bridge` process (the default SQLite
store) and a real OpenAI-compatible server: a stop that arrives while the answer is still
starting, a stop that keeps the partial answer, and an approval answered on another device
after the chat moved on (the stored copy is the truth: applied while still pending and
last, else a clear 409 and nothing runs)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import orjson
import pytest

from bridge.store.memory import MemoryStore
from protocol.sse import SSEParser
from tests.bridge_server import BridgeFactory, openai_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Hang, LiveServer, Text, ToolCall
from tests.faulty_store import FaultyStore
from tests.support.bridge_process import BridgeProcess, BridgeProcesses
from tests.support.waiting import wait_until

AUTH = {"authorization": "Bearer races-token", "x-ai-sdk-level": "7"}
Served = BridgeProcess | LiveServer


@pytest.fixture
def bridge(bridge_processes: BridgeProcesses, tmp_path: Path, fake: OpenAIFake) -> BridgeProcess:
    process = bridge_processes.settled(
        BRIDGE_DATA_DIR=str(tmp_path / "data"),
        BRIDGE_AUTH_TOKENS="races-token:alice",
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=fake.base_url,
        BRIDGE_MODEL="openai:gpt-test",
        BRIDGE_TOOLS="bridge.tools.examples",
    )
    assert process.started, process.output()
    return process


def user(text: str, message_id: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


class Streaming(threading.Thread):
    """POST /api/chat read to its end in the background; `chunks` as they arrive."""

    def __init__(self, bridge: Served, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url = f"{bridge.url}/api/chat"
        self.body = body
        self.chunks: list[dict[str, Any]] = []
        self.done = False
        self.status = 0
        self.generation_id = ""

    def run(self) -> None:
        parser = SSEParser()
        with httpx.stream("POST", self.url, json=self.body, headers=AUTH, timeout=60) as response:
            self.status = response.status_code
            self.generation_id = response.headers.get("x-bridge-generation-id", "")
            for piece in response.iter_bytes():
                for event in parser.feed(piece):
                    if event.data == "[DONE]":
                        self.done = True
                    elif event.data is not None:
                        self.chunks.append(orjson.loads(event.data))

    def finish(self) -> list[dict[str, Any]]:
        self.join(60)
        assert not self.is_alive(), "the response did not end"
        assert self.status == 200
        return self.chunks


def messages_of(bridge: Served, chat_id: str) -> dict[str, Any]:
    response = httpx.get(f"{bridge.url}/api/chat/{chat_id}/messages", headers=AUTH)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def running_generations(bridge: BridgeProcess) -> int:
    return int(httpx.get(f"{bridge.url}/healthz").json()["runningGenerations"])


def stop(bridge: Served, chat_id: str) -> dict[str, Any]:
    response = httpx.post(f"{bridge.url}/api/chat/{chat_id}/stop", headers=AUTH, timeout=30)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


class Stopping(threading.Thread):
    def __init__(self, bridge: Served, chat_id: str) -> None:
        super().__init__(daemon=True)
        self.args = (bridge, chat_id)
        self.result: dict[str, Any] | None = None

    def run(self) -> None:
        self.result = stop(*self.args)

    def finish(self) -> dict[str, Any]:
        self.join(30)
        assert self.result is not None, "the stop did not answer"
        return self.result


def test_race_stop_during_start_stops_the_generation_and_keeps_history_consistent(
    bridge: BridgeProcess, fake: OpenAIFake
) -> None:
    # The model call is accepted by nothing yet: no byte comes back, the POST is still
    # starting (it waits for the provider) when the stop arrives.
    fake.enqueue([Hang()])
    posting = Streaming(bridge, {"id": "race-start", "message": user("Hello", "u1")})
    posting.start()
    wait_until(lambda: len(fake.requests) == 1, 20, "the model call reached the provider")
    stopped = stop(bridge, "race-start")
    assert stopped["stopped"] is True and stopped["outcome"] == "aborted"
    chunks = posting.finish()
    assert posting.done  # the stream ended cleanly
    types = [c["type"] for c in chunks]
    assert types[0] == "start" and types[-1] == "abort"
    assert not any(c["type"] == "text-delta" for c in chunks)
    wait_until(lambda: fake.disconnects == 1, 20, "the provider call was cut")
    assert running_generations(bridge) == 0  # never left running
    state = messages_of(bridge, "race-start")
    assert state["activeGenerationId"] is None
    # The user message stays; an answer with nothing in it is not stored.
    assert [(m["role"], m["id"]) for m in state["messages"]] == [("user", "u1")]
    # The chat takes its next turn at once.
    fake.enqueue([Text("Hi again.")])
    again = Streaming(bridge, {"id": "race-start", "message": user("Again", "u2")})
    again.start()
    assert "".join(c.get("delta", "") for c in again.finish()) == "Hi again."
    assert [
        m["id"] for m in messages_of(bridge, "race-start")["messages"] if m["role"] == "user"
    ] == [
        "u1",
        "u2",
    ]


def test_race_stop_keeps_the_partial_answer_in_history(
    bridge: BridgeProcess, fake: OpenAIFake
) -> None:
    fake.enqueue([Text(["Partial ", "answer"]), Hang()])
    posting = Streaming(bridge, {"id": "race-partial", "message": user("Tell me", "u1")})
    posting.start()
    wait_until(
        lambda: "".join(c.get("delta", "") for c in list(posting.chunks)) == "Partial answer",
        20,
        "the partial answer streamed",
    )
    stopped = stop(bridge, "race-partial")
    assert stopped["outcome"] == "aborted"
    chunks = posting.finish()
    assert chunks[-1]["type"] == "abort"
    state = messages_of(bridge, "race-partial")
    assert state["activeGenerationId"] is None
    assistant = state["messages"][1]
    assert assistant["role"] == "assistant"
    assert "".join(p.get("text", "") for p in assistant["parts"] if p["type"] == "text") == (
        "Partial answer"
    )
    # A reload replays the same partial answer from the log, ending with its abort.
    replay = httpx.get(
        f"{bridge.url}/api/chat/race-partial/stream",
        params={"generation": stopped["generationId"], "cursor": "-1"},
        headers=AUTH,
    )
    events = [e.data for e in SSEParser().feed(replay.content) if e.data is not None]
    replayed = [orjson.loads(data) for data in events if data != "[DONE]"]
    assert "".join(c.get("delta", "") for c in replayed) == "Partial answer"
    assert replayed[-1]["type"] == "abort" and events[-1] == "[DONE]"


def _approval_turn(bridge: BridgeProcess, fake: OpenAIFake, chat_id: str) -> dict[str, Any]:
    """A first turn whose tool call waits for an approval; the stored assistant message."""
    fake.enqueue([ToolCall("delete_file", '{"path": "notes.txt"}')])
    posting = Streaming(bridge, {"id": chat_id, "message": user("Delete notes", "u1")})
    posting.start()
    chunks = posting.finish()
    assert "tool-approval-request" in [c["type"] for c in chunks]
    assistant: dict[str, Any] = messages_of(bridge, chat_id)["messages"][1]
    return assistant


def _answered(assistant: dict[str, Any], approved: bool) -> dict[str, Any]:
    """The device's copy of the message with the approval answered (as useChat sends it)."""
    parts = []
    for part in assistant["parts"]:
        if part.get("state") == "approval-requested":
            part = {
                **part,
                "state": "approval-responded",
                "approval": {**part["approval"], "approved": approved},
            }
        parts.append(part)
    return {**assistant, "parts": parts}


def post(bridge: BridgeProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{bridge.url}/api/chat", json=body, headers=AUTH, timeout=60)


def test_race_approval_answered_on_another_device_several_turns_later_is_409(
    bridge: BridgeProcess, fake: OpenAIFake
) -> None:
    chat_id = "race-approval-late"
    assistant = _approval_turn(bridge, fake, chat_id)
    # Another device goes on chatting without answering: two more turns.
    for text, message_id in (("Never mind", "u2"), ("Something else", "u3")):
        fake.enqueue([Text(f"Answer to {text}.")])
        response = post(bridge, {"id": chat_id, "message": user(text, message_id)})
        assert response.status_code == 200
    before = messages_of(bridge, chat_id)["messages"]
    assert [m["role"] for m in before] == ["user", "assistant"] * 3
    calls = len(fake.requests)
    # The first device, reloaded long ago, now answers the old approval: both body shapes.
    stale = _answered(assistant, approved=True)
    stock = {
        "id": chat_id,
        "messages": [user("Delete notes", "u1"), stale],
        "trigger": "submit-message",
    }
    for body in (stock, {"id": chat_id, "message": stale}):
        response = post(bridge, body)
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "history_conflict"
    # Nothing ran: no model call, no tool, the stored history as it was.
    assert len(fake.requests) == calls
    after = messages_of(bridge, chat_id)
    assert after["messages"] == before and after["activeGenerationId"] is None


def test_race_approval_pending_is_applied_once_from_any_device(
    bridge: BridgeProcess, fake: OpenAIFake
) -> None:
    chat_id = "race-approval-pending"
    assistant = _approval_turn(bridge, fake, chat_id)
    # A second device (only the answered message: `{id, message}`) answers it: applied.
    fake.enqueue([Text("Deleted it.")])
    response = post(bridge, {"id": chat_id, "message": _answered(assistant, approved=True)})
    assert response.status_code == 200
    stored = messages_of(bridge, chat_id)["messages"]
    assert len(stored) == 2 and stored[1]["id"] == assistant["id"]
    tool = next(p for p in stored[1]["parts"] if p["type"] == "tool-delete_file")
    assert tool["state"] == "output-available"
    calls = len(fake.requests)
    # The first device answers the same approval afterwards (denying it): the stored copy
    # says it was answered, so 409, and the tool's result stands.
    late = post(
        bridge,
        {
            "id": chat_id,
            "messages": [user("Delete notes", "u1"), _answered(assistant, approved=False)],
            "trigger": "submit-message",
        },
    )
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "approval_already_answered"
    assert len(fake.requests) == calls
    assert messages_of(bridge, chat_id)["messages"] == stored


def test_race_stop_while_the_answer_begins_stops_what_it_begins(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    """The narrowest case: the stop reads the chat while the POST has not begun its
    generation yet (held inside the store's begin; a pause only a wrapped store can place
    exactly, so this one runs in the test's process): the stop waits for that start and
    stops what it began, instead of answering that nothing ran and letting it run."""
    store = FaultyStore(MemoryStore())
    settings = openai_settings(openai_fake, bridge_auth_tokens=["races-token:alice"])
    server = bridge_factory(store=store, **settings)
    openai_fake.enqueue([Text("Should never be read to the end"), Hang()])
    beginning, release = threading.Event(), threading.Event()
    reads_while_held: list[str] = []

    async def hold() -> None:
        beginning.set()
        await anyio.to_thread.run_sync(release.wait, 30.0)

    def observe(method: str, args: tuple[Any, ...]) -> None:
        if method == "get_chat" and beginning.is_set() and not release.is_set():
            reads_while_held.append(method)

    store.before("begin_generation", hold)
    store.observer = observe
    posting = Streaming(server, {"id": "race-begin", "message": user("Hello", "u1")})
    posting.start()
    assert beginning.wait(10)
    stopping = Stopping(server, "race-begin")
    stopping.start()
    # The stop's gate and the stop itself read the chat: nothing is active yet.
    wait_until(lambda: len(reads_while_held) >= 2, 10, "the stop read the chat")
    release.set()
    stopped = stopping.finish()
    assert stopped["stopped"] is True and stopped["outcome"] == "aborted"
    chunks = posting.finish()
    assert chunks[-1]["type"] == "abort"
    assert stopped["generationId"] == posting.generation_id
    state = messages_of(server, "race-begin")
    assert state["activeGenerationId"] is None
    assert [(m["role"], m["id"]) for m in state["messages"]][:1] == [("user", "u1")]
