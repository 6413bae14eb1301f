"""protocol.chunks: every v7 chunk type, its exact JSON, parsing and the encoder fast path."""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol import chunks as c
from protocol.chunks import (
    CHUNK_TYPES,
    UIMessageChunk,
    UnknownChunkTypeError,
    encode_chunk,
    parse_chunk,
)

PM = {"openai": {"itemId": "x1"}}

# (chunk with only the required fields, its exact JSON) for every chunk type. Optional fields
# are passed as None explicitly where they exist: None must never reach the wire.
MINIMAL: list[tuple[Any, bytes]] = [
    (c.StartChunk(message_id=None, message_metadata=None), b'{"type":"start"}'),
    (c.StartStepChunk(), b'{"type":"start-step"}'),
    (c.FinishStepChunk(), b'{"type":"finish-step"}'),
    (c.ResetStepChunk(), b'{"type":"reset-step"}'),
    (c.TextStartChunk(id="t1", provider_metadata=None), b'{"type":"text-start","id":"t1"}'),
    (c.TextDeltaChunk(id="t1", delta="hi"), b'{"type":"text-delta","id":"t1","delta":"hi"}'),
    (c.TextEndChunk(id="t1", citations=None), b'{"type":"text-end","id":"t1"}'),
    (c.ReasoningStartChunk(id="r1"), b'{"type":"reasoning-start","id":"r1"}'),
    (
        c.ReasoningDeltaChunk(id="r1", delta="so"),
        b'{"type":"reasoning-delta","id":"r1","delta":"so"}',
    ),
    (c.ReasoningEndChunk(id="r1"), b'{"type":"reasoning-end","id":"r1"}'),
    (
        c.ToolInputStartChunk(tool_call_id="c1", tool_name="search", dynamic=None, title=None),
        b'{"type":"tool-input-start","toolCallId":"c1","toolName":"search"}',
    ),
    (
        c.ToolInputDeltaChunk(tool_call_id="c1", input_text_delta='{"q'),
        b'{"type":"tool-input-delta","toolCallId":"c1","inputTextDelta":"{\\"q"}',
    ),
    (
        c.ToolInputAvailableChunk(tool_call_id="c1", tool_name="search", input=None),
        b'{"type":"tool-input-available","toolCallId":"c1","toolName":"search","input":null}',
    ),
    (
        c.ToolInputErrorChunk(tool_call_id="c1", tool_name="search", input=None, error_text="bad"),
        b'{"type":"tool-input-error","toolCallId":"c1","toolName":"search","input":null,'
        b'"errorText":"bad"}',
    ),
    (
        c.ToolApprovalRequestChunk(approval_id="a1", tool_call_id="c1", reason=None),
        b'{"type":"tool-approval-request","approvalId":"a1","toolCallId":"c1"}',
    ),
    (
        c.ToolApprovalResponseChunk(approval_id="a1", approved=False),
        b'{"type":"tool-approval-response","approvalId":"a1","approved":false}',
    ),
    (
        c.ToolOutputAvailableChunk(tool_call_id="c1", output=None, preliminary=None),
        b'{"type":"tool-output-available","toolCallId":"c1","output":null}',
    ),
    (
        c.ToolOutputErrorChunk(tool_call_id="c1", error_text="boom"),
        b'{"type":"tool-output-error","toolCallId":"c1","errorText":"boom"}',
    ),
    (
        c.ToolOutputDeniedChunk(tool_call_id="c1"),
        b'{"type":"tool-output-denied","toolCallId":"c1"}',
    ),
    (
        c.SourceUrlChunk(source_id="s1", url="https://a.example", title=None),
        b'{"type":"source-url","sourceId":"s1","url":"https://a.example"}',
    ),
    (
        c.SourceDocumentChunk(source_id="s2", media_type="text/plain", title="Doc", filename=None),
        b'{"type":"source-document","sourceId":"s2","mediaType":"text/plain","title":"Doc"}',
    ),
    (
        c.FileChunk(url="data:text/plain;base64,SGk=", media_type="text/plain"),
        b'{"type":"file","url":"data:text/plain;base64,SGk=","mediaType":"text/plain"}',
    ),
    (
        c.ReasoningFileChunk(url="https://a.example/r.png", media_type="image/png"),
        b'{"type":"reasoning-file","url":"https://a.example/r.png","mediaType":"image/png"}',
    ),
    (c.CustomChunk(kind="openai.compaction"), b'{"type":"custom","kind":"openai.compaction"}'),
    (
        c.SteeringMessageChunk(id="u9", parts=[{"type": "text", "text": "also"}]),
        b'{"type":"steering-message","id":"u9","parts":[{"type":"text","text":"also"}]}',
    ),
    (c.DataChunk(type="data-weather", data=None, id=None), b'{"type":"data-weather","data":null}'),
    (
        c.MessageMetadataChunk(message_metadata=None),
        b'{"type":"message-metadata","messageMetadata":null}',
    ),
    (c.FinishChunk(finish_reason=None), b'{"type":"finish"}'),
    (c.AbortChunk(reason=None), b'{"type":"abort"}'),
    (
        c.ErrorChunk(error_text="An error occurred."),
        b'{"type":"error","errorText":"An error occurred."}',
    ),
]

