"""message_to_chunks: a stored message, rebuilt from chunks, by us and by the real client."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.assembler import MessageAssembler
from protocol.chunks import StartChunk, encode_chunk
from protocol.messages import UIMessage
from protocol.replay import message_to_chunks
from tests.node_harness import NodeHarness

MESSAGE: dict[str, Any] = {
    "id": "m1",
    "role": "assistant",
    "metadata": {"model": "demo:scripted"},
    "parts": [
        {"type": "step-start"},
        {"type": "reasoning", "id": "r1", "text": "thinking", "state": "done"},
        {"type": "text", "text": "Let me look.", "state": "done"},
        {
            "type": "tool-get_weather",
            "toolCallId": "c1",
            "state": "output-available",
            "input": {"city": "Paris"},
            "output": {"temp": 21},
        },
        {
            "type": "tool-get_location",
            "toolCallId": "c2",
            "state": "output-available",
            "input": {},
            "output": {"city": "Paris"},
        },
        {
            "type": "tool-broken",
            "toolCallId": "c3",
            "state": "output-error",
            "input": {"x": 1},
            "errorText": "it broke",
        },
        {
            "type": "tool-delete_file",
            "toolCallId": "c4",
            "state": "approval-requested",
            "input": {"path": "/tmp/x"},
            "approval": {"id": "apr1"},
        },
        {
            "type": "tool-delete_file",
            "toolCallId": "c5",
            "state": "approval-responded",
            "input": {"path": "/tmp/y"},
            "approval": {"id": "apr2", "approved": True},
        },
        {
            "type": "tool-delete_file",
            "toolCallId": "c6",
            "state": "output-denied",
            "input": {"path": "/tmp/z"},
            "approval": {"id": "apr3", "approved": False, "reason": "no"},
        },
        {
            "type": "tool-delete_file",
            "toolCallId": "c7",
            "state": "output-available",
            "input": {"path": "/tmp/w"},
            "output": "deleted",
            "approval": {"id": "apr4", "approved": True},
        },
        {
            "type": "dynamic-tool",
            "toolName": "dyn",
            "toolCallId": "c8",
            "state": "output-available",
            "input": {},
            "output": 1,
        },
        {"type": "step-start"},
        {"type": "source-url", "sourceId": "s1", "url": "https://example.org", "title": "Ex"},
        {"type": "data-progress", "id": "p1", "data": {"done": 3}},
        {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AAAA"},
        {"type": "text", "text": "Done.", "state": "done"},
    ],
}


def rebuilt_chunks() -> list[Any]:
    message = UIMessage.model_validate(MESSAGE)
    return [StartChunk(message_id="m1"), *message_to_chunks(message)]


def test_replay_rebuilds_the_message_with_our_assembler() -> None:
    assembler = MessageAssembler()
    for chunk in rebuilt_chunks():
        assembler.apply(chunk)
    assert assembler.message.dump() == UIMessage.model_validate(MESSAGE).dump()


def test_replay_never_sends_input_available_for_settled_tools() -> None:
    settled = {"c1", "c2", "c3", "c8"}
    for chunk in rebuilt_chunks():
        if chunk.type == "tool-input-available":
            assert chunk.tool_call_id not in settled


@pytest.mark.node
def test_replay_rebuilds_the_message_in_the_real_client(node: NodeHarness) -> None:
    import orjson

    chunks = [orjson.loads(encode_chunk(chunk)) for chunk in rebuilt_chunks()]
    result = node.fold_chunks(chunks)
    assert result["final"] == UIMessage.model_validate(MESSAGE).dump()
