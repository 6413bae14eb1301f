"""Steering: user messages delivered into a running generation.

`POST /api/chat/{id}/steer` (or the WebSocket `steer` frame), in any process, pushes the
message onto the generation's steering queue in the store. The generation's producer holds a
`SteeringInbox`:

* `watch()` (a task of the generation) reads the queue as messages arrive and logs each at
  once as a transient `data-steering-queued` chunk, so every device following the generation
  sees it;
* `deliver()` runs at every step boundary (after `finish-step`, before the next model call is
  prepared): the messages received so far become `steering-message` chunks (so they come
  before the `start-step` of the step that receives them, as in the AI SDK), which put a
  `steering-message` part into the assistant message right there, and the runner calls the
  model again. The providers' conversion turns that part into a user turn at that position;
* `close(reason)` runs when the generation ends: the queue refuses new messages (409), and
  the messages never delivered are returned so the server starts the next turn with them
  (unless the generation was stopped: a stop clears the queue).

Every message ends with an outcome in its record (bridge/store/steering_records.py):
delivered at a step, or not delivered with the AI SDK's reason (`finished`,
`stop-condition`, `waiting-for-tool-results`, `aborted`, `error`). A message already
settled (a takeover reads the queue again from its start) is never delivered twice.

Modes: `queue` (the AI SDK's `steer()`: the next step boundary), `interrupt` (the same, and
the model call in progress is cut if it has produced no output yet, the AI SDK's rule; a
call that has, and running tools, are never cut: the message waits for the boundary),
`turn` (the busy policy `queue`: never delivered into this generation, it becomes the next
turn) and `turn-interrupt` (the busy policy `interrupt`: the same, and this generation ends
at its next safe point: the model call in progress is cut, tools finish, no further step).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import anyio
import orjson
from pydantic import TypeAdapter, ValidationError

from bridge.store.base import GenerationInfo, SessionStore
from bridge.store.steering_records import (
    NotDeliveredReason,
    delivered_record,
    not_delivered_record,
    record_outcome,
)
from protocol.chunks import DataChunk, SteeringMessageChunk, UIMessageChunk
from protocol.messages import SteeringContentPart, UIMessage

logger = logging.getLogger("bridge.generation.inbox")

SteeringMode = Literal["queue", "interrupt", "turn", "turn-interrupt"]
_MODES: tuple[SteeringMode, ...] = ("queue", "interrupt", "turn", "turn-interrupt")
NEXT_TURN_MODES = frozenset({"turn", "turn-interrupt"})
QUEUED_CHUNK_TYPE = "data-steering-queued"
OUTCOME_CHUNK_TYPE = "data-steering-outcome"

_PARTS = TypeAdapter(list[SteeringContentPart])


@dataclass(frozen=True, slots=True)
class SteeringRequest:
    """One steering message as queued in the store."""

    id: str
    parts: list[Any]
    """Text and file parts, validated (`SteeringContentPart`)."""
    mode: SteeringMode = "queue"

    def encode(self) -> bytes:
        return orjson.dumps(
            {"id": self.id, "parts": [p.dump() for p in self.parts], "mode": self.mode}
        )

    def parts_json(self) -> list[dict[str, Any]]:
        return [p.dump() for p in self.parts]

    @classmethod
    def decode(cls, data: bytes) -> SteeringRequest:
        raw = orjson.loads(data)
        mode: SteeringMode = next((m for m in _MODES if m == raw.get("mode")), "queue")
        return cls(id=str(raw["id"]), parts=_PARTS.validate_python(raw["parts"]), mode=mode)


def parse_steering_parts(parts: list[Any]) -> list[Any]:
    """Text and file parts as `SteeringContentPart`s (raises pydantic's ValidationError)."""
    return _PARTS.validate_python(parts)


class SteeringEmit(Protocol):
    """The generation's emitter, as the inbox uses it."""

    chunks: int
    """Chunks emitted so far (whether the model call in progress produced output)."""

    def __call__(self, chunk: UIMessageChunk, /) -> None: ...


class SteeringInbox:
    """The producer's side of a generation's steering queue (see the module docstring)."""

    def __init__(
        self,
        store: SessionStore,
        chat_id: str,
        generation_id: str,
        emit: SteeringEmit,
        *,
        wait_seconds: float = 15.0,
    ) -> None:
        self._store = store
        self._chat_id = chat_id
        self._generation_id = generation_id
        self._emit = emit
        self._wait = wait_seconds
        self._cursor = 0
        self._pending: list[SteeringRequest] = []
        self._accepting = anyio.Lock()
        """Held while items read from the queue become pending: the watcher advances the
        cursor before it awaits the store, so a boundary reading at that moment would skip a
        message it cannot see yet (and call the model without it)."""
        self._model_call: anyio.CancelScope | None = None
        self._call_started_at = 0
        self._own_chunks = 0
        """Chunks this inbox emitted (not the model's output)."""
        self.interrupted = False
        """Whether the last model call was cut short by an interrupting message."""
        self.ending = False
        """A `turn-interrupt` message arrived: no further step (the runner ends the loop)."""
        self.stop_condition = False
        """The runner's step limit ended the loop (the reason a message was not delivered)."""

    async def watch(self) -> None:
        """Log arriving messages at once; interrupt the model call when asked. Runs until
        cancelled (with the generation's task group)."""
        while True:
            try:
                items = await self._store.read_steering(
                    self._chat_id, self._generation_id, self._cursor, wait=self._wait
                )
            except Exception:
                # The boundary reads the queue again; a store outage only delays delivery.
                logger.warning("steering watch failed for %s", self._generation_id, exc_info=True)
                return
            await self._accept(items)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Around one model call: an `interrupt` message cuts it if it has produced no output
        yet; a `turn-interrupt` message cuts it in any case (what it wrote stays)."""
        self.interrupted = False
        with anyio.CancelScope() as scope:
            self._model_call = scope
            self._call_started_at = self._model_chunks()
            if self.ending or any(r.mode == "interrupt" for r in self._pending):
                # Arrived between the boundary and this call: the call has produced nothing,
                # so it may be cut at once (an empty step, then the boundary delivers).
                scope.cancel()
            try:
                yield
            finally:
                self._model_call = None
        if scope.cancelled_caught:
            self.interrupted = True

    async def deliver(self, step_number: int) -> bool:
        """At a step boundary: emit the received messages as `steering-message` chunks
        (before the `start-step` of step `step_number`, which receives them) and record them
        delivered. True when any was delivered (the model is to be called again)."""
        try:
            await self._catch_up()
        except Exception:
            # The answer goes on; what the watcher received is still delivered.
            logger.warning("could not read the steering queue of %s", self._generation_id)
        if self.ending:
            return False
        now = [r for r in self._pending if r.mode not in NEXT_TURN_MODES]
        if not now:
            return False
        self._pending = [r for r in self._pending if r.mode in NEXT_TURN_MODES]
        for request in now:
            record = delivered_record(request.id, self._generation_id, request.mode, step_number)
            with contextlib.suppress(Exception):  # the log below says it all the same
                await record_outcome(self._store, self._chat_id, record)
            # Every device following the log reads the outcome too (transient), just before
            # the message itself, which stays right before the step's `start-step`.
            self._emit_outcome({"type": "delivered", "id": request.id, "stepNumber": step_number})
        for request in now:
            self._emit(SteeringMessageChunk(id=request.id, parts=list(request.parts)))
        return True

    async def close(self, reason: NotDeliveredReason) -> list[SteeringRequest]:
        """The generation ends: refuse new messages, record those never delivered as not
        delivered (`reason`) and return them."""
        try:
            await self._store.close_steering(self._chat_id, self._generation_id)
            await self._catch_up(announce=False)
        except Exception:
            logger.warning("could not close the steering queue of %s", self._generation_id)
        left, self._pending = self._pending, []
        for request in left:
            record = not_delivered_record(request.id, self._generation_id, request.mode, reason)
            try:
                await record_outcome(self._store, self._chat_id, record)
            except Exception:
                logger.warning("could not record the outcome of steering %s", request.id)
            # Every device following the log learns it too (transient: never stored).
            self._emit_outcome({"type": "not-delivered", "id": request.id, "reason": reason})
        return left

    def _emit_outcome(self, outcome: dict[str, Any]) -> None:
        self._own_chunks += 1
        self._emit(
            DataChunk(type=OUTCOME_CHUNK_TYPE, id=outcome["id"], transient=True, data=outcome)
        )

    async def _catch_up(self, *, announce: bool = True) -> None:
        items = await self._store.read_steering(self._chat_id, self._generation_id, self._cursor)
        await self._accept(items, announce=announce)

    async def _accept(self, items: list[tuple[int, bytes]], *, announce: bool = True) -> None:
        async with self._accepting:
            await self._accept_locked(items, announce=announce)

    async def _accept_locked(self, items: list[tuple[int, bytes]], *, announce: bool) -> None:
        for position, data in items:
            if position <= self._cursor:
                continue
            self._cursor = position
            try:
                request = SteeringRequest.decode(data)
            except (ValueError, KeyError, ValidationError):
                logger.warning("ignoring a malformed steering message in %s", self._generation_id)
                continue
            if await self._settled(request.id) or any(r.id == request.id for r in self._pending):
                continue  # delivered before a takeover, or pushed twice: never twice
            self._pending.append(request)
            if not announce:
                continue
            self._own_chunks += 1
            self._emit(
                DataChunk(
                    type=QUEUED_CHUNK_TYPE,
                    id=request.id,
                    transient=True,
                    data={"id": request.id, "parts": request.parts_json(), "mode": request.mode},
                )
            )
            self._maybe_interrupt(request)

    def _maybe_interrupt(self, request: SteeringRequest) -> None:
        if request.mode == "turn-interrupt":
            self.ending = True
            if self._model_call is not None:
                self._model_call.cancel()
        elif (
            request.mode == "interrupt"
            and self._model_call is not None
            # The AI SDK's rule: only a model call that has produced no output yet.
            and self._model_chunks() == self._call_started_at
        ):
            self._model_call.cancel()

    def _model_chunks(self) -> int:
        return self._emit.chunks - self._own_chunks

    async def _settled(self, steering_id: str) -> bool:
        try:
            raw = await self._store.steering_record(self._chat_id, steering_id)
        except Exception:
            return False
        if raw is None:
            return False
        state = orjson.loads(raw).get("state")
        return state in ("delivered", "not-delivered")


def waits_for_client(message: UIMessage) -> bool:
    """Whether the message's last step ended waiting for the browser (a client tool without
    output, an approval request): then the turn is over and steering waits for the next."""
    return any(
        part.state in ("input-available", "approval-requested") for part in message.tool_parts()
    )


SteeringFollowUp = Callable[
    [GenerationInfo, str, dict[str, Any], list[SteeringRequest]], Awaitable[None]
]
"""Starts the next turn with messages that arrived too late for the generation (set by the
app: it needs the chat layer, which the runner must not import)."""
