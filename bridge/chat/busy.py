"""The busy policy: what a new message does while the chat's answer runs
(`BRIDGE_BUSY_POLICY`, per request the `x-bridge-busy` header or a `busy` body field):

* `reject`: 409 `generation_active`, the running generation's id in `generationId`;
* `steer`: the message goes into the running answer (steering mode `queue`: the next step
  boundary); the response follows the running generation from its start;
* `queue`: the message becomes the next turn (steering mode `turn`: durable in the store's
  steering queue, announced to every device as `data-steering-queued`, started by the
  producer when the running answer ends); the response waits for that turn and follows it;
* `interrupt`: the same, and the running answer ends at its next safe point (steering mode
  `turn-interrupt`: its model call is cut, running tools finish, no further step).

The response says what happened: the header `x-bridge-busy` (`steered`, `queued`,
`interrupting`; absent when the message started its turn at once), `x-bridge-steering-id`,
`x-bridge-running-generation-id`, and for `queue`/`interrupt` a first transient chunk
`data-busy` (`{"policy", "state": "queued", "runningGenerationId", "messageId"}`); a queued
message that will not run (a stop cleared the queue) ends the response with `data-busy`
`{"state": "dropped", "reason"}`. Works across processes: the queue, the records and the
chat's feed are in the store.

Every transport applies the policy through `start_turn`; what a queued message's response
waits for is `queued_turn` (the SSE stream), `turn_started` (the WebSocket `send` frame and
the long-poll POST, which tell the client in their own way: a `start` frame or a page).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import anyio
import orjson

from bridge.chat.admission import start_admitted
from bridge.chat.operations import follow_generation
from bridge.chat.steer import (
    NothingRunning,
    SteeringNotFound,
    check_steering_message,
    queue_steering,
    read_record,
)
from bridge.errors import ChatBusy, ChatConflict, GenerationNotFound, RequestError
from bridge.generation.inbox import SteeringMode
from bridge.services import Services
from bridge.store.base import LogEntry
from protocol.messages import ChatRequest, UIMessage

BusyPolicy = Literal["reject", "queue", "interrupt", "steer"]
BUSY_HEADER = "x-bridge-busy"
BUSY_FIELD = "busy"
BUSY_CHUNK_TYPE = "data-busy"
BUSY_RESPONSE_HEADERS = (BUSY_HEADER, "x-bridge-steering-id", "x-bridge-running-generation-id")
_MODES: dict[str, SteeringMode] = {"steer": "queue", "queue": "turn", "interrupt": "turn-interrupt"}
_STATES = {"steer": "steered", "queue": "queued", "interrupt": "interrupting"}
_ATTEMPTS = 3
"""Starts tried when the running answer ends between the refusal and the queueing."""


class GenerationRunning(ChatConflict):
    """409 with the running generation's id (the `reject` policy)."""

    def __init__(self, message: str, running_generation_id: str | None) -> None:
        super().__init__(message)
        self.running_generation_id = running_generation_id


@dataclass(frozen=True, slots=True)
class Queued:
    """A message waiting as the next turn (policy `queue` or `interrupt`)."""

    steering_id: str
    running_generation_id: str
    policy: BusyPolicy

    def busy_data(self, state: str = "queued", reason: str | None = None) -> dict[str, Any]:
        """The `data-busy` chunk's data (and the WebSocket `start` frame's `busy`)."""
        if state != "queued":
            return {"policy": self.policy, "state": state, "reason": reason or "finished"}
        return {
            "policy": self.policy,
            "state": "queued",
            "runningGenerationId": self.running_generation_id,
            "messageId": self.steering_id,
        }

    def chunk(self, state: str = "queued", reason: str | None = None) -> bytes:
        """The transient `data-busy` chunk, encoded."""
        data = self.busy_data(state, reason)
        return orjson.dumps(
            {"type": BUSY_CHUNK_TYPE, "id": self.steering_id, "transient": True, "data": data}
        )


