"""Steering from the outside: validate a steering request, queue it for the chat's running
generation (in whatever process it runs), and start the next turn with messages that
arrived too late. Shared by the HTTP endpoint and the WebSocket `steer` frame."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.access.identity import LEGACY_ANONYMOUS
from bridge.chat.operations import start_generation
from bridge.errors import RequestError
from bridge.generation.inbox import SteeringMode, SteeringRequest, parse_steering_parts
from bridge.services import Services
from bridge.store.base import GenerationInfo
from protocol.messages import ChatRequest, UIMessage

logger = logging.getLogger("bridge.generation.inbox")


class NothingRunning(RequestError):
    status_code = 409
    code = "no_active_generation"


class SteerBody(BaseModel):
    """`POST /api/chat/{id}/steer`: `{"message": {id, role: "user", parts}, "mode"?,
    "generationId"?}`. Only text and file parts; `generationId` (optional) makes the request
    fail with 409 unless that generation is the one running."""

    model_config = ConfigDict(populate_by_name=True)

    message: UIMessage
    mode: Literal["queue", "interrupt"] = "queue"
    generation_id: str | None = Field(default=None, alias="generationId", max_length=200)

    @field_validator("message")
    @classmethod
    def _user_text_or_files(cls, message: UIMessage) -> UIMessage:
        if message.role != "user":
            raise ValueError("a steering message has role `user`")
        kinds = {part.type for part in message.parts}
        if not kinds or not kinds <= {"text", "file"}:
            raise ValueError("a steering message holds text and file parts only")
        if not any(getattr(part, "text", None) or part.type == "file" for part in message.parts):
            raise ValueError("a steering message needs a non-empty text or a file")
        return message


async def queue_steering(
    services: Services,
    chat_id: str,
    message: UIMessage,
    mode: SteeringMode,
    generation_id: str | None = None,
) -> dict[str, Any]:
    """Push the message onto the running generation's steering queue. Raises NothingRunning
    when no generation runs (or not the one named, or it is just ending)."""
    chat = await services.store.get_chat(chat_id)
    active = chat.active_generation_id if chat is not None else None
    if active is None or (generation_id is not None and generation_id != active):
        raise NothingRunning(
            f"nothing is running in chat {chat_id}: send the message as a new turn "
            "(POST /api/chat) instead"
        )
    try:
        parts = parse_steering_parts([part.dump() for part in message.parts])
    except ValidationError as exc:
        raise RequestError(f"invalid steering parts: {exc.errors()[0]['msg']}") from None
    request = SteeringRequest(id=message.id, parts=parts, mode=mode)
    position = await services.store.push_steering(chat_id, active, request.encode())
    if position is None:
        raise NothingRunning(
            f"the generation {active} is ending; send the message as a new turn instead"
        )
    return {
        "queued": True,
        "chatId": chat_id,
        "generationId": active,
        "steeringId": message.id,
        "mode": mode,
    }


async def start_follow_up_turn(
    services: Services,
    info: GenerationInfo,
    model_id: str,
    request_data: dict[str, Any],
    left: list[SteeringRequest],
) -> None:
    """The generation ended before it could deliver these: they start the next turn, as if
    the chat's owner had sent them (one user message, their parts in order)."""
    chat = await services.store.get_chat(info.chat_id)
    owner = chat.owner if chat is not None and chat.owner else LEGACY_ANONYMOUS
    parts = [part for request in left for part in request.parts_json()]
    message = UIMessage.model_validate({"id": left[0].id, "role": "user", "parts": parts})
    try:
        chat_request = ChatRequest.model_validate(
            {**request_data, "id": info.chat_id, "message": message.dump(), "model": model_id}
        )
        await start_generation(services, chat_request, owner)
    except Exception:
        logger.exception("could not start the turn for steering left over in %s", info.chat_id)
