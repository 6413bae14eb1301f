"""A taken-over step read again from the response OpenAI kept (Responses background mode,
BRIDGE_MODEL_OPTIONS `background`), against real `python -m bridge` processes on one SQLite
file and the OpenAI fake: the first producer is killed mid-answer, the next process takes it
over at start-up and streams the same response again by its id (GET
/v1/responses/{id}?stream=true); the client gets the rest with no `reset-step`, the text
exact (a reasoning part before the text included), and the fake was asked for one
generation only. Without the option the step is re-run, as before."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Reasoning, Text
from tests.support.bridge_process import BridgeProcess
from tests.test_prefill_takeover import (
    ANSWER,
    WORDS,
    _folded,
    _read_until_deltas,
    _resume,
    sqlite_processes,
)

MODEL = "openai:gpt-test"


@pytest.fixture
def launch(tmp_path: Path, fake: OpenAIFake) -> Iterator[Any]:
    yield from sqlite_processes(
        tmp_path,
        {
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": fake.base_url,
            "ANTHROPIC_API_KEY": "",
            "BRIDGE_MODEL": MODEL,
        },
    )


def _kill_mid_answer(launch: Any, chat_id: str, **settings: str) -> tuple[list[Any], Any]:
    doomed: BridgeProcess = launch(**settings)
    first = [e for e in _read_until_deltas(doomed, chat_id, 20) if e[1] != "[DONE]"]
    doomed.signal(signal.SIGKILL)
    doomed.wait_exit(60)
    survivor: BridgeProcess = launch(**settings)
    resumed, chat = _resume(survivor, chat_id, first)
    return first + resumed, chat


def test_reattach_takeover_reads_the_same_response_again(launch: Any, fake: OpenAIFake) -> None:
    fake.enqueue([Text(WORDS)], token_delay=0.01)
    background = {"BRIDGE_MODEL_OPTIONS": orjson.dumps({MODEL: {"background": True}}).decode()}
    events, chat = _kill_mid_answer(launch, "reattached", **background)
    chunks, text = _folded(events)

    types = [c["type"] for c in chunks]
    assert chunks[-1] == {**chunks[-1], "type": "finish", "finishReason": "stop"}
    assert "reset-step" not in types and "error" not in types
    assert types.count("text-start") == 1 and types.count("text-end") == 1
    assert types.count("start-step") == 1
    assert text == ANSWER
    stored = chat["messages"][-1]
    assert [p["type"] for p in stored["parts"]] == ["step-start", "text"]
    assert stored["parts"][1]["text"] == ANSWER
    # One generation upstream, in background mode; the survivor read it again by id.
    posts = [r for r in fake.requests if r.method == "POST"]
    gets = [r for r in fake.requests if r.method == "GET"]
    assert len(posts) == 1 and posts[0].body["background"] is True
    (response_id,) = fake.background_streams
    assert [g.path for g in gets] == [f"/v1/responses/{response_id}"] and fake.retrievals == 1
    # The marker naming the response is transient: not part of the stored message.
    marks = [c for c in chunks if c["type"] == "data-provider-response"]
    assert marks == [
        {
            "type": "data-provider-response",
            "id": response_id,
            "data": {"responseId": response_id},
            "transient": True,
        }
    ]


def test_reattach_takeover_without_background_reruns_the_step(
    launch: Any, fake: OpenAIFake
) -> None:
    for _ in range(2):
        fake.enqueue([Text(WORDS)], token_delay=0.01)
    events, _chat = _kill_mid_answer(launch, "rerun")
    chunks, text = _folded(events)

    assert [c["type"] for c in chunks].count("reset-step") == 1
    assert "data-provider-response" not in [c["type"] for c in chunks]
    assert text == ANSWER
    assert [r.method for r in fake.requests] == ["POST", "POST"]
    assert "background" not in fake.requests[0].body


def test_reattach_takeover_keeps_a_step_with_reasoning_whole(launch: Any, fake: OpenAIFake) -> None:
    # A step a prefill could not continue (a reasoning summary before the text): read
    # again all the same, each part once.
    fake.enqueue(
        [Reasoning("Thinking it over.", encrypted_content="enc-1"), Text(WORDS)],
        token_delay=0.01,
    )
    background = {"BRIDGE_MODEL_OPTIONS": orjson.dumps({MODEL: {"background": True}}).decode()}
    events, chat = _kill_mid_answer(launch, "reasoned", **background)
    chunks, text = _folded(events)

    types = [c["type"] for c in chunks]
    assert chunks[-1]["type"] == "finish" and "reset-step" not in types
    assert types.count("reasoning-start") == 1 and types.count("reasoning-end") == 1
    assert types.count("text-start") == 1
    assert text == ANSWER
    parts = chat["messages"][-1]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "reasoning", "text"]
    assert parts[1]["text"] == "Thinking it over." and parts[2]["text"] == ANSWER
    assert [r.method for r in fake.requests] == ["POST", "GET"]
