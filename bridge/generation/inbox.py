"""Steering: user messages delivered into a running generation.

`POST /api/chat/{id}/steer` (or the WebSocket `steer` frame), in any process, pushes the
message onto the generation's steering queue in the store. The generation's producer holds a
`SteeringInbox`:

* `watch()` (a task of the generation) reads the queue as messages arrive and logs each at
  once as a transient `data-steering-queued` chunk, so every device following the generation
  sees it; a message in `interrupt` mode also cancels the model call in progress;
* `deliver()` runs at every step boundary (after `finish-step`, before the next model call is
  prepared): the messages received so far become `steering-message` chunks, which put a
  `steering-message` part into the assistant message right there, and the runner calls the
  model again. The providers' conversion turns that part into a user turn at that position;
* `close()` runs when the generation ends: the queue refuses new messages (409), and the
  messages that arrived after the last boundary are returned so the server starts the next
  turn with them (unless the generation was stopped).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import orjson
from pydantic import TypeAdapter, ValidationError

from bridge.store.base import GenerationInfo, SessionStore
from protocol.chunks import DataChunk, SteeringMessageChunk, UIMessageChunk
from protocol.messages import SteeringContentPart, UIMessage

logger = logging.getLogger("bridge.generation.inbox")

SteeringMode = Literal["queue", "interrupt"]
QUEUED_CHUNK_TYPE = "data-steering-queued"

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
        mode: SteeringMode = "interrupt" if raw.get("mode") == "interrupt" else "queue"
        return cls(id=str(raw["id"]), parts=_PARTS.validate_python(raw["parts"]), mode=mode)


def parse_steering_parts(parts: list[Any]) -> list[Any]:
    """Text and file parts as `SteeringContentPart`s (raises pydantic's ValidationError)."""
    return _PARTS.validate_python(parts)


class SteeringInbox:
    """The producer's side of a generation's steering queue (see the module docstring)."""

    def __init__(
        self,
        store: SessionStore,
        chat_id: str,
        generation_id: str,
        emit: Callable[[UIMessageChunk], None],
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
        self._model_call: anyio.CancelScope | None = None
        self.interrupted = False
        """Whether the last model call was cut short by an interrupting message."""

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
            self._accept(items)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Around one model call: an `interrupt` message cancels it (what it wrote stays)."""
        self.interrupted = False
        # A message that arrived between the boundary and this call waits for the next
        # boundary even in interrupt mode: cutting a call that has produced nothing would
        # only add an empty step.
        with anyio.CancelScope() as scope:
            self._model_call = scope
            try:
                yield
            finally:
                self._model_call = None
        if scope.cancelled_caught:
            self.interrupted = True

    async def deliver(self) -> bool:
        """At a step boundary: emit the received messages as `steering-message` chunks.
        True when any was delivered (the model is to be called again)."""
        try:
            await self._catch_up()
        except Exception:
            # The answer goes on; what the watcher received is still delivered.
            logger.warning("could not read the steering queue of %s", self._generation_id)
        if not self._pending:
            return False
        for request in self._pending:
            self._emit(SteeringMessageChunk(id=request.id, parts=list(request.parts)))
        self._pending.clear()
        return True

    async def close(self) -> list[SteeringRequest]:
        """The generation ends: refuse new messages, return those never delivered."""
        try:
            await self._store.close_steering(self._chat_id, self._generation_id)
            # After `finish` nothing more is logged: late messages start the next turn.
            await self._catch_up(announce=False)
        except Exception:
            logger.warning("could not close the steering queue of %s", self._generation_id)
        left, self._pending = self._pending, []
        return left

    async def _catch_up(self, *, announce: bool = True) -> None:
        items = await self._store.read_steering(self._chat_id, self._generation_id, self._cursor)
        self._accept(items, announce=announce)

    def _accept(self, items: list[tuple[int, bytes]], *, announce: bool = True) -> None:
        for position, data in items:
            if position <= self._cursor:
                continue
            self._cursor = position
            try:
                request = SteeringRequest.decode(data)
            except (ValueError, KeyError, ValidationError):
                logger.warning("ignoring a malformed steering message in %s", self._generation_id)
                continue
            self._pending.append(request)
            if not announce:
                continue
            self._emit(
                DataChunk(
                    type=QUEUED_CHUNK_TYPE,
                    id=request.id,
                    transient=True,
                    data={"id": request.id, "parts": request.parts_json(), "mode": request.mode},
                )
            )
            if request.mode == "interrupt" and self._model_call is not None:
                self._model_call.cancel()


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
