"""Frames of the AI SDK's `WebSocketChatTransport` (`ai` >= 7.0.135).

Every frame is one JSON text message with a `type` and the `requestId` it belongs to; one
socket carries many requests.

Client to server: `send` (a turn: chat id, messages, trigger, messageId, the request's
headers, body and metadata), `resume` (replay the chat's active response), `abort` (cancel
the operation of that requestId). `parse_client_frame` validates them like the SDK's
`safeValidateWebSocketChatTransportRequest`.

Server to client: `start` (a resume found an active response; sent before the replay),
`chunk` (`sequence` from 0, gap-free per request; a repeated sequence is ignored, so an
overlapping replay is safe), `end`, `error` (optional `errorText`), `no-active` (a resume
found nothing). A malformed frame or an invalid chunk makes the client close the socket and
fail every request on it, so only send chunks produced by `encode_chunk`.

Bridge extensions, all invisible to the stock client:

* `start` frames carry `generationId` (the generation being read; a client that resumes
  from `lastSequence` names it in its `resume` frame, so the offset is applied to the same
  log) and, for a `send` that continues a message, `preludeEnd`. The stock client ignores
  extra keys and a `start` for a `send` request.
* `resume` frames may carry `generationId` (like `?generation=` on the HTTP resume).
* The keep-alive frame is an `end` for the reserved request id `KEEPALIVE_REQUEST_ID`,
  which no client may use: clients ignore replies for request ids they do not know (an
  unknown frame *type* would make the stock client close the socket).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from protocol.messages import ChatRequest, UIMessage, check_chat_id_field

__all__ = [
    "KEEPALIVE_FRAME",
    "KEEPALIVE_REQUEST_ID",
    "ClientFrame",
    "FrameError",
    "WsAbortFrame",
    "WsResumeFrame",
    "WsSendFrame",
    "encode_chunk_frame",
    "encode_end_frame",
    "encode_error_frame",
    "encode_no_active_frame",
    "encode_start_frame",
    "parse_client_frame",
]

# JavaScript's Number.MAX_SAFE_INTEGER: the client rejects larger sequence numbers.
MAX_SEQUENCE = 2**53 - 1
MAX_REQUEST_ID_LENGTH = 128
# ':' cannot occur in the ids the SDK generates (16 alphanumerics), so this never collides.
KEEPALIVE_REQUEST_ID = "bridge:keep-alive"


class FrameError(ValueError):
    """A client frame that is not valid JSON or not a valid send/resume/abort frame."""


class _Frame(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow", strict=True)

    request_id: str = Field(alias="requestId", min_length=1, max_length=MAX_REQUEST_ID_LENGTH)

    @field_validator("request_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == KEEPALIVE_REQUEST_ID:
            raise ValueError(f"{KEEPALIVE_REQUEST_ID!r} is reserved for server keep-alives")
        return value


class WsAbortFrame(_Frame):
    type: Literal["abort"]


class _RequestFrame(_Frame):
    id: str
    headers: dict[str, str]
    body: dict[str, Any]
    metadata: Any = None

    @field_validator("id")
    @classmethod
    def _valid_chat_id(cls, value: str) -> str:
        # Stricter than the SDK's validator: the same rule as the HTTP routes, so the chat id
        # is safe to use as a storage key.
        return check_chat_id_field(value)


class WsResumeFrame(_RequestFrame):
    type: Literal["resume"]
    # The shipped transport omits it and expects a replay from sequence 0.
    last_sequence: int | None = Field(default=None, alias="lastSequence", ge=0, le=MAX_SEQUENCE)
    # Bridge extension: resume this generation (its id comes in the `start` frame).
    generation_id: str | None = Field(
        default=None, alias="generationId", min_length=1, max_length=200
    )

    @model_validator(mode="before")
    @classmethod
    def _no_null_sequence(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lastSequence" in data and data["lastSequence"] is None:
            raise ValueError("lastSequence must be absent or a non-negative integer")
        if isinstance(data, dict) and "generationId" in data and data["generationId"] is None:
            raise ValueError("generationId must be absent or a string")
        return data


class WsSendFrame(_RequestFrame):
    type: Literal["send"]
    trigger: Literal["submit-message", "regenerate-message"]
    message_id: str | None = Field(default=None, alias="messageId")
    messages: list[UIMessage] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_null_message_id(cls, data: Any) -> Any:
        # JSON.stringify drops an undefined messageId; the SDK's validator rejects null.
        if isinstance(data, dict) and "messageId" in data and data["messageId"] is None:
            raise ValueError("messageId must be absent or a string")
        return data

    def to_chat_request(self) -> ChatRequest:
        """The equivalent HTTP body: the `body` keys first, the SDK's keys over them (as
        `HttpChatTransport` builds `{...body, id, messages, trigger, messageId}`)."""
        data: dict[str, Any] = {
            **self.body,
            "id": self.id,
            "messages": self.messages,
            "trigger": self.trigger,
        }
        if self.message_id is not None:
            data["messageId"] = self.message_id
        else:
            data.pop("messageId", None)
        return ChatRequest.model_validate(data)


def _frame_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) else None


ClientFrame: TypeAlias = Annotated[
    Annotated[WsSendFrame, Tag("send")]
    | Annotated[WsResumeFrame, Tag("resume")]
    | Annotated[WsAbortFrame, Tag("abort")],
    Discriminator(_frame_tag),
]

_client_frame_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def parse_client_frame(data: str | bytes, *, max_bytes: int | None = None) -> ClientFrame:
    """Validate one client frame; raises `FrameError` with a short, client-safe reason."""
    if max_bytes is not None and len(data) > max_bytes:
        raise FrameError(f"frame too large ({len(data)} > {max_bytes} bytes)")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"frame is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise FrameError("a frame must be a JSON object with a string `type`")
    kind = value["type"]
    if kind not in {"send", "resume", "abort"}:
        raise FrameError(f"unknown frame type {kind!r} (expected send, resume or abort)")
    try:
        return _client_frame_adapter.validate_python(value)
    except ValidationError as exc:
        raise FrameError(f"invalid {kind} frame: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False)[:5]:
        # Drop the union tag from the location; keep the path inside the frame.
        loc = ".".join(str(part) for part in error["loc"][1:]) or "(frame)"
        problems.append(f"{loc}: {error['msg']}")
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


# --- server -> client --------------------------------------------------------------------------


def _simple_frame(kind: bytes, request_id: str) -> bytes:
    return b'{"type":"' + kind + b'","requestId":' + orjson.dumps(request_id) + b"}"


def encode_start_frame(
    request_id: str, generation_id: str | None = None, prelude_end: int = 0
) -> bytes:
    """`prelude_end` (bridge extension, sends only): offsets 1..prelude_end rebuild the
    continued message, which the sender holds; they arrive as no-op chunks, and a resume
    from `lastSequence` must start after them."""
    if generation_id is None:
        return _simple_frame(b"start", request_id)
    frame: dict[str, Any] = {
        "type": "start",
        "requestId": request_id,
        "generationId": generation_id,
    }
    if prelude_end > 0:
        frame["preludeEnd"] = prelude_end
    return orjson.dumps(frame)


def encode_chunk_frame(request_id: str, sequence: int, chunk_json: bytes) -> bytes:
    """A `chunk` frame around an already encoded chunk (`encode_chunk` output, not parsed
    again)."""
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence must be 0..2**53-1, got {sequence}")
    return (
        b'{"type":"chunk","requestId":'
        + orjson.dumps(request_id)
        + b',"sequence":%d,"chunk":' % sequence
        + chunk_json
        + b"}"
    )


def encode_end_frame(request_id: str) -> bytes:
    return _simple_frame(b"end", request_id)


def encode_error_frame(request_id: str, error_text: str | None = None) -> bytes:
    if error_text is None:
        return _simple_frame(b"error", request_id)
    return orjson.dumps({"type": "error", "requestId": request_id, "errorText": error_text})


def encode_no_active_frame(request_id: str) -> bytes:
    return _simple_frame(b"no-active", request_id)


KEEPALIVE_FRAME = encode_end_frame(KEEPALIVE_REQUEST_ID)
