"""Steering with the AI SDK 7 semantics and within the chat's limits: every message ends with an
outcome (delivered at a step, or not delivered with the SDK's reason) readable from the steer
endpoint, its GET and the log; a retry with the same id is idempotent; the interrupt rule
(never a running tool, a model call only before its first output); steering counts against
the history size and JSON depth limits, never reuses a history message id, and follow-up
turns pass the generation limits."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import orjson
import pytest

from tests import gated_tools
from tests.bridge_server import BridgeFactory, chat_body, openai_settings, sse_events
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Delay, Hang, LiveServer, ParallelToolCalls, Text, ToolCall
from tests.test_steering import (
    TOOLS,
    Posting,
    gate_name,
    input_roles,
    part_types,
    steer,
    steering_body,
    stored,
    types_of,
)

LEVEL_7 = {"x-ai-sdk-level": "7"}


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, openai_fake: OpenAIFake) -> LiveServer:
    return bridge_factory(**openai_settings(openai_fake, bridge_tools=TOOLS))


def outcome(server: LiveServer, chat_id: str, steering_id: str, wait: float = 0) -> httpx.Response:
    return httpx.get(
        f"{server.url}/api/chat/{chat_id}/steer/{steering_id}", params={"wait": wait}, timeout=40
    )


class Watching(Posting):
    """A POST whose stream sets `second_step` at its second `start-step` (with `headers`)."""

    def __init__(
        self, server: LiveServer, chat_id: str, text: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(server, chat_id, text)
        self.second_step = threading.Event()
        self.headers = headers or {}

    def run(self) -> None:
        from protocol.sse import SSEParser

        parser = SSEParser()
        with httpx.stream(
            "POST", self.url, json=self.body, headers=self.headers, timeout=30
        ) as response:
            self.status = response.status_code
            for piece in response.iter_bytes():
                for event in parser.feed(piece):
                    if event.data is None or event.data == "[DONE]":
                        continue
                    chunk = orjson.loads(event.data)
                    self.chunks.append(chunk)
                    if chunk["type"] == "text-delta":
                        self.texted.set()
                    if types_of(self.chunks).count("start-step") == 2:
                        self.second_step.set()


def test_steering_outcome_delivered_with_its_step_and_idempotent_retry(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    gate = gate_name()
    openai_fake.enqueue(
        [Text("Checking."), ToolCall("hold", orjson.dumps({"gate": gate}).decode())]
    )
    openai_fake.enqueue([Text("Short answer.")])
    posting = Posting(bridge, "outcome-ok", "Tell me everything")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    first = steer(bridge, "outcome-ok", steering_body("Be brief", message_id="st-1"))
    assert first.status_code == 202, first.text
    assert first.json()["state"] == "queued"
    assert first.json()["outcome"] is None
    # A retry (same id, same content) changes nothing: its record, 200, nothing pushed twice.
    retry = steer(bridge, "outcome-ok", steering_body("Be brief", message_id="st-1"))
    assert retry.status_code == 200
    assert retry.json()["steeringId"] == "st-1"
    gated_tools.open_gate(gate)
    chunks = posting.finish()
    assert [c["id"] for c in chunks if c["type"] == "steering-message"] == ["st-1"]
    assert input_roles(openai_fake.requests[1].json)[-1] == ("user", "Be brief")

    answer = outcome(bridge, "outcome-ok", "st-1").json()
    assert answer["state"] == "delivered"
    # Step 0 ran the tool; step 1's model call received the message.
    assert answer["outcome"] == {"type": "delivered", "id": "st-1", "stepNumber": 1}
    again = steer(bridge, "outcome-ok", steering_body("Be brief", message_id="st-1"))
    assert again.status_code == 200
    assert again.json()["outcome"] == answer["outcome"]
    assert outcome(bridge, "outcome-ok", "nope").status_code == 404


def test_steering_outcome_not_delivered_waiting_for_tool_results_starts_next_turn(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    gate = gate_name()
    openai_fake.enqueue(
        [
            ParallelToolCalls(
                [ToolCall("hold", orjson.dumps({"gate": gate}).decode()), ToolCall("ask_browser")]
            )
        ]
    )
    openai_fake.enqueue([Text("Next turn.")])
    posting = Posting(bridge, "outcome-wait", "Do two things")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    assert (
        steer(bridge, "outcome-wait", steering_body("And this", message_id="st-w")).status_code
        == 202
    )
    # A device waits for the outcome (long-poll on the steer GET).
    waiting: dict[str, httpx.Response] = {}
    waiter = threading.Thread(
        target=lambda: waiting.update(r=outcome(bridge, "outcome-wait", "st-w", wait=20))
    )
    waiter.start()
    gated_tools.open_gate(gate)
    chunks = posting.finish()
    waiter.join(30)
    answer = waiting["r"].json()
    assert answer["outcome"] == {
        "type": "not-delivered",
        "id": "st-w",
        "reason": "waiting-for-tool-results",
    }
    # The log says so too, for every device following it (transient, before the end).
    told = [c for c in chunks if c["type"] == "data-steering-outcome"]
    assert told == [
        {
            "type": "data-steering-outcome",
            "id": "st-w",
            "transient": True,
            "data": {"type": "not-delivered", "id": "st-w", "reason": "waiting-for-tool-results"},
        }
    ]
    # The message became the next turn; its record names it.
    live = httpx.get(f"{bridge.url}/api/chat/outcome-wait/stream", headers=LEVEL_7, timeout=30)
    assert "Next turn." in live.text
    later = outcome(bridge, "outcome-wait", "st-w").json()
    assert later["nextTurn"] == live.headers["x-bridge-generation-id"]


def test_steering_outcome_not_delivered_aborted_on_stop(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    gate = gate_name()
    openai_fake.enqueue([ToolCall("hold", orjson.dumps({"gate": gate}).decode())])
    posting = Posting(bridge, "outcome-stop", "Go")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    assert (
        steer(bridge, "outcome-stop", steering_body("Never mind", message_id="st-s")).status_code
        == 202
    )
    stopped = httpx.post(
        f"{bridge.url}/api/chat/outcome-stop/stop",
        headers={"content-type": "application/json"},
        content=b"{}",
        timeout=30,
    )
    assert stopped.status_code == 200
    gated_tools.open_gate(gate)
    posting.join(30)
    answer = outcome(bridge, "outcome-stop", "st-s").json()
    assert answer["outcome"] == {"type": "not-delivered", "id": "st-s", "reason": "aborted"}
    assert "nextTurn" not in answer  # a stop clears the queue
    assert [m["role"] for m in stored(bridge, "outcome-stop")] == ["user", "assistant"]


def test_steering_interrupt_cuts_a_model_call_without_output(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    gate = gate_name()
    openai_fake.enqueue([ToolCall("hold", orjson.dumps({"gate": gate}).decode())])
    openai_fake.enqueue([Hang()])  # the second call produces nothing
    openai_fake.enqueue([Text("Yes.")])
    posting = Watching(bridge, "interrupt-empty", "Explain")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    gated_tools.open_gate(gate)
    assert posting.second_step.wait(10)
    response = steer(bridge, "interrupt-empty", steering_body("Just say yes", "interrupt"))
    assert response.status_code == 202, response.text
    chunks = posting.finish()
    types = types_of(chunks)
    at = types.index("steering-message")
    assert types[at + 1] == "start-step"  # before the step that receives it
    assert types.count("start-step") == 3
    assert chunks[-1]["finishReason"] == "stop"
    assistant = stored(bridge, "interrupt-empty")[-1]
    assert part_types(assistant)[-3:] == ["steering-message", "step-start", "text"]
    assert input_roles(openai_fake.requests[-1].json)[-1] == ("user", "Just say yes")
    answer = outcome(bridge, "interrupt-empty", "s1").json()
    assert answer["outcome"] == {"type": "delivered", "id": "s1", "stepNumber": 2}


def test_steering_interrupt_never_cuts_a_model_call_that_has_output(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text("A long and winding"), Delay(1.5), Text(" answer.")])
    openai_fake.enqueue([Text("Fine: yes.")])
    posting = Posting(bridge, "interrupt-output", "Explain")
    posting.start()
    assert posting.texted.wait(10)
    response = steer(bridge, "interrupt-output", steering_body("Just say yes", "interrupt"))
    assert response.status_code == 202, response.text
    chunks = posting.finish()
    types = types_of(chunks)
    # The message arrived while the first call was streaming (the test's premise) ...
    assert types.index("data-steering-queued") < types.index("text-end")
    # ... and the call went on to its end: never cut, delivered at the boundary.
    assert openai_fake.disconnects == 0
    assistant = stored(bridge, "interrupt-output")[-1]
    texts = [p["text"] for p in assistant["parts"] if p["type"] == "text"]
    assert texts == ["A long and winding answer.", "Fine: yes."]
    at = types.index("steering-message")
    assert types[at + 1] == "start-step"


def test_steering_interrupt_never_cuts_a_running_tool(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    gate = gate_name()
    openai_fake.enqueue([ToolCall("hold", orjson.dumps({"gate": gate}).decode())])
    openai_fake.enqueue([Text("After the tool.")])
    posting = Posting(bridge, "interrupt-tool", "Go")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    assert steer(bridge, "interrupt-tool", steering_body("Hurry", "interrupt")).status_code == 202
    gated_tools.open_gate(gate)
    chunks = posting.finish()
    outputs = [c for c in chunks if c["type"] == "tool-output-available"]
    assert outputs and outputs[0]["output"] == "released"
    assert input_roles(openai_fake.requests[1].json)[-1] == ("user", "Hurry")


def test_steering_counts_against_the_history_size_limit(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(
        **openai_settings(openai_fake, bridge_tools=TOOLS, bridge_max_history_bytes=20_000)
    )
    gate = gate_name()
    openai_fake.enqueue([ToolCall("hold", orjson.dumps({"gate": gate}).decode())])
    openai_fake.enqueue([Text("Done.")])
    posting = Posting(server, "steer-size", "Go")
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    big = "x" * 8_000
    assert steer(server, "steer-size", steering_body(big, message_id="b1")).status_code == 202
    assert steer(server, "steer-size", steering_body(big, message_id="b2")).status_code == 202
    refused = steer(server, "steer-size", steering_body(big, message_id="b3"))
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    gated_tools.open_gate(gate)
    posting.finish()
    assert outcome(server, "steer-size", "b3").status_code == 404  # never queued


def test_steering_refuses_json_nested_past_the_depth_limit(bridge: LiveServer) -> None:
    nested: Any = "deep"
    for _ in range(80):
        nested = [nested]
    body = steering_body("hi")
    body["extra"] = nested
    response = httpx.post(
        f"{bridge.url}/api/chat/steer-depth/steer",
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "deeper" in response.json()["error"]["message"]


def test_steering_id_of_a_history_message_is_refused_and_never_an_edit(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    gate = gate_name()
    openai_fake.enqueue([Text("First.")])
    first = httpx.post(
        f"{bridge.url}/api/chat", json=chat_body("steer-edit", "first question"), timeout=30
    )
    assert sse_events(first)[-1][1] == "[DONE]"
    openai_fake.enqueue(
        [
            ParallelToolCalls(
                [ToolCall("hold", orjson.dumps({"gate": gate}).decode()), ToolCall("ask_browser")]
            )
        ]
    )
    openai_fake.enqueue([Text("Next.")])
    body = {
        "id": "steer-edit",
        "message": {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "second"}]},
    }
    posting = Posting(bridge, "steer-edit", "unused")
    posting.body = body
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    # "u1" is the first user message of the history: as a follow-up turn it would edit it.
    refused = steer(bridge, "steer-edit", steering_body("edit!", message_id="u1"))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "steering_id_conflict"
    gated_tools.open_gate(gate)
    posting.finish()
    texts = ["".join(p.get("text", "") for p in m["parts"]) for m in stored(bridge, "steer-edit")]
    assert texts[0] == "first question"  # never rewritten
    assert len(texts) == 4


def test_steering_follow_up_turns_count_against_the_generation_limits(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(
        **openai_settings(
            openai_fake,
            bridge_tools=TOOLS,
            bridge_max_generations_per_user=1,
            bridge_auth_tokens=["tok-a:alice"],
        )
    )
    alice = {"authorization": "Bearer tok-a", **LEVEL_7}
    gate = gate_name()
    openai_fake.enqueue(
        [
            ParallelToolCalls(
                [ToolCall("hold", orjson.dumps({"gate": gate}).decode()), ToolCall("ask_browser")]
            )
        ]
    )
    openai_fake.enqueue([Text("Follow-up, then silence"), Hang()])
    posting = Watching(server, "steer-limit", "Go", headers=alice)
    posting.start()
    assert gated_tools.entered(gate).wait(10)
    queued = httpx.post(
        f"{server.url}/api/chat/steer-limit/steer",
        json=steering_body("Later", message_id="st-l"),
        headers=alice,
    )
    assert queued.status_code == 202, queued.text
    gated_tools.open_gate(gate)
    posting.finish()
    # The follow-up turn runs (the ended generation no longer counts) ...
    with httpx.stream(
        "GET", f"{server.url}/api/chat/steer-limit/stream", headers=alice, timeout=30
    ) as live:
        assert live.status_code == 200
        for line in live.iter_lines():
            if "text-delta" in line:
                break
        # ... and holds the user's one slot: another turn of the same user is refused.
        other = httpx.post(
            f"{server.url}/api/chat", json=chat_body("elsewhere", "hi"), headers=alice, timeout=30
        )
        assert other.status_code == 429
        assert other.json()["error"]["code"] == "too_many_generations"
