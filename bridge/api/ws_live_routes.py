"""The live-session frames on the chat WebSocket (`steer`, `live`; see
protocol/websocket_live.py): the same operations as `POST /api/chat/{id}/steer` and
`GET /api/chat/{id}/live`, answered on the socket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from pydantic import ValidationError

from bridge.access.body import validation_details
from bridge.api.gate import Admitted
from bridge.api.live_routes import tail_position, unused_chat_tail
from bridge.chat.steer import NothingRunning, SteerBody, queue_steering
from bridge.chat.tail import READY, tail_chat
from bridge.errors import InvalidRequest
from bridge.services import Services
from protocol.websocket import encode_end_frame, encode_start_frame
from protocol.websocket_live import WsLiveFrame, WsSteerFrame, encode_live_chunk_frame

Send = Callable[..., Awaitable[None]]


async def serve_live_frame(
    send: Send,
    services: Services,
    admitted: Admitted,
    reading: anyio.CancelScope,
    frame: WsSteerFrame | WsLiveFrame,
) -> None:
    """`admitted`: the frame passed the gate; a chat that is not the caller's answers as an
    unused id."""
    chat_id = frame.id
    rid = frame.request_id
    if isinstance(frame, WsSteerFrame):
        try:
            body = SteerBody.model_validate(
                {
                    "message": frame.message.dump(),
                    "mode": frame.mode,
                    "generationId": frame.generation_id,
                }
            )
        except ValidationError as exc:
            details = validation_details(exc)
            raise InvalidRequest(f"invalid steer frame: {details[0]['message']}", details) from None
        if not admitted.visible:
            raise NothingRunning(
                f"nothing is running in chat {chat_id}: send the message as a new turn "
                "(POST /api/chat) instead"
            )
        await queue_steering(services, chat_id, body.message, body.mode, body.generation_id)
        await send(encode_end_frame(rid))
        return
    resume = tail_position(frame.cursor)
    events = (
        tail_chat(services, chat_id, resume) if admitted.visible else unused_chat_tail(services)
    )
    sequence = 0
    with reading:
        async for event in events:
            if event is READY:
                # The chat's state is taken: every later generation will reach this request.
                await send(encode_start_frame(rid))
                continue
            if event.data is None:
                continue  # the socket's keep-alive task covers idling
            await send(encode_live_chunk_frame(rid, sequence, event.position, event.data))
            sequence += 1
