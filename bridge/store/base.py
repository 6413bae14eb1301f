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
to stop through `request_stop`. Every write names the producer's epoch, which the lease
holds: the store refuses a wrong offset or a stale epoch (`Fenced`) atomically, so two
writers can never interleave, and a producer whose lease ran out can never write again;
whoever takes a dead producer's generation over writes under a new epoch.

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
    Fenced as Fenced,
)
from bridge.errors import (
    GenerationNotFound as GenerationNotFound,
)
from bridge.errors import (
    OffsetConflict as OffsetConflict,
)
from bridge.errors import (
    StaleRevision as StaleRevision,
)
from bridge.errors import (
    StoreError as StoreError,
)

JSONDict = dict[str, Any]

FEED_MAX_RECORDS = 256
"""A chat's generation feed keeps its latest records only, and no longer than the logs
they name (a tail starting reads them all): its size never follows what clients send."""


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
    revision: int = 0
    """The history's revision: raised by every `begin_generation` and `end_generation`. A
    request planned on revision r begins only if the chat is still at r (`StaleRevision`)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What `claim_generation` hands the process that takes a generation over."""

    epoch: int
    """The new producer epoch: every write of the new producer names it."""
    plan: bytes
    """The plan stored by `begin_generation` (what the runner needs to re-run a step)."""
    next_offset: int
    """The offset the next chunk gets (the log as the previous producer left it)."""
    stop_requested: bool
    """A stop was asked for: the new producer only closes the log with `abort`."""


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


@dataclass(frozen=True, slots=True)
class Append:
    """One generation's part of a batched append (`SessionStore.append_many`). No chunks:
    a lease renewal (epoch and offset checked all the same)."""

    chat_id: str
    generation_id: str
    first_offset: int
    chunks: Sequence[bytes]
    epoch: int
    renew: bool = True
    """Push the lease's (and the log's) expiry forward too. The writer asks for it once per
    renewal interval, not with every batch: a store may skip the expiry writes otherwise
    (the epoch and the offset are checked all the same)."""


class LogListener(Protocol):
    """Told about changes of any log, by any process (`SessionStore.watch_logs`)."""

    def log_changed(self, chat_id: str, generation_id: str, offset: int) -> None:
        """Entries or the end marker were added to the log (maybe by another process);
        it now reaches `offset` (its last chunk's, or its end marker's)."""

    def resync(self) -> None:
        """Changes may have been missed (the notification channel was re-established):
        every followed log should be checked again."""


