"""Store results for producer fencing and take-over (see /work CONTRACT: `claim_generation`,
`open_generations`, the history revision). The SQLite store returns these today; the other
stores will share them once the contract in `base` grows the same methods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.store.base import ChatState


@dataclass(frozen=True, slots=True)
class RevisionedChatState(ChatState):
    revision: int = 0
    """Raised by every `begin_generation` and `end_generation` on the chat; a begin planned
    against an older revision is refused (StaleRevision)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """The lease on an abandoned generation, granted to whoever takes it over."""

    epoch: int
    """The new epoch: every write of the new producer names it; the old one is fenced."""
    plan: bytes
    """What the runner stored at begin to re-run the generation."""
    next_offset: int
    stop_requested: bool


@dataclass(frozen=True, slots=True)
class OpenGeneration:
    """A log still open whose producer holds no lease (its process died)."""

    chat_id: str
    generation_id: str
    next_offset: int


@dataclass(frozen=True, slots=True)
class AppendBatch:
    """One generation's part of a batched append (`append_many`): the process-wide writer
    appends what every producer wrote in one batching window with one store call."""

    chat_id: str
    generation_id: str
    first_offset: int
    chunks: Sequence[bytes]
    epoch: int | None = None