@dataclass(slots=True)
class Started:
    """What a POST /api/chat answers with."""

    generation_id: str
    """The generation the response follows (for `queue`/`interrupt`: the running one, whose
    turn the new one waits for)."""
    skip_through: int = 0
    entries: AsyncIterator[list[LogEntry] | None] | None = None
    """The response's log entries when it does not simply follow `generation_id`."""
    headers: dict[str, str] = field(default_factory=dict)
    queued: Queued | None = None
    """Set when the message waits as the next turn (`entries` is then its SSE stream)."""


def busy_policy(headers: Mapping[str, str], chat_request: ChatRequest, default: str) -> BusyPolicy:
    value = headers.get(BUSY_HEADER)
    if value is None:
        field_value = chat_request.request_data.get(BUSY_FIELD)
        value = field_value if isinstance(field_value, str) else None
    value = value or default
    for policy in get_args(BusyPolicy):
        if value == policy:
            return policy  # type: ignore[no-any-return]
    raise RequestError(f"{BUSY_HEADER} must be one of reject, queue, interrupt, steer")


async def start_turn(
    services: Services, chat_request: ChatRequest, user: str, policy: BusyPolicy
) -> Started:
    """Start the turn, or apply the busy policy when the chat's answer is running."""
    chat_id = chat_request.id
    for _ in range(_ATTEMPTS):
        running: str | None = None
        if policy != "reject":
            # Before admission: a user at their generation limit is busy with this chat.
            chat = await services.store.get_chat(chat_id)
            running = chat.active_generation_id if chat is not None else None
        if running is None:
            try:
                generation = await start_admitted(services, chat_request, user)
            except ChatConflict as exc:
                cause = exc.__cause__
                running = cause.active_generation_id if isinstance(cause, ChatBusy) else None
                if policy == "reject" or running is None:
                    raise GenerationRunning(exc.message, running) from exc
            else:
                return Started(generation.generation_id, generation.prelude_end)
        busy = await _when_busy(services, chat_request, policy, running)
        if busy is not None:
            return busy
    raise GenerationRunning("this chat's answers keep starting; try again", None)


async def _when_busy(
    services: Services, chat_request: ChatRequest, policy: BusyPolicy, running: str
) -> Started | None:
    """Queue the message for the running generation; None when it ended meanwhile (the
    caller starts the turn as usual)."""
    message = _new_message(chat_request)
    try:
        check_steering_message(message)
    except ValueError as exc:
        raise GenerationRunning(
            f"a generation is running and this message cannot wait for it ({exc})", running
        ) from None
    try:
        answer, pushed = await queue_steering(
            services, chat_request.id, message, _MODES[policy], running
        )
    except NothingRunning:
        return None
    if not pushed and answer["state"] == "not-delivered" and not answer.get("nextTurn"):
        # A retry of a message that was settled without a turn of its own (stopped, or
        # refused at an answer's end): it will not run; the client sends it anew.
        raise GenerationRunning(
            f"message {message.id[:80]!r} was not delivered ({answer['outcome']['reason']}); "
            "send it again with a new id",
            running,
        )
    headers = {
        BUSY_HEADER: _STATES[policy],
        "x-bridge-steering-id": message.id,
        "x-bridge-running-generation-id": running,
    }
    if policy == "steer":
        return Started(running, headers=headers)
    queued = Queued(message.id, running, policy)
    entries = queued_turn(services, chat_request.id, queued)
    return Started(running, entries=entries, headers=headers, queued=queued)


def _new_message(chat_request: ChatRequest) -> UIMessage:
    if chat_request.message is not None:
        return chat_request.message
    if chat_request.messages and chat_request.trigger == "submit-message":
        return chat_request.messages[-1]
    raise GenerationRunning("a generation is running; regenerate once it ended", None)


async def queued_turn(
    services: Services, chat_id: str, queued: Queued
) -> AsyncIterator[list[LogEntry] | None]:
    """The SSE response of a queued message: `data-busy`, keep-alives while the running
    answer goes on, then the turn the message started (or `data-busy` dropped)."""
    yield [LogEntry(-1, queued.chunk())]
    turn: str | None = None
    reason: str | None = None
    waiting = _wait_for_turn(services, chat_id, queued.steering_id, queued.running_generation_id)
    async with aclosing(waiting):
        async for event in waiting:
            if isinstance(event, tuple):
                turn, reason = event
                break
            yield None
    if turn is None:
        yield [LogEntry(-1, queued.chunk("dropped", reason))]
        return
    async for batch in follow_generation(services, chat_id, turn, -1):
        yield batch


