"""A real bridge process (`python -m bridge`) on the default SQLite store, killed with SIGKILL
and started again on the same data directory: chats, histories and logs are still there, the
generation that was running is closed by the start-up sweep, and a second process on the
same directory is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from protocol.sse import SSEParser
from tests.bridge_server import chat_body, sse_events
from tests.support.bridge_process import BridgeProcess, BridgeProcesses

TOKEN_DELAY_MS = "20"


@pytest.fixture
def launch(tmp_path: Path, bridge_processes: BridgeProcesses) -> Any:
    """Start `python -m bridge` processes on one data directory (killed at the end)."""
    settings = {
        "BRIDGE_DATA_DIR": str(tmp_path / "data"),
        # One user across both processes (anonymous identities are per browser).
        "BRIDGE_AUTH_TOKENS": "restart-token:alice",
        "BRIDGE_DEMO_TOKEN_DELAY_MS": TOKEN_DELAY_MS,
    }

    def start(*, expect_start: bool = True) -> BridgeProcess:
        bridge = bridge_processes.settled(**settings)
        if expect_start:
            assert bridge.started, bridge.output()
        return bridge

    return start


AUTH = {"authorization": "Bearer restart-token"}


def _text_of(message: dict[str, Any]) -> str:
    return "".join(part["text"] for part in message["parts"] if part["type"] == "text")


def _deltas(events: list[tuple[str | None, str]]) -> str:
    chunks = [orjson.loads(data) for _, data in events if data != "[DONE]"]
    return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")


def test_sqlite_bridge_restart_keeps_chats_and_takes_the_interrupted_answer_over(
    launch: Any,
) -> None:
    first: BridgeProcess = launch()
    with httpx.Client(base_url=first.url, timeout=60, headers=AUTH) as client:
        done = client.post("/api/chat", json=chat_body("chat-done", "Hello"))
        assert done.status_code == 200
        done_text = _deltas(sse_events(done))
        assert done_text
        # The same question, answered in full: what the taken-over answer must come to.
        reference = client.post("/api/chat", json=chat_body("chat-ref", "write something long"))
        reference_text = _deltas(sse_events(reference))

        # A long answer, killed with the process once some of it has been streamed.
        seen: list[tuple[str | None, str]] = []
        body = chat_body("chat-cut", "write something long")
        with client.stream("POST", "/api/chat", json=body) as response:
            generation_id = response.headers["x-bridge-generation-id"]
            parser = SSEParser()
            for data in response.iter_bytes():
                seen += [(e.id, e.data) for e in parser.feed(data) if e.data is not None]
                if sum('"text-delta"' in data for _, data in seen) >= 5:
                    break
            first.kill()
    assert seen
    assert not any(data == "[DONE]" for _, data in seen)

    second: BridgeProcess = launch()
    assert "taking it over" in second.output()  # the start-up sweep found it
    with httpx.Client(base_url=second.url, timeout=60, headers=AUTH) as client:
        chats = client.get("/api/chats").json()["chats"]
        assert {chat["id"] for chat in chats} == {"chat-done", "chat-ref", "chat-cut"}

        history = client.get("/api/chat/chat-done/messages").json()
        assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
        assert _text_of(history["messages"][1]) == done_text

        # The answer goes on in the new process: a reader gets it whole, offsets rising.
        # As ai 7 reads it (`client=7`): the takeover's `reset-step` is sent.
        replay = client.get(f"/api/chat/chat-cut/stream?generation={generation_id}&client=7")
        assert replay.status_code == 200
        events = sse_events(replay)
        assert events[-1][1] == "[DONE]"
        offsets = [int(event_id) for event_id, _ in events[:-1] if event_id is not None]
        assert offsets == sorted(set(offsets))
        chunks = [orjson.loads(data) for _, data in events[:-1]]
        assert "reset-step" in [chunk["type"] for chunk in chunks]
        assert chunks[-1]["type"] == "finish" and chunks[-1]["finishReason"] == "stop"

        cut = client.get("/api/chat/chat-cut/messages").json()
        assert cut["activeGenerationId"] is None
        assert [m["role"] for m in cut["messages"]] == ["user", "assistant"]
        assert _text_of(cut["messages"][1]) == reference_text

        # The chat takes a new turn at once.
        again = client.post("/api/chat", json=chat_body("chat-cut", "Hello again"))
        assert again.status_code == 200


def test_sqlite_bridge_second_process_on_the_same_data_dir_is_refused(launch: Any) -> None:
    first: BridgeProcess = launch()

    second: BridgeProcess = launch(expect_start=False)

    assert second.wait_exit() != 0
    assert not second.started
    assert "in use by another process" in second.output()
    assert f"pid {first.pid}" in second.output()
    with httpx.Client(base_url=first.url, timeout=60, headers=AUTH) as client:
        assert client.get("/healthz").json()["store"] == "sqlite"
