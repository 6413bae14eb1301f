"""protocol.websocket: WebSocketChatTransport frames."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from protocol.chunks import TextDeltaChunk, encode_chunk
from protocol.websocket import (
    FrameError,
    WsAbortFrame,
    WsResumeFrame,
    WsSendFrame,
    encode_chunk_frame,
    encode_end_frame,
    encode_error_frame,
    encode_no_active_frame,
    encode_start_frame,
    parse_client_frame,
)

USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}


def send_frame(**overrides: Any) -> dict[str, Any]:
    # What the shipped transport sends (JSON.stringify drops messageId/metadata when undefined).
    frame: dict[str, Any] = {
        "type": "send",
        "requestId": "req-1",
        "id": "chat-1",
        "trigger": "submit-message",
        "messages": [USER],
        "headers": {"authorization": "Bearer x"},
        "body": {"model": "gpt-x", "userContext": "demo"},
    }
    frame.update(overrides)
    return {key: value for key, value in frame.items() if value is not ...}


def test_send_frame() -> None:
    frame = parse_client_frame(orjson.dumps(send_frame(metadata={"k": 1})))
    assert isinstance(frame, WsSendFrame)
    assert frame.request_id == "req-1"
    assert frame.id == "chat-1"
    assert frame.message_id is None
    assert frame.messages[0].parts[0].text == "hi"  # type: ignore[union-attr]
    assert frame.headers == {"authorization": "Bearer x"}
    assert frame.metadata == {"k": 1}


def test_send_frame_as_chat_request() -> None:
    frame = parse_client_frame(
        orjson.dumps(send_frame(messageId="a1", body={"id": "spoof", "model": "m", "x": 1}))
    )
    assert isinstance(frame, WsSendFrame)
    request = frame.to_chat_request()
    # Like the HTTP body {...body, id, messages, trigger, messageId}: the SDK keys win.
    assert request.id == "chat-1"
    assert request.message_id == "a1"
    assert request.model == "m"
    assert request.request_data == {"x": 1}
    assert request.messages is not None
    assert request.messages[0].id == "u1"


def test_resume_and_abort_frames() -> None:
    resume = parse_client_frame(
        b'{"type":"resume","requestId":"r2","id":"chat-1","headers":{},"body":{}}'
    )
    assert isinstance(resume, WsResumeFrame)
    assert resume.last_sequence is None
    resume = parse_client_frame(
        b'{"type":"resume","requestId":"r2","id":"c","headers":{},"body":{},"lastSequence":4}'
    )
    assert isinstance(resume, WsResumeFrame)
    assert resume.last_sequence == 4
    abort = parse_client_frame('{"type":"abort","requestId":"r2"}')
    assert isinstance(abort, WsAbortFrame)
    assert abort.request_id == "r2"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "JSON object with a string `type`"),
        (b'{"requestId":"x"}', "JSON object with a string `type`"),
        (b'{"type":"chunk","requestId":"x"}', "unknown frame type 'chunk'"),
        (b'{"type":"abort"}', "invalid abort frame: requestId"),
        (b'{"type":"abort","requestId":5}', "invalid abort frame: requestId"),
        (orjson.dumps(send_frame(trigger="resume-stream")), "invalid send frame: trigger"),
        (orjson.dumps(send_frame(messages=[])), "invalid send frame: messages"),
        (orjson.dumps(send_frame(messages=...)), "invalid send frame: messages"),
        (orjson.dumps(send_frame(messageId=None)), "messageId must be absent or a string"),
        (orjson.dumps(send_frame(messageId=3)), "invalid send frame: messageId"),
        (orjson.dumps(send_frame(headers={"a": 1})), "invalid send frame: headers.a"),
        (orjson.dumps(send_frame(headers=...)), "invalid send frame: headers"),
        (orjson.dumps(send_frame(body=[])), "invalid send frame: body"),
        (orjson.dumps(send_frame(id="../x")), "invalid send frame: id"),
        (
            orjson.dumps(send_frame(messages=[{"id": "u", "role": "bot", "parts": []}])),
            "invalid send frame: messages.0.role",
        ),
        (
            b'{"type":"resume","requestId":"r","id":"c","headers":{},"body":{},"lastSequence":-1}',
            "lastSequence",
        ),
        (
            b'{"type":"resume","requestId":"r","id":"c","headers":{},"body":{},'
            b'"lastSequence":null}',
            "lastSequence",
        ),
        (
            b'{"type":"resume","requestId":"r","id":"c","headers":{},"body":{},"lastSequence":1.5}',
            "lastSequence",
        ),
    ],
)
def test_malformed_frames_are_rejected_clearly(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason.replace("[", r"\[")):
        parse_client_frame(raw)


def test_frame_size_limit() -> None:
    with pytest.raises(FrameError, match="too large"):
        parse_client_frame(b'{"type":"abort","requestId":"r"}', max_bytes=10)


def test_server_frames() -> None:
    assert encode_start_frame("r1") == b'{"type":"start","requestId":"r1"}'
    assert encode_end_frame("r1") == b'{"type":"end","requestId":"r1"}'
    assert encode_no_active_frame("r1") == b'{"type":"no-active","requestId":"r1"}'
    assert encode_error_frame("r1") == b'{"type":"error","requestId":"r1"}'
    assert encode_error_frame("r1", 'bad "x"') == (
        b'{"type":"error","requestId":"r1","errorText":"bad \\"x\\""}'
    )
    assert encode_start_frame('q"1') == b'{"type":"start","requestId":"q\\"1"}'


def test_chunk_frame_wraps_the_encoded_chunk() -> None:
    chunk = encode_chunk(TextDeltaChunk(id="t1", delta="hé"))
    frame = encode_chunk_frame("r1", 12, chunk)
    assert frame == (b'{"type":"chunk","requestId":"r1","sequence":12,"chunk":' + chunk + b"}")
    assert orjson.loads(frame) == {
        "type": "chunk",
        "requestId": "r1",
        "sequence": 12,
        "chunk": {"type": "text-delta", "id": "t1", "delta": "hé"},
    }


@pytest.mark.parametrize("sequence", [-1, 2**53])
def test_chunk_frame_sequence_range(sequence: int) -> None:
    with pytest.raises(ValueError, match="sequence"):
        encode_chunk_frame("r1", sequence, b"{}")


# --- bridge extensions ---------------------------------------------------------------------


def test_start_frame_names_the_generation_and_the_prelude() -> None:
    from protocol.websocket import encode_start_frame

    assert orjson.loads(encode_start_frame("r", "gen_1")) == {
        "type": "start",
        "requestId": "r",
        "generationId": "gen_1",
    }
    assert orjson.loads(encode_start_frame("r", "gen_1", prelude_end=4)) == {
        "type": "start",
        "requestId": "r",
        "generationId": "gen_1",
        "preludeEnd": 4,
    }
    assert orjson.loads(encode_start_frame("r")) == {"type": "start", "requestId": "r"}


def test_keep_alive_frame_is_an_end_for_a_reserved_request_id() -> None:
    from protocol.websocket import KEEPALIVE_FRAME, KEEPALIVE_REQUEST_ID

    assert orjson.loads(KEEPALIVE_FRAME) == {"type": "end", "requestId": KEEPALIVE_REQUEST_ID}
    with pytest.raises(FrameError, match="reserved"):
        parse_client_frame(orjson.dumps({"type": "abort", "requestId": KEEPALIVE_REQUEST_ID}))


def test_resume_frame_may_name_a_generation() -> None:
    frame = parse_client_frame(
        b'{"type":"resume","requestId":"r","id":"c","headers":{},"body":{},'
        b'"lastSequence":3,"generationId":"gen_1"}'
    )
    assert isinstance(frame, WsResumeFrame)
    assert frame.generation_id == "gen_1"
    for bad in (b'"generationId":null', b'"generationId":7', b'"generationId":""'):
        with pytest.raises(FrameError):
            parse_client_frame(
                b'{"type":"resume","requestId":"r","id":"c","headers":{},"body":{},' + bad + b"}"
            )