# Every optional field set.
FULL: list[tuple[Any, dict[str, Any]]] = [
    (
        c.StartChunk(message_id="m1", message_metadata={"model": "x"}),
        {"type": "start", "messageId": "m1", "messageMetadata": {"model": "x"}},
    ),
    (
        c.TextStartChunk(id="t1", provider_metadata=PM),
        {"type": "text-start", "id": "t1", "providerMetadata": PM},
    ),
    (
        c.TextDeltaChunk(id="t1", delta="é😀\n", provider_metadata=PM),
        {"type": "text-delta", "id": "t1", "delta": "é😀\n", "providerMetadata": PM},
    ),
    (
        c.TextEndChunk(
            id="t1",
            citations=[
                c.Citation(
                    source=c.UrlCitationSource(id="s1", url="https://a.example", title="A"),
                    start_index=0,
                    end_index=4,
                    cited_text="text",
                ),
                c.Citation(
                    source=c.DocumentCitationSource(id="d1", media_type="text/plain", title="D")
                ),
            ],
            provider_metadata=PM,
        ),
        {
            "type": "text-end",
            "id": "t1",
            "citations": [
                {
                    "source": {
                        "type": "source",
                        "sourceType": "url",
                        "id": "s1",
                        "url": "https://a.example",
                        "title": "A",
                    },
                    "startIndex": 0,
                    "endIndex": 4,
                    "citedText": "text",
                },
                {
                    "source": {
                        "type": "source",
                        "sourceType": "document",
                        "id": "d1",
                        "mediaType": "text/plain",
                        "title": "D",
                    }
                },
            ],
            "providerMetadata": PM,
        },
    ),
    (
        c.ReasoningStartChunk(id="r1", provider_metadata=PM),
        {"type": "reasoning-start", "id": "r1", "providerMetadata": PM},
    ),
    (
        c.ReasoningDeltaChunk(id="r1", delta="hm", provider_metadata=PM),
        {"type": "reasoning-delta", "id": "r1", "delta": "hm", "providerMetadata": PM},
    ),
    (
        c.ReasoningEndChunk(id="r1", provider_metadata=PM),
        {"type": "reasoning-end", "id": "r1", "providerMetadata": PM},
    ),
    (
        c.ToolInputStartChunk(
            tool_call_id="c1",
            tool_name="search",
            input_encoding="text",
            provider_executed=True,
            provider_metadata=PM,
            tool_metadata={"version": 2},
            dynamic=False,
            title="Search",
        ),
        {
            "type": "tool-input-start",
            "toolCallId": "c1",
            "toolName": "search",
            "inputEncoding": "text",
            "providerExecuted": True,
            "providerMetadata": PM,
            "toolMetadata": {"version": 2},
            "dynamic": False,
            "title": "Search",
        },
    ),
    (
        c.ToolInputAvailableChunk(
            tool_call_id="c1",
            tool_name="search",
            input={"q": "x"},
            provider_executed=False,
            provider_metadata=PM,
            tool_metadata={"v": 1},
            dynamic=True,
            title="S",
        ),
        {
            "type": "tool-input-available",
            "toolCallId": "c1",
            "toolName": "search",
            "input": {"q": "x"},
            "providerExecuted": False,
            "providerMetadata": PM,
            "toolMetadata": {"v": 1},
            "dynamic": True,
            "title": "S",
        },
    ),
    (
        c.ToolInputErrorChunk(
            tool_call_id="c1",
            tool_name="search",
            input="{bad",
            provider_executed=True,
            provider_metadata=PM,
            tool_metadata={"v": 1},
            dynamic=True,
            error_text="Invalid JSON",
            title="S",
        ),
        {
            "type": "tool-input-error",
            "toolCallId": "c1",
            "toolName": "search",
            "input": "{bad",
            "providerExecuted": True,
            "providerMetadata": PM,
            "toolMetadata": {"v": 1},
            "dynamic": True,
            "errorText": "Invalid JSON",
            "title": "S",
        },
    ),
    (
        c.ToolApprovalRequestChunk(
            approval_id="a1",
            tool_call_id="c1",
            approval_descriptor={"kind": "delete"},
            input_schema_input={"path": "/x"},
            reason="destructive",
            is_automatic=True,
            signature="sig",
        ),
        {
            "type": "tool-approval-request",
            "approvalId": "a1",
            "toolCallId": "c1",
            "approvalDescriptor": {"kind": "delete"},
            "inputSchemaInput": {"path": "/x"},
            "reason": "destructive",
            "isAutomatic": True,
            "signature": "sig",
        },
    ),
    (
        c.ToolApprovalResponseChunk(
            approval_id="a1",
            approved=True,
            reason="ok",
            provider_executed=True,
            provider_metadata=PM,
        ),
        {
            "type": "tool-approval-response",
            "approvalId": "a1",
            "approved": True,
            "reason": "ok",
            "providerExecuted": True,
            "providerMetadata": PM,
        },
    ),
    (
        c.ToolOutputAvailableChunk(
            tool_call_id="c1",
            output=[1, "two"],
            provider_executed=True,
            provider_metadata=PM,
            tool_metadata={"v": 1},
            dynamic=False,
            preliminary=True,
        ),
        {
            "type": "tool-output-available",
            "toolCallId": "c1",
            "output": [1, "two"],
            "providerExecuted": True,
            "providerMetadata": PM,
            "toolMetadata": {"v": 1},
            "dynamic": False,
            "preliminary": True,
        },
    ),
    (
        c.ToolOutputErrorChunk(
            tool_call_id="c1",
            error_text="boom",
            provider_executed=False,
            provider_metadata=PM,
            tool_metadata={"v": 1},
            dynamic=True,
        ),
        {
            "type": "tool-output-error",
            "toolCallId": "c1",
            "errorText": "boom",
            "providerExecuted": False,
            "providerMetadata": PM,
            "toolMetadata": {"v": 1},
            "dynamic": True,
        },
    ),
    (
        c.SourceUrlChunk(source_id="s1", url="https://a.example", title="A", provider_metadata=PM),
        {
            "type": "source-url",
            "sourceId": "s1",
            "url": "https://a.example",
            "title": "A",
            "providerMetadata": PM,
        },
    ),
    (
        c.SourceDocumentChunk(
            source_id="s2",
            media_type="application/pdf",
            title="P",
            filename="p.pdf",
            provider_metadata=PM,
        ),
        {
            "type": "source-document",
            "sourceId": "s2",
            "mediaType": "application/pdf",
            "title": "P",
            "filename": "p.pdf",
            "providerMetadata": PM,
        },
    ),
    (
        c.FileChunk(url="https://a.example/f.png", media_type="image/png", provider_metadata=PM),
        {
            "type": "file",
            "url": "https://a.example/f.png",
            "mediaType": "image/png",
            "providerMetadata": PM,
        },
    ),
    (
        c.ReasoningFileChunk(
            url="https://a.example/r.png", media_type="image/png", provider_metadata=PM
        ),
        {
            "type": "reasoning-file",
            "url": "https://a.example/r.png",
            "mediaType": "image/png",
            "providerMetadata": PM,
        },
    ),
    (
        c.CustomChunk(kind="anthropic.thing", provider_metadata=PM),
        {"type": "custom", "kind": "anthropic.thing", "providerMetadata": PM},
    ),
    (
        c.SteeringMessageChunk(
            id="u9",
            parts=[
                {"type": "text", "text": "look at this"},
                {
                    "type": "file",
                    "mediaType": "image/png",
                    "url": "https://a.example/i.png",
                    "filename": "i.png",
                },
            ],
        ),
        {
            "type": "steering-message",
            "id": "u9",
            "parts": [
                {"type": "text", "text": "look at this"},
                {
                    "type": "file",
                    "mediaType": "image/png",
                    "url": "https://a.example/i.png",
                    "filename": "i.png",
                },
            ],
        },
    ),
    (
        c.DataChunk(type="data-weather", id="w1", data={"city": "Paris"}, transient=True),
        {"type": "data-weather", "id": "w1", "data": {"city": "Paris"}, "transient": True},
    ),
    (
        c.MessageMetadataChunk(message_metadata={"usage": {"inputTokens": 3}}),
        {"type": "message-metadata", "messageMetadata": {"usage": {"inputTokens": 3}}},
    ),
    (
        c.FinishChunk(finish_reason="interrupted", message_metadata={"a": 1}),
        {"type": "finish", "finishReason": "interrupted", "messageMetadata": {"a": 1}},
    ),
    (c.AbortChunk(reason="stopped"), {"type": "abort", "reason": "stopped"}),
]


