"""protocol.assembler: the client's message-building state machine, on the server."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import chunks as c
from protocol.assembler import (
    UNDEFINED,
    AssemblyError,
    MessageAssembler,
    merge_metadata,
    parse_partial_json,
)
from protocol.chunks import UIMessageChunk, encode_chunk, parse_chunk
from protocol.messages import UIMessage
from protocol.sse import SSEParser, encode_event


def fold(chunks: list[Any], **kwargs: Any) -> MessageAssembler:
    assembler = MessageAssembler(**kwargs)
    for chunk in chunks:
        assembler.apply(chunk)
    return assembler


def text_block(part_id: str, *deltas: str) -> list[Any]:
    return [
        c.TextStartChunk(id=part_id),
        *(c.TextDeltaChunk(id=part_id, delta=d) for d in deltas),
        c.TextEndChunk(id=part_id),
    ]


STEP = {"type": "step-start"}


# --- text and reasoning ------------------------------------------------------------------------


def test_text() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.StartStepChunk(),
            *text_block("t1", "Hel", "lo", " wörld 😀"),
            c.FinishStepChunk(),
            c.FinishChunk(finish_reason="stop"),
        ]
    )
    assert assembler.to_dict() == {
        "id": "m1",
        "role": "assistant",
        "parts": [STEP, {"type": "text", "text": "Hello wörld 😀", "state": "done"}],
    }
    assert assembler.finish_reason == "stop"
    assert not assembler.aborted
    assert assembler.error_text is None
    message = assembler.message
    assert isinstance(message, UIMessage)
    assert message.dump() == assembler.to_dict()


def test_streaming_text_and_provider_metadata() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.TextStartChunk(id="a", provider_metadata={"p": {"v": 1}}),
            c.TextDeltaChunk(id="a", delta="x"),
            c.TextStartChunk(id="b"),
            c.TextDeltaChunk(id="b", delta="y", provider_metadata={"p": {"v": 2}}),
            c.TextDeltaChunk(id="a", delta="z"),  # interleaved parts, by id
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {"type": "text", "text": "xz", "providerMetadata": {"p": {"v": 1}}, "state": "streaming"},
        {"type": "text", "text": "y", "providerMetadata": {"p": {"v": 2}}, "state": "streaming"},
    ]


def test_text_end_citations() -> None:
    citation = c.Citation(source=c.UrlCitationSource(id="s", url="https://a.example"), end_index=3)
    assembler = fold(
        [
            c.StartChunk(message_id="m"),
            c.TextStartChunk(id="t"),
            c.TextEndChunk(id="t", citations=[citation]),
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {
            "type": "text",
            "text": "",
            "state": "done",
            "citations": [
                {
                    "source": {
                        "type": "source",
                        "sourceType": "url",
                        "id": "s",
                        "url": "https://a.example",
                    },
                    "endIndex": 3,
                }
            ],
        }
    ]


def test_reasoning() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.StartStepChunk(),
            c.ReasoningStartChunk(id="r1"),
            c.ReasoningDeltaChunk(id="r1", delta="Let me "),
            c.ReasoningDeltaChunk(id="r1", delta="think."),
            c.ReasoningEndChunk(id="r1", provider_metadata={"anthropic": {"signature": "s"}}),
            *text_block("t1", "Done."),
        ]
    )
    assert assembler.to_dict()["parts"] == [
        STEP,
        {
            "type": "reasoning",
            "id": "r1",
            "text": "Let me think.",
            "providerMetadata": {"anthropic": {"signature": "s"}},
            "state": "done",
        },
        {"type": "text", "text": "Done.", "state": "done"},
    ]


# --- tools ---------------------------------------------------------------------------------------


def test_multi_step_tool_call_with_streamed_input() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.StartStepChunk(),
            c.ToolInputStartChunk(tool_call_id="c1", tool_name="weather"),
        ]
    )
    part = {"type": "tool-weather", "toolCallId": "c1", "state": "input-streaming"}
    assert assembler.to_dict()["parts"] == [STEP, part]

    seen = []
    for delta in ['{"ci', 'ty": "Par', 'is", "days": [1, ', "2]}"]:
        assembler.apply(c.ToolInputDeltaChunk(tool_call_id="c1", input_text_delta=delta))
        tool = assembler.to_dict()["parts"][1]
        seen.append((tool["input"], tool["rawInput"]))
    assert seen == [
        ({}, '{"ci'),
        ({"city": "Par"}, '{"city": "Par'),
        ({"city": "Paris", "days": [1]}, '{"city": "Paris", "days": [1, '),
        ({"city": "Paris", "days": [1, 2]}, '{"city": "Paris", "days": [1, 2]}'),
    ]

    for chunk in [
        c.ToolInputAvailableChunk(
            tool_call_id="c1", tool_name="weather", input={"city": "Paris", "days": [1, 2]}
        ),
        c.ToolOutputAvailableChunk(tool_call_id="c1", output={"temp": 20}),
        c.FinishStepChunk(),
        c.StartStepChunk(),
        *text_block("t2", "It is 20°C."),
        c.FinishStepChunk(),
        c.FinishChunk(finish_reason="stop"),
    ]:
        assembler.apply(chunk)
    assert assembler.to_dict() == {
        "id": "m1",
        "role": "assistant",
        "parts": [
            STEP,
            {
                "type": "tool-weather",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"city": "Paris", "days": [1, 2]},
                "output": {"temp": 20},
            },
            STEP,
            {"type": "text", "text": "It is 20°C.", "state": "done"},
        ],
    }
    assert assembler.message.tool_parts()[0].tool_name == "weather"  # type: ignore[union-attr]


def test_dynamic_tool_text_input_and_metadata() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.ToolInputStartChunk(
                tool_call_id="c2",
                tool_name="mcp_search",
                dynamic=True,
                input_encoding="text",
                title="Search",
                tool_metadata={"server": "x"},
                provider_executed=True,
                provider_metadata={"p": {"call": 1}},
            ),
            c.ToolInputDeltaChunk(tool_call_id="c2", input_text_delta="free "),
            c.ToolInputDeltaChunk(tool_call_id="c2", input_text_delta="text"),
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {
            "type": "dynamic-tool",
            "toolName": "mcp_search",
            "toolCallId": "c2",
            "state": "input-streaming",
            "inputEncoding": "text",
            "providerExecuted": True,
            "title": "Search",
            "toolMetadata": {"server": "x"},
            "callProviderMetadata": {"p": {"call": 1}},
            "input": "free text",
            "rawInput": "free text",
        }
    ]
    assembler.apply(
        c.ToolInputAvailableChunk(
            tool_call_id="c2", tool_name="mcp_search", input="free text", dynamic=True
        )
    )
    assembler.apply(
        c.ToolOutputErrorChunk(
            tool_call_id="c2", error_text="server down", provider_metadata={"p": {"result": 1}}
        )
    )
    assert assembler.to_dict()["parts"] == [
        {
            "type": "dynamic-tool",
            "toolName": "mcp_search",
            "toolCallId": "c2",
            "state": "output-error",
            "providerExecuted": True,
            "title": "Search",
            "toolMetadata": {"server": "x"},
            "callProviderMetadata": {"p": {"call": 1}},
            "resultProviderMetadata": {"p": {"result": 1}},
            "input": "free text",
            "errorText": "server down",
        }
    ]


def test_tool_input_error_and_invalid_partial_input() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.ToolInputStartChunk(tool_call_id="c3", tool_name="calc"),
            c.ToolInputDeltaChunk(tool_call_id="c3", input_text_delta="-"),
        ]
    )
    # Nothing parseable yet: the client's input is undefined (absent).
    assert assembler.to_dict()["parts"] == [
        {"type": "tool-calc", "toolCallId": "c3", "state": "input-streaming", "rawInput": "-"}
    ]
    assert assembler.message.dump()["parts"][0]["input"] is None  # UIMessage keeps the key
    assembler.apply(
        c.ToolInputErrorChunk(
            tool_call_id="c3", tool_name="calc", input="-", error_text="Invalid JSON"
        )
    )
    assert assembler.to_dict()["parts"] == [
        {
            "type": "tool-calc",
            "toolCallId": "c3",
            "state": "output-error",
            "input": "-",
            "errorText": "Invalid JSON",
        }
    ]


def test_approval_requested_then_continued_in_the_next_request() -> None:
    first = fold(
        [
            c.StartChunk(message_id="m1"),
            c.StartStepChunk(),
            c.ToolInputAvailableChunk(
                tool_call_id="c1", tool_name="deleteFile", input={"path": "/tmp/x"}
            ),
            c.ToolApprovalRequestChunk(
                approval_id="a1", tool_call_id="c1", reason="deletes files", signature="sig"
            ),
            c.FinishStepChunk(),
            c.FinishChunk(finish_reason="tool-calls"),
        ]
    )
    requested = first.to_dict()
    assert requested["parts"][1] == {
        "type": "tool-deleteFile",
        "toolCallId": "c1",
        "state": "approval-requested",
        "input": {"path": "/tmp/x"},
        "approval": {"id": "a1", "requestReason": "deletes files", "signature": "sig"},
    }
    assert first.finish_reason == "tool-calls"

    # The browser's addToolApprovalResponse, then the next POST carries this message.
    responded = json.loads(json.dumps(requested))
    responded["parts"][1]["state"] = "approval-responded"
    responded["parts"][1]["approval"] = {"id": "a1", "approved": True, "reason": "ok"}
    continued = fold(
        [
            c.StartChunk(message_id="m1"),
            c.ToolOutputAvailableChunk(tool_call_id="c1", output={"deleted": True}),
            c.StartStepChunk(),
            *text_block("t1", "Deleted."),
            c.FinishStepChunk(),
            c.FinishChunk(finish_reason="stop"),
        ],
        message=UIMessage.model_validate(responded),
    )
    assert continued.to_dict() == {
        "id": "m1",
        "role": "assistant",
        "parts": [
            STEP,
            {
                "type": "tool-deleteFile",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"path": "/tmp/x"},
                "output": {"deleted": True},
                "approval": {"id": "a1", "approved": True, "reason": "ok"},
            },
            STEP,
            {"type": "text", "text": "Deleted.", "state": "done"},
        ],
    }


def test_server_decided_approval_and_denial() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.ToolInputAvailableChunk(tool_call_id="c1", tool_name="rm", input={}),
            c.ToolApprovalRequestChunk(
                approval_id="a1",
                tool_call_id="c1",
                is_automatic=True,
                approval_descriptor={"risk": "high"},
                input_schema_input={"x": 1},
            ),
            c.ToolApprovalResponseChunk(
                approval_id="a1", approved=False, reason="policy", provider_executed=True
            ),
            c.ToolOutputDeniedChunk(tool_call_id="c1"),
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {
            "type": "tool-rm",
            "toolCallId": "c1",
            "state": "output-denied",
            "input": {},
            "providerExecuted": True,
            "approval": {
                "id": "a1",
                "descriptor": {"risk": "high"},
                "inputSchemaInput": {"x": 1},
                "isAutomatic": True,
                "approved": False,
                "reason": "policy",
            },
        }
    ]


def test_preliminary_outputs_are_replaced_by_the_final_one() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.ToolInputAvailableChunk(tool_call_id="c1", tool_name="research", input={"q": "x"}),
            c.ToolOutputAvailableChunk(
                tool_call_id="c1", output={"status": "searching"}, preliminary=True
            ),
        ]
    )
    assert assembler.to_dict()["parts"][0]["preliminary"] is True
    assert assembler.to_dict()["parts"][0]["output"] == {"status": "searching"}
    assembler.apply(
        c.ToolOutputAvailableChunk(
            tool_call_id="c1", output={"status": "reading"}, preliminary=True
        )
    )
    assembler.apply(c.ToolOutputAvailableChunk(tool_call_id="c1", output={"answer": 42}))
    assert assembler.to_dict()["parts"] == [
        {
            "type": "tool-research",
            "toolCallId": "c1",
            "state": "output-available",
            "input": {"q": "x"},
            "output": {"answer": 42},
        }
    ]


# --- other parts ---------------------------------------------------------------------------------


def test_data_parts_update_in_place_and_transient_ones_are_not_stored() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.DataChunk(type="data-status", id="s1", data={"stage": "searching"}),
            c.DataChunk(type="data-log", data="line 1"),
            c.DataChunk(type="data-status", id="s2", data={"stage": "other"}),
            c.DataChunk(type="data-progress", id="s1", data=0.5),  # other type: a new part
            c.DataChunk(type="data-log", data="line 2"),  # no id: always appended
            c.DataChunk(type="data-status", id="s1", data={"stage": "done"}),
            c.DataChunk(type="data-toast", id="x", data="hi", transient=True),
            c.DataChunk(type="data-status", id="s1", data="ignored", transient=True),
            c.DataChunk(type="data-flag", data=None, transient=False),
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {"type": "data-status", "id": "s1", "data": {"stage": "done"}},
        {"type": "data-log", "data": "line 1"},
        {"type": "data-status", "id": "s2", "data": {"stage": "other"}},
        {"type": "data-progress", "id": "s1", "data": 0.5},
        {"type": "data-log", "data": "line 2"},
        # The client stores the chunk itself, `transient: false` included.
        {"type": "data-flag", "data": None, "transient": False},
    ]


def test_sources_files_custom_and_steering() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.SourceUrlChunk(source_id="s1", url="https://a.example", title="A"),
            c.SourceDocumentChunk(
                source_id="s2", media_type="application/pdf", title="P", filename="p.pdf"
            ),
            c.FileChunk(url="data:image/png;base64,AA==", media_type="image/png"),
            c.ReasoningFileChunk(
                url="https://a.example/r.png", media_type="image/png", provider_metadata={"p": {}}
            ),
            c.CustomChunk(kind="openai.compaction", provider_metadata={"openai": {"id": "1"}}),
            c.SteeringMessageChunk(id="u2", parts=[{"type": "text", "text": "shorter please"}]),
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {"type": "source-url", "sourceId": "s1", "url": "https://a.example", "title": "A"},
        {
            "type": "source-document",
            "sourceId": "s2",
            "mediaType": "application/pdf",
            "title": "P",
            "filename": "p.pdf",
        },
        {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AA=="},
        {
            "type": "reasoning-file",
            "mediaType": "image/png",
            "url": "https://a.example/r.png",
            "providerMetadata": {"p": {}},
        },
        {
            "type": "custom",
            "kind": "openai.compaction",
            "providerMetadata": {"openai": {"id": "1"}},
        },
        {
            "type": "steering-message",
            "id": "u2",
            "parts": [{"type": "text", "text": "shorter please"}],
        },
    ]
    assert len(assembler.message.parts) == 6


def test_reset_step_drops_the_current_step() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.StartStepChunk(),
            *text_block("t0", "kept"),
            c.FinishStepChunk(),
            c.StartStepChunk(),
            c.TextStartChunk(id="t1"),
            c.TextDeltaChunk(id="t1", delta="abandoned"),
            c.DataChunk(type="data-x", id="d", data=1),
            c.ToolInputStartChunk(tool_call_id="c1", tool_name="t"),
            c.ResetStepChunk(),
            c.DataChunk(type="data-x", id="d", data=2),  # the old part is gone: a new one
            *text_block("t2", "retry"),
        ]
    )
    assert assembler.to_dict()["parts"] == [
        STEP,
        {"type": "text", "text": "kept", "state": "done"},
        STEP,
        {"type": "data-x", "id": "d", "data": 2},
        {"type": "text", "text": "retry", "state": "done"},
    ]
    # The reset also closed the open parts of the step.
    with pytest.raises(AssemblyError):
        assembler.apply(c.TextDeltaChunk(id="t1", delta="late"))
    with pytest.raises(AssemblyError):
        assembler.apply(c.ToolInputDeltaChunk(tool_call_id="c1", input_text_delta="{"))


def test_metadata_merges_deeply() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1", message_metadata={"model": "a", "usage": {"in": 1}}),
            c.MessageMetadataChunk(message_metadata={"usage": {"out": 2}, "tags": [1, 2]}),
            c.MessageMetadataChunk(message_metadata=None),  # ignored
            c.MessageMetadataChunk(message_metadata={"tags": [3], "usage": {"in": 5}}),
            c.FinishChunk(finish_reason="length", message_metadata={"done": True}),
        ]
    )
    assert assembler.to_dict() == {
        "id": "m1",
        "role": "assistant",
        "metadata": {"model": "a", "usage": {"in": 5, "out": 2}, "tags": [3], "done": True},
        "parts": [],
    }
    assert assembler.finish_reason == "length"


def test_merge_metadata_edge_cases() -> None:
    assert merge_metadata({"a": {"b": 1}}, {"a": 2}) == {"a": 2}
    assert merge_metadata({"a": 1}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert merge_metadata({"a": 1}, {"a": None}) == {"a": None}  # null is a value, not unset
    assert merge_metadata({"a": 1}, {"__proto__": {"x": 1}, "constructor": 1}) == {"a": 1}
    # Non-objects spread like JavaScript's {...value}.
    assert merge_metadata("ab", {"x": 1}) == {"0": "a", "1": "b", "x": 1}
    assert merge_metadata({"x": 1}, 5) == {"x": 1}
    base = {"a": {"b": 1}}
    merge_metadata(base, {"a": {"c": 2}})
    assert base == {"a": {"b": 1}}  # inputs are not mutated


def test_continuation_of_an_existing_message() -> None:
    existing = UIMessage.model_validate(
        {
            "id": "m1",
            "role": "assistant",
            "metadata": {"model": "a"},
            "parts": [
                STEP,
                {"type": "text", "text": "Earlier.", "state": "done"},
                {"type": "data-status", "id": "s", "data": "working"},
                {
                    "type": "tool-lookup",
                    "toolCallId": "c1",
                    "state": "input-streaming",
                    "input": {"q": "a"},
                    "rawInput": '{"q": "a',
                },
            ],
        }
    )
    assembler = fold(
        [
            c.StartChunk(message_id="m1", message_metadata={"resumed": True}),
            c.ToolInputDeltaChunk(tool_call_id="c1", input_text_delta='b"}'),
            c.DataChunk(type="data-status", id="s", data="done"),
        ],
        message=existing,
        message_id="ignored",
    )
    assert assembler.to_dict() == {
        "id": "m1",
        "role": "assistant",
        "metadata": {"model": "a", "resumed": True},
        "parts": [
            STEP,
            {"type": "text", "text": "Earlier.", "state": "done"},
            {"type": "data-status", "id": "s", "data": "done"},
            {
                "type": "tool-lookup",
                "toolCallId": "c1",
                "state": "input-streaming",
                "input": {"q": "ab"},
                "rawInput": '{"q": "ab"}',
            },
        ],
    }
    # The caller's message is not modified.
    assert existing.parts[2].data == "working"  # type: ignore[union-attr]


def test_a_user_message_is_not_continued() -> None:
    user = UIMessage.model_validate(
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    )
    assembler = fold([c.TextStartChunk(id="t")], message=user, message_id="m9")
    assert assembler.to_dict() == {
        "id": "m9",
        "role": "assistant",
        "parts": [{"type": "text", "text": "", "state": "streaming"}],
    }


def test_start_sets_the_id() -> None:
    assembler = MessageAssembler(message_id="generated")
    assert assembler.message_id == "generated"
    assembler.apply(c.StartChunk())
    assert assembler.message.id == "generated"
    assembler.apply(c.StartChunk(message_id="m2"))
    assert assembler.message.id == "m2"


def test_message_without_id() -> None:
    assembler = fold([c.StartChunk(), c.TextStartChunk(id="t")])
    assert assembler.to_dict()["id"] == ""
    with pytest.raises(AssemblyError, match="no id"):
        _ = assembler.message


def test_message_is_cached_until_the_next_chunk() -> None:
    assembler = fold([c.StartChunk(message_id="m"), c.TextStartChunk(id="t")])
    first = assembler.message
    assert assembler.message is first
    assembler.apply(c.TextDeltaChunk(id="t", delta="x"))
    second = assembler.message
    assert second is not first
    assert second.parts[0].text == "x"  # type: ignore[union-attr]
    assert first.parts[0].text == ""  # type: ignore[union-attr]  # snapshots stay as they were


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "message", "chunk_type", "chunk_id"),
    [
        (
            [c.TextDeltaChunk(id="t1", delta="x")],
            'Received text-delta for missing text part with ID "t1". Ensure a "text-start" chunk '
            'is sent before any "text-delta" chunks.',
            "text-delta",
            "t1",
        ),
        (
            [*text_block("t1"), c.TextEndChunk(id="t1")],
            'Received text-end for missing text part with ID "t1"',
            "text-end",
            "t1",
        ),
        (
            [c.ReasoningDeltaChunk(id="r", delta="x")],
            'Received reasoning-delta for missing reasoning part with ID "r". Ensure a '
            '"reasoning-start" chunk',
            "reasoning-delta",
            "r",
        ),
        (
            [c.ReasoningEndChunk(id="r")],
            "Received reasoning-end for missing reasoning part",
            "reasoning-end",
            "r",
        ),
        (
            [c.ToolInputDeltaChunk(tool_call_id="c9", input_text_delta="{")],
            'Received tool-input-delta for missing tool call with ID "c9". Ensure a '
            '"tool-input-start" chunk is sent before any "tool-input-delta" chunks.',
            "tool-input-delta",
            "c9",
        ),
        (
            [c.ToolOutputAvailableChunk(tool_call_id="c9", output=1)],
            'No tool invocation found for tool call ID "c9".',
            "tool-output-available",
            "c9",
        ),
        (
            [c.ToolOutputErrorChunk(tool_call_id="c9", error_text="x")],
            "No tool invocation found",
            "tool-output-error",
            "c9",
        ),
        (
            [c.ToolOutputDeniedChunk(tool_call_id="c9")],
            "No tool invocation found",
            "tool-output-denied",
            "c9",
        ),
        (
            [c.ToolApprovalRequestChunk(approval_id="a", tool_call_id="c9")],
            "No tool invocation found",
            "tool-approval-request",
            "c9",
        ),
        (
            [
                c.ToolInputAvailableChunk(tool_call_id="c1", tool_name="t", input={}),
                c.ToolApprovalResponseChunk(approval_id="a9", approved=True),
            ],
            'No tool invocation found for approval ID "a9".',
            "tool-approval-response",
            "a9",
        ),
    ],
)
def test_where_the_client_throws(
    chunks: list[Any], message: str, chunk_type: str, chunk_id: str
) -> None:
    assembler = fold([c.StartChunk(message_id="m1"), *chunks[:-1]])
    before = assembler.to_dict()
    with pytest.raises(AssemblyError) as info:
        assembler.apply(chunks[-1])
    assert str(info.value).startswith(message)
    assert (info.value.chunk_type, info.value.chunk_id) == (chunk_type, chunk_id)
    assert assembler.to_dict() == before  # the rejected chunk changed nothing


def test_tool_result_finds_a_call_of_an_earlier_step() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.StartStepChunk(),
            c.ToolInputAvailableChunk(tool_call_id="c1", tool_name="t", input={}),
            c.StartStepChunk(),
            c.ToolOutputAvailableChunk(tool_call_id="c1", output="late"),
        ]
    )
    assert assembler.to_dict()["parts"][1]["output"] == "late"


def test_error_chunk_stops_processing_like_the_chat() -> None:
    chunks = [
        c.StartChunk(message_id="m1"),
        c.StartStepChunk(),
        c.TextStartChunk(id="t"),
        c.TextDeltaChunk(id="t", delta="partial"),
        c.ErrorChunk(error_text="model overloaded"),
        c.TextDeltaChunk(id="t", delta=" more"),
        c.ErrorChunk(error_text="second"),
        c.FinishStepChunk(),
        c.FinishChunk(finish_reason="error", message_metadata={"usage": 1}),
    ]
    stopped = fold(chunks)
    assert stopped.error_text == "model overloaded"
    assert stopped.finish_reason == "error"  # still recorded
    assert stopped.to_dict() == {
        "id": "m1",
        "role": "assistant",
        "parts": [STEP, {"type": "text", "text": "partial", "state": "streaming"}],
    }
    # readUIMessageStream goes on after an error chunk.
    going_on = fold(chunks, stop_on_error=False)
    assert going_on.error_text == "model overloaded"
    assert going_on.to_dict()["parts"][1]["text"] == "partial more"
    assert going_on.to_dict()["metadata"] == {"usage": 1}


def test_abort_is_recorded_and_changes_nothing() -> None:
    assembler = fold(
        [
            c.StartChunk(message_id="m1"),
            c.TextStartChunk(id="t"),
            c.TextDeltaChunk(id="t", delta="par"),
            c.AbortChunk(reason="stopped"),
        ]
    )
    assert assembler.aborted
    assert assembler.abort_reason == "stopped"
    assert assembler.finish_reason is None
    assert assembler.to_dict()["parts"] == [{"type": "text", "text": "par", "state": "streaming"}]


def test_apply_json_and_non_chunks() -> None:
    assembler = MessageAssembler()
    assembler.apply_json(b'{"type":"start","messageId":"m1"}')
    assembler.apply_json({"type": "data-x", "data": 1})
    assert assembler.to_dict()["parts"] == [{"type": "data-x", "data": 1}]
    with pytest.raises(TypeError):
        assembler.apply("text-delta")  # type: ignore[arg-type]


# --- replays (resume) ------------------------------------------------------------------------


def test_replay_rebuilds_the_message() -> None:
    chunks = [
        c.StartChunk(message_id="m1", message_metadata={"a": 1}),
        c.StartStepChunk(),
        *text_block("t", "Hello"),
        c.DataChunk(type="data-x", data=1),
        c.FinishChunk(finish_reason="stop"),
    ]
    whole = fold(chunks).to_dict()
    assembler = fold(chunks[:4])
    assembler.begin_replay()
    for chunk in chunks:
        assembler.apply(chunk)
    assert assembler.to_dict() == whole
    # Without begin_replay the same chunks are appended again (resumeStreamIsReplay: false).
    doubled = fold(chunks + chunks)
    assert len(doubled.to_dict()["parts"]) == 2 * len(whole["parts"])


def test_replay_keeps_the_id_when_start_has_none() -> None:
    assembler = fold([c.StartChunk(), c.TextStartChunk(id="t")], message_id="m1")
    assembler.begin_replay()
    assembler.apply(c.StartChunk())
    assert assembler.to_dict() == {"id": "m1", "role": "assistant", "parts": []}


def test_replay_resets_on_a_new_message_id_and_only_on_the_first_start() -> None:
    assembler = fold([c.StartChunk(message_id="m1"), c.TextStartChunk(id="t")])
    assembler.begin_replay()
    assembler.apply(c.StartChunk(message_id="m1"))
    assembler.apply(c.DataChunk(type="data-a", data=1))
    assembler.apply(c.StartChunk(message_id="m1"))  # a merged stream's second start
    assert assembler.to_dict()["parts"] == [{"type": "data-a", "data": 1}]
    assembler.apply(c.StartChunk(message_id="m2"))  # another response: start over
    assert assembler.to_dict() == {"id": "m2", "role": "assistant", "parts": []}


def test_replay_clears_a_stop_and_the_recorded_outcome() -> None:
    chunks = [
        c.StartChunk(message_id="m1"),
        c.ErrorChunk(error_text="x"),
        c.FinishChunk(finish_reason="error"),
    ]
    assembler = fold(chunks)
    assembler.begin_replay()
    assembler.apply(chunks[0])
    assert assembler.error_text is None
    assert assembler.finish_reason is None
    assembler.apply(c.DataChunk(type="data-a", data=1))
    assert assembler.to_dict()["parts"] == [{"type": "data-a", "data": 1}]


def test_replay_of_a_continuation_loses_the_earlier_parts_like_the_client() -> None:
    # ai@7.0.173: the first `start` of a replay resets the message, so a continued turn's
    # replay cannot find the tool call it answers (the browser shows the same error).
    existing = UIMessage.model_validate(
        {
            "id": "m1",
            "role": "assistant",
            "parts": [
                {
                    "type": "tool-t",
                    "toolCallId": "c1",
                    "state": "approval-responded",
                    "input": {},
                    "approval": {"id": "a1", "approved": True},
                }
            ],
        }
    )
    assembler = MessageAssembler(message=existing)
    assembler.begin_replay()
    assembler.apply(c.StartChunk(message_id="m1"))
    with pytest.raises(AssemblyError):
        assembler.apply(c.ToolOutputAvailableChunk(tool_call_id="c1", output=1))


# --- partial JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", UNDEFINED),
        ("{", {}),
        ('{"a', {}),
        ('{"a":', {}),
        ('{"a": "x', {"a": "x"}),
        ('{"a": "x\\', {"a": "x"}),
        ('{"a": "x\\u00', {"a": "x"}),
        ('{"a": "x\\u00e9', {"a": "xé"}),
        ('{"a": 1', {"a": 1}),
        ('{"a": 1.', {"a": 1}),
        ('{"a": -', {}),
        ('{"a": 1e', {"a": 1}),
        ('{"a": tr', {"a": True}),
        ('{"a": nul', {"a": None}),
        ('{"a": fa', {"a": False}),
        ('{"a": [1, 2', {"a": [1, 2]}),
        ('{"a": [1, 2,', {"a": [1, 2]}),
        ('{"a": [{"b": [', {"a": [{"b": []}]}),
        ('{"a": 1}, trailing', {"a": 1}),
        ("[tru", [True]),
        ("-", UNDEFINED),
        ("12", 12),
        ('"str', "str"),
        ("nope", UNDEFINED),
        ("NaN", UNDEFINED),
    ],
)
def test_partial_json(text: str, value: Any) -> None:
    assert parse_partial_json(text) == value


# --- properties ----------------------------------------------------------------------------------

TOOL_NAMES = ["search", "weather", "get-time"]
DELTAS = ["Hello", " world", "", "é", "😀", "\n", " {", '"q"', "\\"]


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.4:
        return rng.choice([1, -2.5, True, False, None, "x", "a b", 'é"', ""])
    if roll < 0.75:
        keys = ["city", "q", "n", "deep"]
        return {rng.choice(keys): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def _split(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 4))))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return [piece for piece in pieces if piece] or [text]


def random_chunks(rng: random.Random, *, message_id: str = "m1") -> list[UIMessageChunk]:
    """A random chunk sequence the client accepts (no state-machine errors): steps with text,
    reasoning, tool calls (streamed input, approvals, preliminary outputs, errors, results
    for earlier steps), data parts, sources, files, metadata, reset-step; ending in finish,
    abort or error."""
    out: list[Any] = [
        c.StartChunk(message_id=message_id, message_metadata=rng.choice([None, {"a": {"b": 1}}]))
    ]
    counter = 0
    earlier_calls: list[str] = []
    for _ in range(rng.randint(1, 3)):
        out.append(c.StartStepChunk())
        step_calls: list[str] = []
        for _ in range(rng.randint(0, 6)):
            counter += 1
            kind = rng.choice(
                [
                    "text",
                    "reasoning",
                    "tool",
                    "tool-direct",
                    "data",
                    "misc",
                    "meta",
                    "reset",
                    "earlier-result",
                ]
            )
            if kind in ("text", "reasoning"):
                part_id = f"{kind[0]}{counter}"
                start, delta, end = (
                    (c.TextStartChunk, c.TextDeltaChunk, c.TextEndChunk)
                    if kind == "text"
                    else (c.ReasoningStartChunk, c.ReasoningDeltaChunk, c.ReasoningEndChunk)
                )
                out.append(start(id=part_id, provider_metadata=rng.choice([None, {"p": {"x": 1}}])))
                out.extend(
                    delta(id=part_id, delta=rng.choice(DELTAS)) for _ in range(rng.randint(0, 4))
                )
                if rng.random() < 0.85:
                    out.append(end(id=part_id))
            elif kind == "tool":
                call, name = f"call{counter}", rng.choice(TOOL_NAMES)
                dynamic = rng.choice([None, False, True])
                encoding = rng.choice([None, None, "json", "text"])
                out.append(
                    c.ToolInputStartChunk(
                        tool_call_id=call,
                        tool_name=name,
                        dynamic=dynamic,
                        input_encoding=encoding,
                        title=rng.choice([None, "T"]),
                        provider_executed=rng.choice([None, True]),
                    )
                )
                value = _json_value(rng)
                text = json.dumps(value) if encoding != "text" else "raw text input"
                out.extend(
                    c.ToolInputDeltaChunk(tool_call_id=call, input_text_delta=piece)
                    for piece in _split(text, rng)
                )
                roll = rng.random()
                if roll < 0.1:
                    continue  # left streaming
                if roll < 0.2:
                    out.append(
                        c.ToolInputErrorChunk(
                            tool_call_id=call,
                            tool_name=name,
                            input=text,
                            error_text="bad",
                            dynamic=dynamic,
                        )
                    )
                else:
                    out.append(
                        c.ToolInputAvailableChunk(
                            tool_call_id=call,
                            tool_name=name,
                            input=value,
                            dynamic=dynamic,
                            provider_metadata=rng.choice([None, {"p": {"c": 1}}]),
                        )
                    )
                    _tool_result(out, rng, call, counter)
                step_calls.append(call)
            elif kind == "tool-direct":
                call = f"call{counter}"
                out.append(
                    c.ToolInputAvailableChunk(
                        tool_call_id=call,
                        tool_name=rng.choice(TOOL_NAMES),
                        input=_json_value(rng),
                        dynamic=rng.choice([None, True]),
                        tool_metadata=rng.choice([None, {"m": 1}]),
                    )
                )
                _tool_result(out, rng, call, counter)
                step_calls.append(call)
            elif kind == "earlier-result" and earlier_calls:
                call = rng.choice(earlier_calls)
                out.append(
                    rng.choice(
                        [
                            c.ToolOutputAvailableChunk(
                                tool_call_id=call,
                                output={"late": True},
                                tool_metadata=rng.choice([None, {"z": 2}]),
                            ),
                            c.ToolOutputErrorChunk(tool_call_id=call, error_text="late failure"),
                            c.ToolOutputDeniedChunk(tool_call_id=call),
                        ]
                    )
                )
            elif kind == "data":
                out.append(
                    c.DataChunk(
                        type=rng.choice(["data-a", "data-b"]),
                        id=rng.choice([None, "d1", "d2"]),
                        data=_json_value(rng),
                        transient=rng.choice([None, None, False, True]),
                    )
                )
            elif kind == "misc":
                out.append(
                    rng.choice(
                        [
                            c.SourceUrlChunk(
                                source_id=f"s{counter}",
                                url="https://a.example",
                                title=rng.choice([None, "A"]),
                            ),
                            c.SourceDocumentChunk(
                                source_id=f"d{counter}",
                                media_type="text/plain",
                                title="Doc",
                                filename=rng.choice([None, "a.txt"]),
                            ),
                            c.FileChunk(url="data:text/plain;base64,SGk=", media_type="text/plain"),
                            c.ReasoningFileChunk(
                                url="https://a.example/r.png", media_type="image/png"
                            ),
                            c.CustomChunk(kind="openai.thing"),
                            c.SteeringMessageChunk(
                                id=f"st{counter}", parts=[{"type": "text", "text": "also"}]
                            ),
                        ]
                    )
                )
            elif kind == "meta":
                out.append(
                    c.MessageMetadataChunk(
                        message_metadata=rng.choice(
                            [None, {"a": {"c": counter}}, {"usage": [counter]}, {"a": 5}]
                        )
                    )
                )
            elif kind == "reset":
                out.append(c.ResetStepChunk())
                step_calls.clear()
        earlier_calls.extend(step_calls)
        if rng.random() < 0.9:
            out.append(c.FinishStepChunk())
    roll = rng.random()
    if roll < 0.7:
        out.append(
            c.FinishChunk(
                finish_reason=rng.choice([None, "stop", "tool-calls", "interrupted"]),
                message_metadata=rng.choice([None, {"a": {"d": 1}, "model": "x"}]),
            )
        )
    elif roll < 0.85:
        out.append(c.AbortChunk(reason=rng.choice([None, "stopped"])))
    else:
        out.append(c.ErrorChunk(error_text="boom"))
        out.append(c.FinishChunk(finish_reason="error", message_metadata={"after": "error"}))
    return out


def _tool_result(out: list[Any], rng: random.Random, call: str, counter: int) -> None:
    roll = rng.random()
    if roll < 0.25:
        approval = f"ap{counter}"
        out.append(
            c.ToolApprovalRequestChunk(
                approval_id=approval,
                tool_call_id=call,
                reason=rng.choice([None, "risky"]),
                is_automatic=rng.choice([None, True, False]),
                approval_descriptor=rng.choice([None, {"d": 1}]),
            )
        )
        if rng.random() < 0.7:
            approved = rng.random() < 0.5
            out.append(
                c.ToolApprovalResponseChunk(
                    approval_id=approval, approved=approved, reason=rng.choice([None, "ok"])
                )
            )
            out.append(
                c.ToolOutputAvailableChunk(tool_call_id=call, output={"done": 1})
                if approved
                else c.ToolOutputDeniedChunk(tool_call_id=call)
            )
    elif roll < 0.6:
        if rng.random() < 0.4:
            out.append(
                c.ToolOutputAvailableChunk(
                    tool_call_id=call, output={"progress": 0.5}, preliminary=True
                )
            )
        out.append(
            c.ToolOutputAvailableChunk(
                tool_call_id=call,
                output=rng.choice([None, {"ok": True}, "text"]),
                provider_metadata=rng.choice([None, {"p": {"r": 1}}]),
            )
        )
    elif roll < 0.75:
        out.append(
            c.ToolOutputErrorChunk(
                tool_call_id=call,
                error_text="tool failed",
                provider_executed=rng.choice([None, True]),
            )
        )


@settings(max_examples=300, deadline=None)
@given(rng=st.randoms(use_true_random=False), data=st.data())
def test_replay_from_start_equals_the_whole_stream(rng: random.Random, data: st.DataObject) -> None:
    chunks = random_chunks(rng)
    whole = fold(chunks)
    expected = whole.to_dict()
    expected_outcome = (whole.finish_reason, whole.aborted, whole.error_text)
    whole.message  # noqa: B018 (always a valid UIMessage)

    # The connection drops after any chunk; the client resumes and gets everything again.
    cut = data.draw(st.integers(0, len(chunks)), label="cut")
    resumed = fold(chunks[:cut])
    resumed.begin_replay()
    for chunk in chunks:
        resumed.apply(chunk)
    assert resumed.to_dict() == expected
    assert (resumed.finish_reason, resumed.aborted, resumed.error_text) == expected_outcome


@settings(max_examples=200, deadline=None)
@given(rng=st.randoms(use_true_random=False), cuts=st.lists(st.integers(0, 20_000), max_size=8))
def test_chunks_through_sse_split_anywhere_build_the_same_message(
    rng: random.Random, cuts: list[int]
) -> None:
    chunks = random_chunks(rng)
    body = b"".join(encode_event(encode_chunk(chunk), i) for i, chunk in enumerate(chunks))
    parser = SSEParser()
    received = MessageAssembler()
    last = 0
    for cut in [*sorted({min(cut, len(body)) for cut in cuts}), len(body)]:
        for event in parser.feed(body[last:cut]):
            assert event.data is not None
            received.apply(parse_chunk(event.data))
        last = cut
    assert received.to_dict() == fold(chunks).to_dict()


def test_apply_does_not_copy_the_message_per_token() -> None:
    # 200k deltas stay cheap: text is appended to a list of pieces, joined when read.
    assembler = fold(
        [
            c.StartChunk(message_id="m"),
            c.TextStartChunk(id="t"),
            c.ToolInputStartChunk(tool_call_id="c", tool_name="x"),
        ]
    )
    delta = c.TextDeltaChunk(id="t", delta="ab")
    tool_delta = c.ToolInputDeltaChunk(tool_call_id="c", input_text_delta='"k":1,')
    assembler.apply(c.ToolInputDeltaChunk(tool_call_id="c", input_text_delta="{"))
    for _ in range(100_000):
        assembler.apply(delta)
        assembler.apply(tool_delta)
    parts = assembler.to_dict()["parts"]
    assert len(parts[0]["text"]) == 200_000
    assert parts[1]["input"] == {"k": 1}


def test_surrogate_pairs_split_across_deltas() -> None:
    # Escaped lone surrogates are valid JSON; the browser's UTF-16 strings join the halves.
    assembler = MessageAssembler(message_id="m")
    assembler.apply(c.TextStartChunk(id="t"))
    for delta in ["a\ud83d", "\ude00b", "\udc00"]:
        assembler.apply(parse_chunk(encode_chunk(c.TextDeltaChunk(id="t", delta=delta))))
    assert assembler.to_dict()["parts"][0]["text"] == "a😀b\ufffd"
    assembler.apply(c.TextStartChunk(id="u"))
    assembler.apply(c.TextDeltaChunk(id="u", delta="\ud83d"))
    assert assembler.message.parts[1].text == "\ufffd"  # type: ignore[union-attr]
