"""Steering from the outside: validate a steering request, queue it for the chat's running
generation (in whatever process it runs), answer with its outcome, and start the next turn
with messages the generation could not deliver. Shared by the HTTP endpoint, the WebSocket
`steer` frame and the busy policy of `POST /api/chat` (bridge/chat/busy.py).

Every steering message has an id and a record in the store (`put_steering_record`): its
generation, its state (`queued`, `delivered`, `not-delivered`) and its outcome in the AI
SDK's terms (`{"type": "delivered", "id", "stepNumber"}` or `{"type": "not-delivered", "id",
"reason"}`). A second request with the same id and the same content changes nothing and
answers the first one's record (the AI SDK's `steer(message, {id})` is idempotent the same
way); one with the same id and other content is refused (409 `steering_id_reused`).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import anyio
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.access.identity import LEGACY_ANONYMOUS
from bridge.chat.admission import start_admitted
from bridge.errors import GenerationNotFound, PayloadTooLarge, RequestError
from bridge.generation.ids import new_message_id
from bridge.generation.inbox import SteeringMode, SteeringRequest, parse_steering_parts
from bridge.services import Services
from bridge.store.base import GenerationInfo
from bridge.store.steering_records import (
    content_digest,
    not_delivered_record,
    outcome_of,
    queued_record,
    record_outcome,
    same_content,
)
from protocol.messages import ChatRequest, UIMessage

logger = logging.getLogger("bridge.generation.inbox")

MAX_OUTCOME_WAIT_SECONDS = 30.0
"""The longest a request waits for a steering message's outcome (`?wait=`)."""


class NothingRunning(RequestError):
    status_code = 409
    code = "no_active_generation"


class SteeringIdConflict(RequestError):
    """A steering message reusing the id of a message in the chat's history: delivered as
    the next turn it would be taken for an edit of that message."""

    status_code = 409
    code = "steering_id_conflict"


class SteeringIdReused(RequestError):
    """A steering request with the id of an earlier steering message but other content: a
    retry carries the same message; another message needs its own id."""

    status_code = 409
    code = "steering_id_reused"


class SteeringNotFound(RequestError):
    status_code = 404
    code = "not_found"


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
        check_steering_message(message)
        return message


def check_steering_message(message: UIMessage) -> None:
    """A steering message is a user message of text and file parts (raises ValueError)."""
    if message.role != "user":
        raise ValueError("a steering message has role `user`")
    kinds = {part.type for part in message.parts}
    if not kinds or not kinds <= {"text", "file"}:
        raise ValueError("a steering message holds text and file parts only")
    if not any(getattr(part, "text", None) or part.type == "file" for part in message.parts):
        raise ValueError("a steering message needs a non-empty text or a file")


def steering_answer(record: dict[str, Any], chat_id: str) -> dict[str, Any]:
    """What the steer endpoint (and its GET) answers for a steering record."""
    state = str(record.get("state", "queued"))
    answer: dict[str, Any] = {
        "queued": state == "queued",
        "chatId": chat_id,
        "generationId": record.get("generationId"),
        "steeringId": record.get("id"),
        "mode": record.get("mode", "queue"),
        "state": state,
        "outcome": outcome_of(record),
    }
    if record.get("nextTurn"):
        answer["nextTurn"] = record["nextTurn"]
    return answer


async def read_record(services: Services, chat_id: str, steering_id: str) -> dict[str, Any] | None:
    raw = await services.store.steering_record(chat_id, steering_id)
    if raw is None:
        return None
    record: dict[str, Any] = orjson.loads(raw)
    return record