def _union_members() -> set[type]:
    union = typing.get_args(UIMessageChunk)[0]
    return {typing.get_args(member)[0] for member in typing.get_args(union)}


def test_every_chunk_type_is_in_the_union_and_the_examples() -> None:
    members = _union_members()
    assert len(members) == 30
    assert {type(chunk) for chunk, _ in MINIMAL} == members
    assert len(CHUNK_TYPES) == 29  # every fixed type; data-* is the 30th
    assert {chunk.type for chunk, _ in MINIMAL if not isinstance(chunk, c.DataChunk)} == CHUNK_TYPES
    # Every chunk type with optional fields appears with all of them set.
    for cls in members - {type(chunk) for chunk, _ in FULL}:
        assert set(cls.model_fields) - {"type"} <= {
            name for name, field in cls.model_fields.items() if field.is_required()
        }, cls


@pytest.mark.parametrize(("chunk", "expected"), MINIMAL, ids=lambda x: getattr(x, "type", ""))
def test_minimal_chunk_encodes_exactly(chunk: Any, expected: bytes) -> None:
    assert encode_chunk(chunk) == expected
    assert b"null" not in expected.replace(b'"input":null', b"").replace(
        b'"output":null', b""
    ).replace(b'"data":null', b"").replace(b'"messageMetadata":null', b"")


