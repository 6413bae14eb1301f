"""protocol.text_stream: the plain text protocol of TextStreamChatTransport."""

from __future__ import annotations

import orjson
import pytest

from protocol import chunks as c
from protocol.chunks import encode_chunk
from protocol.text_stream import TEXT_STREAM_HEADERS, text_of_chunk


def test_headers() -> None:
    assert TEXT_STREAM_HEADERS["content-type"] == "text/plain; charset=utf-8"
    assert TEXT_STREAM_HEADERS["cache-control"] == "no-cache, no-transform"
    assert TEXT_STREAM_HEADERS["x-accel-buffering"] == "no"
    assert "x-vercel-ai-ui-message-stream" not in TEXT_STREAM_HEADERS


def test_text_delta_gives_its_utf8_text() -> None:
    assert text_of_chunk(encode_chunk(c.TextDeltaChunk(id="t", delta="héllo 😀\n"))) == (
        "héllo 😀\n".encode()
    )
    with_metadata = c.TextDeltaChunk(id="t", delta="x", provider_metadata={"a": {"b": 1}})
    assert text_of_chunk(encode_chunk(with_metadata)) == b"x"


def test_escapes_are_decoded() -> None:
    assert text_of_chunk(b'{"type":"text-delta","id":"t","delta":"a\\"b\\u00e9\\n"}') == (
        'a"bé\n'.encode()
    )


def test_other_key_order_and_spacing_still_work() -> None:
    assert text_of_chunk(b'{"id": "t", "delta": "hi", "type": "text-delta"}') == b"hi"


@pytest.mark.parametrize(
    "chunk",
    [
        c.StartChunk(message_id="m"),
        c.TextStartChunk(id="t"),
        c.TextEndChunk(id="t"),
        c.ReasoningDeltaChunk(id="r", delta="thinking"),
        c.ToolInputDeltaChunk(tool_call_id="a", input_text_delta='{"type":"text-delta"}'),
        c.DataChunk(type="data-x", data={"type": "text-delta", "delta": "no"}),
        c.ErrorChunk(error_text="boom"),
        c.FinishChunk(finish_reason="stop"),
    ],
)
def test_everything_else_gives_none(chunk: c.UIMessageChunk) -> None:
    assert text_of_chunk(encode_chunk(chunk)) is None


def test_empty_delta_and_garbage_give_none() -> None:
    assert text_of_chunk(encode_chunk(c.TextDeltaChunk(id="t", delta=""))) is None
    assert text_of_chunk(b'{"type":"text-delta",') is None
    assert text_of_chunk(b'["text-delta"]') is None
    assert text_of_chunk(orjson.dumps({"type": "text-delta", "id": "t", "delta": 5})) is None