async def queue_steering(
    services: Services,
    chat_id: str,
    message: UIMessage,
    mode: SteeringMode,
    generation_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Push the message onto the running generation's steering queue. Returns the answer and
    whether this request queued it (False: an earlier one with the same id did; the answer is
    that one's record). Raises NothingRunning when no generation runs (or not the one named,
    or it is just ending), SteeringIdConflict when the id names a message of the history, and
    PayloadTooLarge when the history with the queued messages would pass its limits."""
    store = services.store
    try:
        parts = parse_steering_parts([part.dump() for part in message.parts])
    except ValidationError as exc:
        raise RequestError(f"invalid steering parts: {exc.errors()[0]['msg']}") from None
    request = SteeringRequest(id=message.id, parts=parts, mode=mode)
    digest = content_digest(request.parts_json())
    earlier = await read_record(services, chat_id, message.id)
    if earlier is not None:
        return _retry_answer(earlier, chat_id, digest), False
    chat = await store.get_chat(chat_id)
    active = chat.active_generation_id if chat is not None else None
    if active is None or (generation_id is not None and generation_id != active):
        raise NothingRunning(
            f"nothing is running in chat {chat_id}: send the message as a new turn "
            "(POST /api/chat) instead"
        )
    encoded = request.encode()
    await _check_room(services, chat_id, active, message.id, len(encoded))
    record = queued_record(message.id, active, mode, digest)
    first = await store.put_steering_record(
        chat_id, message.id, orjson.dumps(record), only_if_absent=True
    )
    if first is not None:  # a request with the same id got there first
        return _retry_answer(orjson.loads(first), chat_id, digest), False
    position = await store.push_steering(chat_id, active, encoded)
    if position is None:
        await record_outcome(
            store, chat_id, not_delivered_record(message.id, active, mode, "finished")
        )
        raise NothingRunning(
            f"the generation {active} is ending; send the message as a new turn instead"
        )
    return steering_answer(record, chat_id), True


def _retry_answer(record: dict[str, Any], chat_id: str, digest: str) -> dict[str, Any]:
    """A request with the id of a recorded message: the record's answer when it carries the
    same content (a retry changes nothing), 409 when it carries another message."""
    if not same_content(record, digest):
        raise SteeringIdReused(
            f"steering message {str(record.get('id'))[:80]!r} was sent before with other "
            "content; a retry sends the same message, a new message needs a new id"
        )
    return steering_answer(record, chat_id)


async def _check_room(
    services: Services, chat_id: str, generation_id: str, steering_id: str, size: int
) -> None:
    """The history with every message queued for the generation and this one stays within
    BRIDGE_MAX_HISTORY_MESSAGES and BRIDGE_MAX_HISTORY_BYTES (delivered, they become part of
    the history), and the id names no message of the history."""
    settings = services.settings
    store = services.store
    # The sizes first (the stored history's without parsing it): a history past the limit
    # is refused before it is loaded.
    queued = await store.read_steering(chat_id, generation_id, 0)
    total = await store.history_size(chat_id) + size + sum(len(data) for _, data in queued)
    limit = settings.bridge_max_history_bytes
    if total > limit:
        raise PayloadTooLarge(
            f"the chat's history with the steering messages would be larger than {limit} bytes"
        )
    history = await store.load_messages(chat_id)
    if any(item.get("id") == steering_id for item in history):
        raise SteeringIdConflict(
            f"the chat already has a message with id {steering_id[:80]!r}; "
            "give the steering message a new id"
        )
    count = len(history) + len(queued) + 1
    if count > settings.bridge_max_history_messages:
        raise PayloadTooLarge(
            f"the chat's history with the steering messages would have {count} messages "
            f"(at most {settings.bridge_max_history_messages})"
        )


async def steering_outcome(
    services: Services, chat_id: str, steering_id: str, wait: float = 0.0
) -> dict[str, Any]:
    """The steering message's answer; with `wait`, up to that many seconds for its outcome
    (woken by the generation's log: a delivery and a generation's end both write to it)."""
    record = await read_record(services, chat_id, steering_id)
    if record is None:
        raise SteeringNotFound(f"no steering message {steering_id[:80]!r} in chat {chat_id}")
    generation_id = str(record.get("generationId") or "")
    after = -1
    with anyio.move_on_after(min(max(wait, 0.0), MAX_OUTCOME_WAIT_SECONDS)):
        while record.get("state") == "queued" and wait > 0:
            try:
                read = await services.store.read(
                    chat_id, generation_id, after, limit=1000, wait=MAX_OUTCOME_WAIT_SECONDS
                )
            except GenerationNotFound:
                break
            if read.entries:
                after = read.entries[-1].offset
            record = await read_record(services, chat_id, steering_id) or record
            if read.ended and record.get("state") == "queued":
                # The end marker is written after the outcomes: nothing more will come.
                break
    return steering_answer(record, chat_id)


async def start_follow_up_turn(
    services: Services,
    info: GenerationInfo,
    model_id: str,
    request_data: dict[str, Any],
    left: list[SteeringRequest],
) -> None:
    """The generation ended before it could deliver these: they start the next turn, as if
    the chat's owner had sent them (one user message, their parts in order), within the
    owner's generation limits like any turn."""
    store = services.store
    chat = await store.get_chat(info.chat_id)
    owner = chat.owner if chat is not None and chat.owner else LEGACY_ANONYMOUS
    parts = [part for request in left for part in request.parts_json()]
    # The first message's id, unless the history holds it already (never an edit).
    taken = {item.get("id") for item in await store.load_messages(info.chat_id)}
    message_id = left[0].id if left[0].id not in taken else new_message_id()
    message = UIMessage.model_validate({"id": message_id, "role": "user", "parts": parts})
    try:
        chat_request = ChatRequest.model_validate(
            {**request_data, "id": info.chat_id, "message": message.dump(), "model": model_id}
        )
        generation = await start_admitted(services, chat_request, owner)
    except Exception:
        logger.exception("could not start the turn for steering left over in %s", info.chat_id)
        return
    for request in left:
        raw = await store.steering_record(info.chat_id, request.id)
        if raw is None:
            continue
        record = orjson.loads(raw)
        record["nextTurn"] = generation.generation_id
        await store.put_steering_record(info.chat_id, request.id, orjson.dumps(record))