@pytest.mark.parametrize(("chunk", "expected"), FULL, ids=lambda x: getattr(x, "type", ""))
def test_full_chunk_encodes_every_field(chunk: Any, expected: dict[str, Any]) -> None:
    encoded = encode_chunk(chunk)
    assert orjson.loads(encoded) == expected
    assert list(orjson.loads(encoded)) == list(expected)  # key order: the schema's order
    assert encoded == orjson.dumps(orjson.loads(encoded))  # compact


@pytest.mark.parametrize("chunk", [x for x, _ in MINIMAL + FULL], ids=lambda x: x.type)
def test_round_trip(chunk: Any) -> None:
    encoded = encode_chunk(chunk)
    parsed = parse_chunk(encoded)
    assert type(parsed) is type(chunk)
    assert parsed == chunk
    assert encode_chunk(parsed) == encoded
    assert parse_chunk(orjson.loads(encoded)) == chunk  # dict input
    assert parse_chunk(encoded.decode()) == chunk  # str input


def test_required_nullable_keys_are_present_even_when_none() -> None:
    assert (
        orjson.loads(
            encode_chunk(c.ToolInputAvailableChunk(tool_call_id="a", tool_name="b", input=None))
        )["input"]
        is None
    )
    assert "output" in orjson.loads(
        encode_chunk(c.ToolOutputAvailableChunk(tool_call_id="a", output=None))
    )
    assert "data" in orjson.loads(encode_chunk(c.DataChunk(type="data-x", data=None)))
    assert "messageMetadata" in orjson.loads(
        encode_chunk(c.MessageMetadataChunk(message_metadata=None))
    )


