"""Bridge extension frames on the chat WebSocket for live sessions (never sent by the stock
`WebSocketChatTransport`, so it never sees the replies either).

Client to server:

* `steer` `{requestId, id, message, mode?, generationId?}`: a steering message for the chat's
  running generation (like `POST /api/chat/{id}/steer`). Reply: `end` when queued, `error`
  `{errorText}` when refused (nothing runs, invalid message).
* `live` `{requestId, id, cursor?}`: follow the chat (like `GET /api/chat/{id}/live`).
  Replies: `start` once the chat's state is taken (every later generation will follow),
  then `chunk` frames whose `sequence` counts from 0 for this request and whose
  `position` is the tail position `<generationId>:<offset>` (a later `live` frame with
  `cursor` set to it continues right after). Ended by an `abort` for the request id.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

import orjson
from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError, field_validator

from protocol.messages import UIMessage, check_chat_id_field
from protocol.websocket import MAX_SEQUENCE, FrameError, _Frame

LIVE_FRAME_TYPES = frozenset({"steer", "live"})


class _ChatFrame(_Frame):
    id: str

    @field_validator("id")
    @classmethod
    def _valid_chat_id(cls, value: str) -> str:
        return check_chat_id_field(value)


class WsSteerFrame(_ChatFrame):
    type: Literal["steer"]
    message: UIMessage
    mode: Literal["queue", "interrupt"] = "queue"
    generation_id: str | None = Field(
        default=None, alias="generationId", min_length=1, max_length=200
    )


class WsLiveFrame(_ChatFrame):
    type: Literal["live"]
    cursor: str | None = Field(default=None, max_length=240)


LiveFrame: TypeAlias = Annotated[
    Annotated[WsSteerFrame, Tag("steer")] | Annotated[WsLiveFrame, Tag("live")],
    Discriminator(lambda value: value.get("type") if isinstance(value, dict) else value.type),
]
_adapter: TypeAdapter[LiveFrame] = TypeAdapter(LiveFrame)


def parse_live_frame(data: bytes) -> LiveFrame | None:
    """The frame when it is a `steer` or `live` frame, None for any other frame (left to
    `parse_client_frame`); raises FrameError when it is one of them but invalid."""
    try:
        value: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("type") not in LIVE_FRAME_TYPES:
        return None
    try:
        return _adapter.validate_python(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "(frame)"
        raise FrameError(f"invalid {value['type']} frame: {where}: {first['msg']}") from None


def encode_live_chunk_frame(
    request_id: str, sequence: int, position: str, chunk_json: bytes
) -> bytes:
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence must be 0..2**53-1, got {sequence}")
    return (
        b'{"type":"chunk","requestId":'
        + orjson.dumps(request_id)
        + b',"sequence":%d,"position":' % sequence
        + orjson.dumps(position)
        + b',"chunk":'
        + chunk_json
        + b"}"
    )
