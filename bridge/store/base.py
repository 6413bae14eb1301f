"""The session store contract.

A store keeps, per chat:

* a small record (`ChatState`): the owner, the active generation (if any) and the most
  recent generation, so a late reader can still replay it for a short grace period;
* the chat's message history (a list of UIMessage dicts, JSON-ready);
* one append-only log per generation: entries with consecutive integer offsets from 0.
  Each entry is the JSON bytes of one UI message chunk, except the last entry of an ended
  generation, the end marker, which carries the outcome instead of a chunk.

Offsets are positions: chunk k of a generation has offset k on every transport (SSE `id:`,
WebSocket `sequence`, long-poll cursors). Offset 0 is always the `start` chunk, written
atomically with the generation's creation.

Only the generation's producer appends to its log (single writer). Other processes ask it
to stop through `request_stop`; if the producer has died (its lease ran out), whoever
notices may close the log with `end_generation` (appends refuse a wrong offset, so two
writers can never interleave).

Every method is safe to call from many tasks at once. Implementations: `MemoryStore`
(in-process, the default) and `RedisStore` (shared by many processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bridge.errors import (
    ChatBusy as ChatBusy,
)
from bridge.errors import (
    GenerationNotFound as GenerationNotFound,
)
from bridge.errors import (
    OffsetConflict as OffsetConflict,
)
from bridge.errors import (
    StoreError as StoreError,
)

JSONDict = dict[str, Any]


class Outcome(StrEnum):
    """How a generation ended."""

    FINISHED = "finished"
    ERROR = "error"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class GenerationInfo:
    generation_id: str
    """Unguessable id (>= 128 random bits); also the resume id handed to clients."""
    chat_id: str
    message_id: str
    """The assistant message this generation writes (the `start` chunk's `messageId`)."""
    created_at: float
    """Unix time, seconds."""


@dataclass(frozen=True, slots=True)
class ChatState:
    chat_id: str
    owner: str | None
    active_generation_id: str | None
    """The generation still running, if any."""
    last_generation_id: str | None
    """The most recently begun generation (running or ended)."""
    last_ended_at: float | None
    """When `last_generation_id` ended (Unix time), None while it runs or if none."""


@dataclass(frozen=True, slots=True)
class ChatSummary:
    chat_id: str
    title: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class LogEntry:
    offset: int
    data: bytes
    """The chunk's JSON bytes, exactly as they go on the wire."""


@dataclass(frozen=True, slots=True)
class LogRead:
    entries: list[LogEntry]
    """Chunk entries after the requested offset, in order, never the end marker."""
    ended: bool
    """True when the end marker was reached: nothing will follow `entries`."""
    outcome: Outcome | None = None
    """Set when `ended`."""


class SessionStore(Protocol):
    """What the bridge needs from a store. See the module docstring for the model."""

    async def start(self) -> None:
        """Connect, load scripts. Called once at application start-up."""

    async def close(self) -> None:
        """Release connections and wake every blocked reader."""

    # --- chats -------------------------------------------------------------------------

    async def get_chat(self, chat_id: str) -> ChatState | None:
        """The chat's record, or None when the chat is unknown (or expired)."""

    async def claim_chat(self, chat_id: str, owner: str) -> str:
        """Set the chat's owner when it has none; return the owner now recorded."""

    async def record_chat(self, owner: str, chat_id: str, title: str, updated_at: float) -> None:
        """Put the chat first in its owner's chat list, with this title."""

    async def list_chats(self, owner: str, limit: int = 50) -> list[ChatSummary]:
        """The owner's chats, most recently updated first (expired ones left out)."""

    async def load_messages(self, chat_id: str) -> list[JSONDict]:
        """The stored history ([] when none)."""

    async def save_messages(self, chat_id: str, messages: Sequence[JSONDict]) -> None:
        """Replace the stored history."""

    # --- generations -------------------------------------------------------------------

    async def begin_generation(
        self,
        info: GenerationInfo,
        start_chunk: bytes,
        messages: Sequence[JSONDict],
    ) -> None:
        """Atomically: make `info` the chat's active and last generation, create its log with
        `start_chunk` at offset 0, replace the history with `messages` and take the producer
        lease. Raises ChatBusy when another generation is active and its lease is alive; an
        active generation whose lease expired is replaced (its log is left as it was)."""

    async def append(
        self, chat_id: str, generation_id: str, first_offset: int, chunks: Sequence[bytes]
    ) -> None:
        """Append `chunks` at offsets first_offset, first_offset+1, ... in one round trip and
        renew the producer lease. Wakes blocked readers. Raises OffsetConflict when
        first_offset is not the next offset (nothing is written then)."""

    async def end_generation(
        self,
        chat_id: str,
        generation_id: str,
        offset: int,
        outcome: Outcome,
        messages: Sequence[JSONDict] | None,
    ) -> None:
        """In one atomic step: write the end marker at `offset`, replace the history with
        `messages` (unless None, or unless a newer generation has begun on the chat since:
        its history wins), clear the active pointer only if it still names this
        generation, record the end time, and give the log the finished-log TTL. Raises
        OffsetConflict like `append`."""

    async def read(
        self,
        chat_id: str,
        generation_id: str,
        after: int,
        *,
        limit: int = 1000,
        wait: float = 0.0,
        live: bool = False,
    ) -> LogRead:
        """Entries with offset > `after` (after=-1: from the start), at most `limit`.
        When there are none yet and the log has not ended, wait up to `wait` seconds for
        some (a blocking read, never a polling loop) and return what arrived (maybe
        nothing). Raises GenerationNotFound when the log does not exist.

        `live=True` is a promise from a follower that `after` is not past the end marker
        (it read this log before without reaching the end): the store may then skip its
        checks and go straight to the blocking read (Redis: one XREAD per wake-up)."""

    async def producer_alive(self, chat_id: str, generation_id: str) -> bool:
        """Whether the generation's producer lease is still held."""

    async def renew_lease(self, chat_id: str, generation_id: str) -> None:
        """Keep the producer lease alive while no chunk is appended (a long tool call)."""

    # --- stop ----------------------------------------------------------------------------

    async def request_stop(self, chat_id: str, generation_id: str) -> None:
        """Ask the generation's producer, in whatever process, to stop. Idempotent."""

    async def wait_for_stop(self, chat_id: str, generation_id: str) -> None:
        """Return as soon as a stop has been requested for the generation (at once if it
        already was). Cancellable."""

    # --- live sessions: steering queues and the chat's generation feed -------------------
    # Additive methods (bridge/store/live_memory.py, bridge/store/live_redis.py). Both
    # sequences number their items 1, 2, 3, ...; `after=0` reads from the first.

    async def push_steering(self, chat_id: str, generation_id: str, message: bytes) -> int | None:
        """Append a steering message (JSON bytes) to the generation's steering queue and
        wake its reader. Returns its position, or None when the queue was closed (the
        generation is ending: the caller answers 409)."""

    async def read_steering(
        self, chat_id: str, generation_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        """The queue's messages after position `after`, in order; when there are none, wait
        up to `wait` seconds for one (a blocking read, never a polling loop). Reading does
        not consume: the reader keeps its own cursor, so a cancelled read loses nothing."""

    async def close_steering(self, chat_id: str, generation_id: str) -> None:
        """Refuse every later `push_steering` for the generation (idempotent)."""

    async def announce_generation(self, chat_id: str, generation_id: str, record: bytes) -> int:
        """Append `record` (JSON bytes naming the generation and the user message that
        started it) to the chat's generation feed; returns its position. Called right after
        `begin_generation`, as a separate step."""

    async def read_generations(
        self, chat_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        """The chat's feed records after position `after`, in order; when there are none,
        wait up to `wait` seconds for one (blocking, never polling)."""