def test_required_nullable_keys_must_be_given() -> None:
    with pytest.raises(ValidationError):
        c.ToolInputAvailableChunk(tool_call_id="a", tool_name="b")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        parse_chunk(b'{"type":"tool-output-available","toolCallId":"a"}')
    with pytest.raises(ValidationError):
        parse_chunk(b'{"type":"data-x","id":"1"}')
    with pytest.raises(ValidationError):
        parse_chunk(b'{"type":"message-metadata"}')


def test_none_inside_values_is_kept() -> None:
    # Only top-level optional fields are dropped; JSON values keep their nulls.
    chunk = c.ToolOutputAvailableChunk(tool_call_id="a", output={"x": None, "y": [None]})
    assert encode_chunk(chunk) == (
        b'{"type":"tool-output-available","toolCallId":"a","output":{"x":null,"y":[null]}}'
    )


def test_type_has_a_default() -> None:
    assert c.TextDeltaChunk(id="t1", delta="hi").type == "text-delta"
    assert c.FinishChunk().type == "finish"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"type":"text"}', "unknown UI message chunk type 'text'"),
        (b'{"type":"tool-call"}', "unknown UI message chunk type 'tool-call'"),
        (b'{"type":"Start"}', "unknown UI message chunk type 'Start'"),
        (b'{"id":"x"}', "must be a JSON object with a string `type`"),
        (b'{"type":5}', "must be a JSON object with a string `type`"),
        (b"[1]", "must be a JSON object with a string `type`"),
        (b'"start"', "must be a JSON object with a string `type`"),
    ],
)
def test_unknown_type_is_rejected_clearly(raw: bytes, message: str) -> None:
    with pytest.raises(UnknownChunkTypeError, match=message):
        parse_chunk(raw)
    assert issubclass(UnknownChunkTypeError, ValueError)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"start","messageId":null}',
        b'{"type":"text-start","id":"t","providerMetadata":null}',
        b'{"type":"tool-input-start","toolCallId":"a","toolName":"b","title":null}',
        b'{"type":"tool-input-start","toolCallId":"a","toolName":"b","dynamic":null}',
        b'{"type":"data-x","data":1,"transient":null}',
        b'{"type":"data-x","data":1,"id":null}',
        b'{"type":"finish","finishReason":null}',
        b'{"type":"text-end","id":"t","citations":[{"source":{"type":"source",'
        b'"sourceType":"url","id":"s","url":"u","title":null}}]}',
    ],
)
def test_null_for_an_optional_key_is_rejected_like_the_client(raw: bytes) -> None:
    with pytest.raises(ValidationError, match="must be omitted, not null"):
        parse_chunk(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"start","messageMetadata":null}',
        b'{"type":"finish","messageMetadata":null}',
        b'{"type":"tool-approval-request","approvalId":"a","toolCallId":"b",'
        b'"approvalDescriptor":null,"inputSchemaInput":null}',
    ],
)
def test_null_is_accepted_where_the_client_types_unknown(raw: bytes) -> None:
    parse_chunk(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"finish","finishReason":"done"}',
        b'{"type":"tool-input-start","toolCallId":"a","toolName":"b","dynamic":"true"}',
        b'{"type":"text-delta","id":1,"delta":"x"}',
        b'{"type":"text-delta","id":"t"}',
        b'{"type":"data-","data":1}',
        b'{"type":"tool-input-start","toolCallId":"a","toolName":"b","inputEncoding":"yaml"}',
        b'{"type":"text-start","id":"t","providerMetadata":{"x":1}}',
        b'{"type":"text-end","id":"t","citations":[{"source":{"type":"source",'
        b'"sourceType":"url","id":"s","url":"u"},"startIndex":-1}]}',
        b"{not json",
    ],
)
def test_invalid_chunks_are_rejected(raw: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (ValidationError or JSON error, both ValueError)
        parse_chunk(raw)


def test_extra_keys_are_kept_like_the_loose_client_schema() -> None:
    chunk = parse_chunk(b'{"type":"text-delta","id":"t","delta":"x","future":{"a":1}}')
    assert isinstance(chunk, c.TextDeltaChunk)
    assert encode_chunk(chunk) == b'{"type":"text-delta","id":"t","delta":"x","future":{"a":1}}'


def test_every_finish_reason() -> None:
    reasons = typing.get_args(c.FinishReason)
    assert set(reasons) == {
        "stop",
        "length",
        "content-filter",
        "tool-calls",
        "error",
        "interrupted",
        "other",
    }
    for reason in reasons:
        assert parse_chunk(encode_chunk(c.FinishChunk(finish_reason=reason))) == c.FinishChunk(
            finish_reason=reason
        )


def test_data_chunks_share_one_model() -> None:
    for name in ("data-weather", "data-a-b", "data-😀"):
        chunk = parse_chunk(orjson.dumps({"type": name, "data": [1]}))
        assert isinstance(chunk, c.DataChunk)
        assert chunk.type == name


# --- the fast path -----------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


@given(
    kind=st.sampled_from(["text", "reasoning", "tool"]),
    part_id=_text,
    delta=_text,
    metadata=st.none() | st.just(PM),
    extra=st.none()
    | st.dictionaries(st.sampled_from(["x", "yZ"]), st.integers(-(2**63), 2**63 - 1), max_size=2),
)
def test_fast_path_equals_generic_path(
    kind: str, part_id: str, delta: str, metadata: Any, extra: dict[str, int] | None
) -> None:
    extras = extra or {}
    chunk: Any
    if kind == "text":
        chunk = c.TextDeltaChunk(id=part_id, delta=delta, provider_metadata=metadata, **extras)
    elif kind == "reasoning":
        chunk = c.ReasoningDeltaChunk(id=part_id, delta=delta, provider_metadata=metadata, **extras)
    else:
        chunk = c.ToolInputDeltaChunk(tool_call_id=part_id, input_text_delta=delta, **extras)
    fast = encode_chunk(chunk)
    assert fast == c._encode_generic(chunk)
    assert fast == orjson.dumps(chunk.model_dump(mode="json"))
    assert b"\n" not in fast  # one SSE data line
    assert parse_chunk(fast) == chunk


def test_fast_path_is_used_for_plain_deltas() -> None:
    assert c.TextDeltaChunk in c._FAST_ENCODERS
    assert c.ReasoningDeltaChunk in c._FAST_ENCODERS
    assert c.ToolInputDeltaChunk in c._FAST_ENCODERS


def test_integers_beyond_64_bits_still_encode() -> None:
    # orjson refuses them; JSON has no limit (the browser reads them as doubles).
    chunk = c.ToolOutputAvailableChunk(tool_call_id="a", output={"n": 2**70, "s": "é"})
    assert encode_chunk(chunk) == (
        b'{"type":"tool-output-available","toolCallId":"a",'
        b'"output":{"n":1180591620717411303424,"s":"\\u00e9"}}'
    )
    assert parse_chunk(encode_chunk(chunk)) == chunk


def test_lone_surrogates_are_escaped_not_fatal() -> None:
    # A provider may split a surrogate pair across two deltas; JSON.stringify escapes them.
    first = c.TextDeltaChunk(id="t", delta="a\ud83d")
    assert encode_chunk(first) == b'{"type":"text-delta","id":"t","delta":"a\\ud83d"}'
    assert encode_chunk(c.ToolInputDeltaChunk(tool_call_id="x", input_text_delta="\ude00")) == (
        b'{"type":"tool-input-delta","toolCallId":"x","inputTextDelta":"\\ude00"}'
    )
