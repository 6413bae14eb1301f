"""What the SQLite store returns beyond the contract's own types (`bridge.store.base`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpenGeneration:
    """A log still open whose producer holds no lease (its process died)."""

    chat_id: str
    generation_id: str
    next_offset: int
