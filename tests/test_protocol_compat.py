"""protocol/compat.py: the chunks an ai 5 / 6 client may receive."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol.chunks import (
    CHUNK_TYPES,
    CustomChunk,
    FinishChunk,
    FinishStepChunk,
    ReasoningDeltaChunk,
    ReasoningFileChunk,
    ReasoningStartChunk,
    ResetStepChunk,
    StartChunk,
    StartStepChunk,
    SteeringMessageChunk,
    TextDeltaChunk,
    TextEndChunk,
    TextStartChunk,
    ToolApprovalRequestChunk,
    ToolApprovalResponseChunk,
    ToolInputDeltaChunk,
    ToolInputStartChunk,
    ToolOutputDeniedChunk,
    UIMessageChunk,
    encode_chunk,
)
from protocol.compat import (
    ChunkAdapter,
    ClientLevel,
    ClientLevelError,
    adapt_chunk,
    adapter_for,
    check_tool_approvals,
    known_chunk_types,
    parse_client_level,
)
from protocol.messages import TextUIPart

AI5, AI6, AI7 = ClientLevel.AI5, ClientLevel.AI6, ClientLevel.AI7
OLD_LEVELS = [AI5, AI6]


def enc(chunk: UIMessageChunk) -> bytes:
    return encode_chunk(chunk)


def decoded(data: bytes | None) -> Any:
    return None if data is None else json.loads(data)


@pytest.mark.parametrize("value", ["5", "6", "7", " 6 "])
def test_parse_client_level_accepts_the_three_majors(value: str) -> None:
    assert parse_client_level(value) == int(value)


@pytest.mark.parametrize("value", ["", "4", "8", "7.0", "ai7", "x" * 100])
def test_parse_client_level_rejects_anything_else_with_a_clear_message(value: str) -> None:
    with pytest.raises(ClientLevelError, match="must be 5, 6 or 7"):
        parse_client_level(value)


def test_known_chunk_types_shrink_with_the_level() -> None:
    assert known_chunk_types(AI7) == CHUNK_TYPES
    assert "reset-step" not in known_chunk_types(AI6)
    assert "tool-approval-request" in known_chunk_types(AI6)
    assert "tool-approval-request" not in known_chunk_types(AI5)
    assert known_chunk_types(AI5) < known_chunk_types(AI6) < known_chunk_types(AI7)


def test_check_tool_approvals_refuses_ai5_and_names_the_tools() -> None:
    with pytest.raises(ClientLevelError, match="delete_file, pay"):
        check_tool_approvals(AI5, ["pay", "delete_file"])
    check_tool_approvals(AI5, [])
    check_tool_approvals(AI6, ["pay"])
    check_tool_approvals(AI7, ["pay"])


COMMON = [
    StartChunk(message_id="m1"),
    StartStepChunk(),
    TextStartChunk(id="t"),
    TextDeltaChunk(id="t", delta='a "quoted" delta'),
    TextEndChunk(id="t"),
    ToolInputStartChunk(tool_call_id="c", tool_name="weather", title="Weather"),
    FinishStepChunk(),
    FinishChunk(finish_reason="stop"),
]


@pytest.mark.parametrize("level", list(ClientLevel))
def test_adapt_chunk_passes_common_chunks_as_the_same_bytes(level: ClientLevel) -> None:
    for chunk in COMMON:
        data = enc(chunk)
        assert adapt_chunk(level, data) is data


@pytest.mark.parametrize(
    "chunk",
    [
        ResetStepChunk(),
        ToolApprovalResponseChunk(approval_id="a", approved=True),
        ReasoningFileChunk(url="data:image/png;base64,AA==", media_type="image/png"),
        CustomChunk(kind="openai.compaction"),
        SteeringMessageChunk(id="s", parts=[TextUIPart(text="shorter please")]),
    ],
)
@pytest.mark.parametrize("level", OLD_LEVELS)
def test_adapt_chunk_drops_types_new_in_7(level: ClientLevel, chunk: UIMessageChunk) -> None:
    assert adapt_chunk(level, enc(chunk)) is None


def test_adapt_chunk_level_7_is_the_identity_even_for_new_types() -> None:
    for chunk in [ResetStepChunk(), ToolApprovalResponseChunk(approval_id="a", approved=False)]:
        data = enc(chunk)
        assert adapt_chunk(AI7, data) is data


@pytest.mark.parametrize("level", OLD_LEVELS)
def test_adapt_chunk_turns_interrupted_into_other(level: ClientLevel) -> None:
    data = enc(FinishChunk(finish_reason="interrupted", message_metadata={"n": 1}))
    assert decoded(adapt_chunk(level, data)) == {
        "type": "finish",
        "finishReason": "other",
        "messageMetadata": {"n": 1},
    }
    # "interrupted" elsewhere (metadata) is left alone
    data = enc(FinishChunk(finish_reason="stop", message_metadata={"why": "interrupted"}))
    assert adapt_chunk(level, data) is data


def test_adapt_chunk_keeps_approvals_for_ai6_and_refuses_them_for_ai5() -> None:
    request = enc(ToolApprovalRequestChunk(approval_id="a1", tool_call_id="c1"))
    assert adapt_chunk(AI6, request) is request
    assert decoded(adapt_chunk(AI5, request)) == {
        "type": "tool-output-error",
        "toolCallId": "c1",
        "errorText": (
            "This tool call needs an approval, which this client (ai 5) cannot give; "
            "it was not run."
        ),
    }


@pytest.mark.parametrize("level", OLD_LEVELS)
def test_adapt_chunk_drops_automatic_approval_requests(level: ClientLevel) -> None:
    data = enc(ToolApprovalRequestChunk(approval_id="a", tool_call_id="c", is_automatic=True))
    assert adapt_chunk(level, data) is None


def test_adapt_chunk_denial_is_an_error_for_ai5_and_unchanged_for_ai6() -> None:
    denied = enc(ToolOutputDeniedChunk(tool_call_id="c9"))
    assert adapt_chunk(AI6, denied) is denied
    assert decoded(adapt_chunk(AI5, denied)) == {
        "type": "tool-output-error",
        "toolCallId": "c9",
        "errorText": "The tool call was denied.",
    }


@pytest.mark.parametrize("level", OLD_LEVELS)
def test_adapt_chunk_reads_the_type_when_it_is_not_written_first(level: ClientLevel) -> None:
    assert adapt_chunk(level, b'{"id":"x","type":"reset-step"}') is None
    data = b'{"data":1,"type":"data-x"}'
    assert adapt_chunk(level, data) is data


# --- the per-reader adapter ------------------------------------------------------------------


def feed_all(adapter: ChunkAdapter, chunks: list[UIMessageChunk]) -> list[tuple[int, Any]]:
    out: list[tuple[int, bytes]] = []
    for offset, chunk in enumerate(chunks):
        out += adapter.feed(offset, enc(chunk))
    out += adapter.close()
    return [(offset, json.loads(data)) for offset, data in out]


RETRIED_STEP: list[UIMessageChunk] = [
    StartChunk(message_id="m"),
    StartStepChunk(),  # 1
    ReasoningStartChunk(id="r"),
    ReasoningDeltaChunk(id="r", delta="hmm"),
    TextStartChunk(id="t"),
    TextDeltaChunk(id="t", delta="doomed "),
    ToolInputStartChunk(tool_call_id="c", tool_name="weather"),
    ToolInputDeltaChunk(tool_call_id="c", input_text_delta='{"ci'),
    ResetStepChunk(),  # 8
    TextStartChunk(id="t"),
    TextDeltaChunk(id="t", delta="recovered"),
    TextEndChunk(id="t"),
    FinishStepChunk(),  # 12
    FinishChunk(finish_reason="stop"),
]


@pytest.mark.parametrize("level", OLD_LEVELS)
def test_adapter_holding_steps_never_shows_the_failed_attempt(level: ClientLevel) -> None:
    adapter = ChunkAdapter(level, hold_steps=True)
    sent = feed_all(adapter, RETRIED_STEP)
    assert [offset for offset, _ in sent] == [0, 1, 9, 10, 11, 12, 13]
    assert [chunk["type"] for _, chunk in sent] == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
    ]


def test_adapter_holding_steps_sends_a_step_only_when_it_ends() -> None:
    adapter = ChunkAdapter(AI6, hold_steps=True)
    assert adapter.feed(0, enc(StartStepChunk())) == []
    assert adapter.feed(1, enc(TextStartChunk(id="t"))) == []
    assert adapter.feed(2, enc(TextDeltaChunk(id="t", delta="x"))) == []
    assert adapter.feed(3, enc(TextEndChunk(id="t"))) == []
    released = adapter.feed(4, enc(FinishStepChunk()))
    assert [offset for offset, _ in released] == [0, 1, 2, 3, 4]
    assert adapter.close() == []


@pytest.mark.parametrize("end", ["error", "abort", "finish"])
def test_adapter_holding_steps_releases_a_step_a_stream_end_cuts_short(end: str) -> None:
    adapter = ChunkAdapter(AI5, hold_steps=True)
    adapter.feed(0, enc(StartStepChunk()))
    adapter.feed(1, enc(TextStartChunk(id="t")))
    released = adapter.feed(2, json.dumps({"type": end, "errorText": "boom"}).encode())
    assert [offset for offset, _ in released] == [0, 1, 2]


def test_adapter_holding_steps_releases_an_unfinished_step_when_the_log_ends() -> None:
    adapter = ChunkAdapter(AI6, hold_steps=True)
    adapter.feed(5, enc(StartStepChunk()))
    adapter.feed(6, enc(TextStartChunk(id="t")))
    assert [offset for offset, _ in adapter.close()] == [5, 6]


def test_adapter_holding_steps_passes_chunks_outside_steps_at_once() -> None:
    adapter = ChunkAdapter(AI6, hold_steps=True)
    start = enc(StartChunk(message_id="m"))
    assert adapter.feed(0, start) == [(0, start)]
    # a reader resumed in the middle of a step has no start-step to hold from
    delta = enc(TextDeltaChunk(id="t", delta="x"))
    assert adapter.feed(7, delta) == [(7, delta)]


@pytest.mark.parametrize("level", OLD_LEVELS)
def test_adapter_streaming_closes_the_failed_attempts_open_parts(level: ClientLevel) -> None:
    adapter = ChunkAdapter(level, hold_steps=False)
    sent = feed_all(adapter, RETRIED_STEP)
    assert [offset for offset, _ in sent] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, *range(9, 14)]
    closing = [chunk for offset, chunk in sent if offset == 8]
    assert closing == [
        {"type": "reasoning-end", "id": "r"},
        {"type": "text-end", "id": "t"},
        {
            "type": "tool-input-error",
            "toolCallId": "c",
            "toolName": "weather",
            "input": None,
            "errorText": "The step was retried.",
        },
    ]
    assert all(chunk["type"] != "reset-step" for _, chunk in sent)


def test_adapter_streaming_reset_with_nothing_open_sends_nothing() -> None:
    adapter = ChunkAdapter(AI5, hold_steps=False)
    adapter.feed(0, enc(StartStepChunk()))
    adapter.feed(1, enc(TextStartChunk(id="t")))
    adapter.feed(2, enc(TextEndChunk(id="t")))
    assert adapter.feed(3, enc(ResetStepChunk())) == []


def test_adapter_rewrites_inside_held_steps() -> None:
    adapter = ChunkAdapter(AI5, hold_steps=True)
    adapter.feed(0, enc(StartStepChunk()))
    adapter.feed(1, enc(ToolOutputDeniedChunk(tool_call_id="c")))
    adapter.feed(2, enc(CustomChunk(kind="x.y")))
    released = adapter.feed(3, enc(FinishStepChunk()))
    assert [json.loads(data)["type"] for _, data in released] == [
        "start-step",
        "tool-output-error",
        "finish-step",
    ]


def test_adapter_for_level_7_is_none_and_old_levels_hold_only_with_retries() -> None:
    assert adapter_for(AI7, step_retries=True) is None
    held = adapter_for(AI6, step_retries=True)
    streamed = adapter_for(AI5, step_retries=False)
    assert held is not None and held.hold_steps
    assert streamed is not None and not streamed.hold_steps
    with pytest.raises(ValueError, match="no adapter"):
        ChunkAdapter(AI7, hold_steps=True)
