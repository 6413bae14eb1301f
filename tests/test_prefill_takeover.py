"""A taken-over answer continued from its partial text (an assistant prefill) instead of
re-run, against real `python -m bridge` processes (on one SQLite file, or two on one Redis)
and the Anthropic fake: the first producer is killed (SIGKILL) or drained (SIGTERM)
mid-answer, the next process takes it over (at start-up, or when the client's resume reaches
it), asks the model to continue the logged text, and the client gets the rest in the same
text part: no `reset-step`, the text exact, and the fake
received a prefill, not a second full generation. Where the model cannot be prefilled
(extended thinking on), the step is re-run as before."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from protocol.assembler import MessageAssembler
from protocol.chunks import parse_chunk
from protocol.sse import SSEParser
from tests.bridge_server import chat_body, sse_events
from tests.fakes.anthropic_server import AnthropicFake, prefill_text
from tests.fakes.server import Text
from tests.support.bridge_process import BridgeProcess
from tests.support.redis import RedisServer

AUTH = {"authorization": "Bearer prefill-token", "x-ai-sdk-level": "7"}
WORDS = [f"w{i} " for i in range(300)]
ANSWER = "".join(WORDS)


@pytest.fixture
def claude() -> Iterator[AnthropicFake]:
    with AnthropicFake(api_key="test-key") as server:
        yield server  # type: ignore[misc]


def sqlite_processes(tmp_path: Path, settings: dict[str, str]) -> Iterator[Any]:
    """A fixture's body: bridge processes on one data directory, one after the other
    (`start(**extra)`), closed at the end."""
    processes: list[BridgeProcess] = []
    settings = {
        "BRIDGE_DATA_DIR": str(tmp_path / "data"),
        "BRIDGE_AUTH_TOKENS": "prefill-token:alice",
        **settings,
    }

    def start(**extra: str) -> BridgeProcess:
        process = BridgeProcess({**settings, **extra}, name=str(len(processes)), workdir=tmp_path)
        processes.append(process)
        process.spawn().wait_settled()
        assert process.started, process.output()
        return process

    yield start
    for process in processes:
        process.close()


@pytest.fixture
def launch(tmp_path: Path, claude: AnthropicFake) -> Iterator[Any]:
    yield from sqlite_processes(
        tmp_path,
        {
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": claude.url,
            "OPENAI_API_KEY": "",
            "BRIDGE_MODEL": "anthropic:claude-test",
            "BRIDGE_DRAIN_SECONDS": "0",
        },
    )


def _read_until_deltas(process: BridgeProcess, chat_id: str, count: int) -> list[Any]:
    """POST the turn and read its stream until `count` text deltas came; the events read."""
    events: list[Any] = []
    with (
        httpx.Client(base_url=process.url, timeout=60, headers=AUTH) as client,
        client.stream("POST", "/api/chat", json=chat_body(chat_id, "long")) as response,
    ):
        assert response.status_code == 200
        parser = SSEParser()
        for data in response.iter_bytes():
            events += [(e.id, e.data) for e in parser.feed(data) if e.data is not None]
            if sum('"text-delta"' in data for _, data in events) >= count:
                break
    return events


def _resume(process: BridgeProcess, chat_id: str, first: list[Any]) -> tuple[list[Any], Any]:
    """Resume after the last offset the client holds; the events and the stored chat."""
    with httpx.Client(base_url=process.url, timeout=60, headers=AUTH) as client:
        replay = client.get(f"/api/chat/{chat_id}/stream", headers={"last-event-id": first[-1][0]})
        assert replay.status_code == 200
        events = sse_events(replay)
        chat = client.get(f"/api/chat/{chat_id}/messages").json()
    return events, chat


def _folded(events: list[Any]) -> tuple[list[dict[str, Any]], str]:
    """The chunks as the client holds them (every offset once, in order) and its text."""
    offsets = [int(offset) for offset, data in events if data != "[DONE]"]
    assert offsets == list(range(len(offsets))), offsets
    chunks = [orjson.loads(data) for _, data in events if data != "[DONE]"]
    assembler = MessageAssembler()
    for _, data in events:
        if data != "[DONE]":
            assembler.apply(parse_chunk(data))
    parts = assembler.message.parts
    return chunks, "".join(getattr(p, "text", "") for p in parts if p.type == "text")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_prefill_takeover_continues_the_text_without_reset(
    launch: Any, claude: AnthropicFake, how: signal.Signals
) -> None:
    for _ in range(3):  # each model call gets the whole script; a prefill skips its start
        claude.enqueue([Text(WORDS)], token_delay=0.01)
    first_process: BridgeProcess = launch()
    first = _read_until_deltas(first_process, "prefilled", 20)
    first_process.signal(how)
    assert first_process.wait_exit(60) in (0, -signal.SIGKILL, -signal.SIGTERM)

    survivor: BridgeProcess = launch()
    resumed, chat = _resume(survivor, "prefilled", [e for e in first if e[1] != "[DONE]"])
    chunks, text = _folded([e for e in first if e[1] != "[DONE]"] + resumed)

    assert resumed[-1][1] == "[DONE]"
    assert chunks[-1] == {**chunks[-1], "type": "finish", "finishReason": "stop"}
    types = [c["type"] for c in chunks]
    assert "reset-step" not in types and "error" not in types
    # One text part, one step: the continuation went on in the part the client had open.
    assert types.count("text-start") == 1 and types.count("text-end") == 1
    assert types.count("start-step") == 1 and types.count("finish-step") == 1
    assert text == ANSWER
    stored = chat["messages"][-1]
    assert [p["type"] for p in stored["parts"]] == ["step-start", "text"]
    assert stored["parts"][1]["text"] == ANSWER and stored["parts"][1]["state"] == "done"
    assert chat["activeGenerationId"] is None
    # Two model calls: the answer, then its continuation from the logged text.
    assert len(claude.requests) == 2 and claude.prefills == 1
    prefill = prefill_text(claude.requests[1].body)
    assert prefill and ANSWER.startswith(prefill) and prefill == prefill.rstrip()
    assert len(prefill) < len(ANSWER)


def test_prefill_takeover_with_thinking_reruns_the_step(launch: Any, claude: AnthropicFake) -> None:
    # With extended thinking on, the API refuses a prefill: the step is re-run after
    # `reset-step`, though its output so far is text only.
    for _ in range(3):
        claude.enqueue([Text(WORDS)], token_delay=0.01)
    options = {"anthropic:claude-test": {"thinking_budget": 1024}}
    settings = {"BRIDGE_MODEL_OPTIONS": orjson.dumps(options).decode()}
    first_process: BridgeProcess = launch(**settings)
    first = _read_until_deltas(first_process, "thinking", 20)
    first_process.signal(signal.SIGKILL)
    first_process.wait_exit(60)

    survivor: BridgeProcess = launch(**settings)
    resumed, chat = _resume(survivor, "thinking", [e for e in first if e[1] != "[DONE]"])
    chunks, text = _folded([e for e in first if e[1] != "[DONE]"] + resumed)

    assert chunks[-1]["type"] == "finish"
    assert [c["type"] for c in chunks].count("reset-step") == 1
    assert text == ANSWER
    stored = chat["messages"][-1]["parts"]
    assert "".join(p.get("text", "") for p in stored if p["type"] == "text") == ANSWER
    assert len(claude.requests) == 2 and claude.prefills == 0


@pytest.mark.redis
def test_prefill_takeover_by_a_reader_on_redis_continues_the_text(
    bridge_processes: Any, redis_server: RedisServer, claude: AnthropicFake
) -> None:
    # Two processes on one Redis: the client resuming on the survivor is what notices the
    # dead producer and takes the answer over there (no sweep).
    for _ in range(3):
        claude.enqueue([Text(WORDS)], token_delay=0.01)
    env = {
        "REDIS_URL": redis_server.url,
        "BRIDGE_KEY_PREFIX": f"p{uuid.uuid4().hex[:8]}",
        "BRIDGE_AUTH_TOKENS": "prefill-token:alice",
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": claude.url,
        "OPENAI_API_KEY": "",
        "BRIDGE_MODEL": "anthropic:claude-test",
        "BRIDGE_LEASE_SECONDS": "1",
        "BRIDGE_HEARTBEAT_SECONDS": "0.5",
        "BRIDGE_TAKEOVER_SWEEP_SECONDS": "0",
    }
    doomed: BridgeProcess = bridge_processes(**env)
    survivor: BridgeProcess = bridge_processes(**env)
    first = [e for e in _read_until_deltas(doomed, "redis-prefill", 20) if e[1] != "[DONE]"]
    doomed.signal(signal.SIGKILL)
    doomed.wait_exit(30)
    resumed, chat = _resume(survivor, "redis-prefill", first)
    chunks, text = _folded(first + resumed)

    types = [c["type"] for c in chunks]
    assert chunks[-1]["type"] == "finish" and "reset-step" not in types
    assert types.count("text-start") == 1
    assert text == ANSWER
    assert chat["messages"][-1]["parts"][1]["text"] == ANSWER
    assert len(claude.requests) == 2 and claude.prefills == 1
