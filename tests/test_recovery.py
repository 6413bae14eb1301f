"""Bounded, visible recovery, against real `python -m bridge` processes on one SQLite file: a
producer that crashes every time is taken over until BRIDGE_RECOVERY_MAX_TAKEOVERS, then
ended cleanly (`data-recovering` failed, `error`, `finish`, stored); rolling SIGTERMs during
one answer still end in the whole answer, every takeover announced by `data-recovering`."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from protocol.sse import SSEParser
from tests.bridge_server import chat_body, sse_events
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Text, ToolCall
from tests.support.bridge_process import BridgeProcess, BridgeProcesses

AUTH = {"authorization": "Bearer recovery-token", "x-ai-sdk-level": "7"}
MARK = "could not be completed"


@pytest.fixture
def launch(
    bridge_processes: BridgeProcesses, tmp_path: Path, fake: OpenAIFake
) -> Callable[..., BridgeProcess]:
    """Start bridge processes on one data directory (one after the other); each is returned
    once it started or exited."""
    settings = {
        "BRIDGE_DATA_DIR": str(tmp_path / "data"),
        "BRIDGE_AUTH_TOKENS": "recovery-token:alice",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.base_url,
        "BRIDGE_MODEL": "openai:gpt-test",
    }
    return lambda **extra: bridge_processes.settled(**{**settings, **extra})


def _chunks(events: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    return [orjson.loads(data) for _, data in events if data != "[DONE]"]


def _recovering(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["data"] for c in chunks if c["type"] == "data-recovering"]


def test_recovery_cap_ends_a_producer_that_crashes_every_time(
    launch: Any, fake: OpenAIFake
) -> None:
    fake.enqueue([Text("Let me crash."), ToolCall("crash", "{}")])
    settings = {"BRIDGE_TOOLS": "tests.crash_tools", "BRIDGE_RECOVERY_MAX_TAKEOVERS": "2"}
    first: BridgeProcess = launch(**settings)
    assert first.started, first.output()
    with (
        httpx.Client(base_url=first.url, timeout=60, headers=AUTH) as client,
        contextlib.suppress(httpx.TransportError),
    ):
        client.post("/api/chat", json=chat_body("crashing", "crash please"))
    assert first.wait_exit(30) == 17  # the tool took the process down

    # Each next process takes the answer over at start-up, runs the tool again, dies.
    exits = []
    survivor: BridgeProcess | None = None
    for _ in range(4):
        process: BridgeProcess = launch(**settings)
        if process.wait_line(MARK, 60):  # else the process exited
            survivor = process
            break
        exits.append(process.wait_exit(30))
    assert exits == [17, 17]
    assert survivor is not None, "the cap did not end the crashing answer"
    assert survivor.started, survivor.output()
    assert survivor.returncode is None

    with httpx.Client(base_url=survivor.url, timeout=60, headers=AUTH) as client:
        chat = client.get("/api/chat/crashing/messages").json()
        assert chat["activeGenerationId"] is None
        assistant = chat["messages"][-1]
        assert assistant["role"] == "assistant"
        assert [p["type"] for p in assistant["parts"]][:2] == ["step-start", "text"]
        replay = client.get("/api/chat/crashing/stream", params={"cursor": "-1"})
        assert replay.status_code == 200  # ended just now: within the resume grace period
        events = sse_events(replay)
    chunks = _chunks(events)
    # Each takeover's chunk, then its producer's `resumed` (which then crashed again).
    assert [(d["phase"], d.get("attempt")) for d in _recovering(chunks)] == [
        ("recovering", 1),
        ("resumed", None),
        ("recovering", 2),
        ("resumed", None),
        ("failed", 3),
    ]
    # Cut inside the tool step: the step is closed too.
    assert [c["type"] for c in chunks[-3:]] == ["error", "finish-step", "finish"]
    assert "lost 2 times" in chunks[-3]["errorText"]
    assert chunks[-1] == {**chunks[-1], "type": "finish", "finishReason": "error"}
    assert events[-1][1] == "[DONE]"
    assert len(fake.requests) == 1  # the model was never asked again


def test_recovery_rolling_sigterms_during_one_answer_still_complete(
    launch: Any, fake: OpenAIFake
) -> None:
    words = [f"w{i} " for i in range(400)]
    # Every producer's model call streams the answer from its start (a takeover re-runs
    # the step); each gets the whole script, paced so a SIGTERM lands mid-answer.
    for _ in range(12):
        fake.enqueue([Text(words)], token_delay=0.01)
    terms = 10
    settings = {"BRIDGE_DRAIN_SECONDS": "0"}
    process: BridgeProcess = launch(**settings)
    assert process.started, process.output()
    generation_id = ""
    with (
        httpx.Client(base_url=process.url, timeout=60, headers=AUTH) as client,
        client.stream("POST", "/api/chat", json=chat_body("rolling", "long")) as response,
    ):
        generation_id = response.headers["x-bridge-generation-id"]
        parser = SSEParser()
        deltas = 0
        for data in response.iter_bytes():
            deltas += sum('"text-delta"' in (e.data or "") for e in parser.feed(data))
            if deltas >= 20:
                break
    for round_number in range(terms):
        process.terminate()
        assert process.wait_exit(60) in (0, -signal.SIGTERM), process.output()
        process = launch(**settings)
        assert process.started, process.output()
        if round_number == terms - 1:
            break
        # Wait until the new producer has streamed some more, then SIGTERM it too.
        with httpx.Client(base_url=process.url, timeout=60, headers=AUTH) as client:
            read = client.get(
                "/api/chat/rolling/poll",
                params={"generation": generation_id, "cursor": "-1", "wait": "5"},
            )
            assert read.status_code == 200, read.text
            seen = len(read.json()["chunks"])
            read = client.get(
                "/api/chat/rolling/poll",
                params={"generation": generation_id, "cursor": str(seen - 1), "wait": "5"},
            )
            assert read.json()["chunks"], "the taken-over answer did not go on"

    with httpx.Client(base_url=process.url, timeout=120, headers=AUTH) as client:
        replay = client.get(
            "/api/chat/rolling/stream", params={"generation": generation_id, "cursor": "-1"}
        )
        chunks = _chunks(sse_events(replay))
        messages = client.get("/api/chat/rolling/messages").json()["messages"]
    assert chunks[-1]["type"] == "finish" and chunks[-1]["finishReason"] == "stop"
    phases = [(d["phase"], d.get("attempt")) for d in _recovering(chunks)]
    assert [p for p in phases if p[0] == "recovering"] == [
        ("recovering", n) for n in range(1, terms + 1)
    ]
    assert "failed" not in [p[0] for p in phases]
    # Each new producer said it produces again, right after its takeover's chunk.
    assert [p[0] for p in phases] == ["recovering", "resumed"] * terms
    text = "".join(p["text"] for p in messages[-1]["parts"] if p["type"] == "text")
    assert text == "".join(words)