async def turn_started(
    services: Services, chat_id: str, queued: Queued, seconds: float = math.inf
) -> tuple[str | None, str | None] | None:
    """Wait up to `seconds` for the queued message's turn: (its generation id, None) once it
    started, (None, the reason) when it will not run, None when `seconds` passed first."""
    with anyio.move_on_after(seconds):
        waiting = _wait_for_turn(
            services, chat_id, queued.steering_id, queued.running_generation_id
        )
        async with aclosing(waiting):
            async for event in waiting:
                if isinstance(event, tuple):
                    return event
    return None


async def queued_of(services: Services, chat_id: str, steering_id: str) -> Queued:
    """A message queued as a next turn, from its record (a long-poll client asking for the
    turn of the message it sent; raises SteeringNotFound for an unknown id)."""
    record = await read_record(services, chat_id, steering_id)
    if record is None or record.get("mode") not in ("turn", "turn-interrupt"):
        raise SteeringNotFound(f"no queued message {steering_id[:80]!r} in chat {chat_id}")
    policy: BusyPolicy = "queue" if record.get("mode") == "turn" else "interrupt"
    return Queued(steering_id, str(record.get("generationId") or ""), policy)


async def _wait_for_turn(
    services: Services, chat_id: str, steering_id: str, running: str
) -> AsyncGenerator[tuple[str | None, str | None] | None]:
    """None per heartbeat while waiting; last, (the next turn's generation id or None, the
    reason it will not run)."""
    store = services.store
    heartbeat = services.settings.bridge_heartbeat_seconds
    after = -1
    while True:  # the running answer goes on
        record = await read_record(services, chat_id, steering_id) or {}
        if record.get("nextTurn"):
            yield str(record["nextTurn"]), None
            return
        if record.get("state") == "not-delivered" and record.get("reason") == "aborted":
            yield None, "aborted"
            return
        try:
            read = await store.read(chat_id, running, after, limit=1000, wait=heartbeat)
        except GenerationNotFound:
            break
        if read.entries:
            after = read.entries[-1].offset
        elif not read.ended:
            yield None
        if read.ended:
            break
    # Ended: its producer starts the next turn right after storing the history.
    yield await _next_turn(services, chat_id, steering_id, running, 2 * heartbeat)


async def _next_turn(
    services: Services, chat_id: str, steering_id: str, running: str, seconds: float
) -> tuple[str | None, str | None]:
    """The turn the ended generation's producer starts with the message (woken by the
    chat's feed), within `seconds`."""
    store = services.store
    # Every message left at the end goes into one turn, whose user message has the id of the
    # first of them: any id of the ended generation's queue names that turn (the records'
    # `nextTurn` say it too, but only once the turn's model call was accepted).
    queued_ids = {steering_id}
    for _, data in await store.read_steering(chat_id, running, 0):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            queued_ids.add(str(orjson.loads(data)["id"]))
    arrived = await store.read_generations(chat_id, 0)
    cursor = 0
    with anyio.move_on_after(seconds):
        while True:
            for position, data in arrived:
                cursor = position
                announced = orjson.loads(data)
                user = announced.get("userMessage") or {}
                if user.get("id") in queued_ids:
                    return str(announced["generationId"]), None
            record = await read_record(services, chat_id, steering_id) or {}
            if record.get("nextTurn"):
                return str(record["nextTurn"]), None
            if record.get("state") == "not-delivered" and record.get("reason") == "aborted":
                break
            arrived = await store.read_generations(chat_id, cursor, wait=seconds)
    record = await read_record(services, chat_id, steering_id) or {}
    if record.get("nextTurn"):
        return str(record["nextTurn"]), None
    return None, str(record.get("reason") or "not started")