class SessionStore(Protocol):
    """What the bridge needs from a store. See the module docstring for the model."""

    async def start(self) -> None:
        """Connect, load scripts. Called once at application start-up."""

    async def ping(self) -> None:
        """Raise StoreError when the store cannot serve now (readiness probes)."""

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

    async def history_size(self, chat_id: str) -> int:
        """The stored history's size in bytes, its JSON as stored (0 when none), read
        without loading it: a history past the limits is refused before it is parsed."""

    async def delete_chat(self, chat_id: str) -> None:
        """Remove the chat and everything kept for it: its record, its history, every log of
        its generations (with their leases, epochs, plans and stop marks), its steering
        queues and records, its generation feed and its entry in its owner's chat list.
        Afterwards every method answers for the chat as for an id never used. Idempotent
        (an unknown id: nothing to do). The caller stops a running generation first: a
        producer still writing finds its log gone (GenerationNotFound) or its lease gone
        (Fenced) and ends."""

    # --- generations -------------------------------------------------------------------

    async def begin_generation(
        self,
        info: GenerationInfo,
        start_chunk: bytes,
        messages: Sequence[JSONDict],
        *,
        expected_revision: int | None = None,
        plan: bytes = b"",
    ) -> int:
        """Atomically: make `info` the chat's active and last generation, create its log with
        `start_chunk` at offset 0, replace the history with `messages`, store `plan`, raise
        the chat's revision and take the producer lease with epoch 1 (returned). Raises
        ChatBusy when another generation is active and its lease is alive (an active
        generation whose lease expired is replaced: its log is left as it was), and
        StaleRevision when `expected_revision` is given and the chat is at another one."""

    async def append(
        self,
        chat_id: str,
        generation_id: str,
        first_offset: int,
        chunks: Sequence[bytes],
        *,
        epoch: int,
    ) -> None:
        """Append `chunks` at offsets first_offset, first_offset+1, ... in one round trip and
        renew the producer lease. Wakes blocked readers and notifies `watch_logs`
        listeners. Raises Fenced when the lease is absent or holds another epoch,
        OffsetConflict when first_offset is not the next offset (nothing is written then),
        GenerationNotFound when the log does not exist. Idempotent: when the log already
        ends with these chunks (a retry whose first reply was lost: the next offset is
        first_offset + len(chunks)) and the epoch still holds, it succeeds."""

    async def append_many(self, appends: Sequence[Append]) -> list[StoreError | None]:
        """Several `append`s (of any chats) in one round trip, each checked on its own:
        the result per append is None (done) or the error `append` would have raised.
        Raises StoreError only when the round trip itself failed (nothing is known then;
        every append may be retried, being idempotent)."""

    async def end_generation(
        self,
        chat_id: str,
        generation_id: str,
        offset: int,
        outcome: Outcome,
        messages: Sequence[JSONDict] | None,
        *,
        epoch: int,
    ) -> None:
        """In one atomic step, when `epoch` holds the lease: write the end marker at
        `offset`, replace the history with `messages` (unless None, or unless a newer
        generation has begun on the chat since: its history wins), clear the active
        pointer only if it still names this generation, record the end time, raise the
        chat's history revision, drop the lease and give the log the finished-log TTL.
        Raises Fenced, OffsetConflict and GenerationNotFound like `append`; a retry of an
        end that was written (with this epoch) succeeds."""

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
        (it read this log before without reaching the end); stores may use it to skip
        checks. The waiting holds no connection (Redis: the wait is on the log-change
        notification, then a range read)."""

    async def producer_alive(self, chat_id: str, generation_id: str) -> bool:
        """Whether the generation's producer lease is still held."""

    async def renew_lease(self, chat_id: str, generation_id: str, *, epoch: int) -> bool:
        """Keep the producer lease alive while no chunk is appended (a long tool call).
        False when the lease lapsed or holds another epoch (the producer must stop); a
        lapsed lease is never revived."""

    async def watch_logs(self, listener: LogListener) -> None:
        """Call `listener` on every change of any log, from any process, until cancelled
        (or the store closes). The process-wide reader hub is the one caller."""

    async def claim_generation(self, chat_id: str, generation_id: str) -> Claim | None:
        """Take over a generation whose producer is gone: if its log is open and its lease
        absent, atomically raise its epoch and take the lease with the new epoch. None when
        the lease is held (someone produces it) or the log ended or is gone. Of processes
        claiming at once exactly one wins."""

    async def orphaned_generations(self) -> list[tuple[str, str]]:
        """(chat id, generation id) of active generations whose lease is gone: the
        candidates of the takeover sweep. May be slow (it scans); called every few
        seconds at most."""

    async def release_lease(self, chat_id: str, generation_id: str, *, epoch: int) -> None:
        """Drop the lease if it still holds `epoch` (a hand-over: takeover may start at
        once). The log stays open."""

    # --- stop ----------------------------------------------------------------------------

    async def request_stop(self, chat_id: str, generation_id: str) -> None:
        """Ask the generation's producer, in whatever process, to stop. Idempotent."""

    async def stop_requested(self, chat_id: str, generation_id: str) -> bool:
        """Whether a stop was requested for the generation."""

    async def wait_for_stop(self, chat_id: str, generation_id: str) -> None:
        """Return as soon as a stop has been requested for the generation (at once if it
        already was). Cancellable."""

    # --- live sessions: steering queues and the chat's generation feed -------------------
    # Additive methods (bridge/store/memory_live.py, bridge/store/redis/live.py). Both
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

    async def put_steering_record(
        self, chat_id: str, steering_id: str, record: bytes, *, only_if_absent: bool = False
    ) -> bytes | None:
        """Store a steering message's record (small JSON: its generation, state, outcome; never
        its parts), kept for the log's retention. With `only_if_absent` an existing record is
        kept and returned (two steers racing with one id: the first wins); None when `record`
        was stored."""

    async def steering_record(self, chat_id: str, steering_id: str) -> bytes | None:
        """The steering message's record, or None (never sent, or past retention)."""

    async def announce_generation(self, chat_id: str, generation_id: str, record: bytes) -> int:
        """Append `record` (JSON bytes naming the generation and the user message that
        started it) to the chat's generation feed; returns its position. Called right after
        `begin_generation`, as a separate step."""

    async def read_generations(
        self, chat_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        """The chat's feed records after position `after`, in order; when there are none,
        wait up to `wait` seconds for one (blocking, never polling)."""
