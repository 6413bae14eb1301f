"""The start-up sweep: close the generations a previous process left running.

A store that outlives its process (SQLite) lists, through `open_generations()`, the logs
still open whose producer holds no lease. Until take-over re-runs them, each is closed the
way any abandoned generation is (`close_abandoned`: an error end marker, or an abort when a
stop had been asked for), so their readers and the chat see an ended answer.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from bridge.log.recovery import close_abandoned
from bridge.store.base import SessionStore
from bridge.store.sqlite_types import OpenGeneration

logger = logging.getLogger("bridge.startup")


@runtime_checkable
class ListsOpenGenerations(Protocol):
    async def open_generations(self) -> list[OpenGeneration]: ...

    async def stop_requested(self, chat_id: str, generation_id: str) -> bool: ...


async def close_left_open(store: SessionStore) -> int:
    """Close every generation left open by a stopped process; returns how many."""
    if not isinstance(store, ListsOpenGenerations):
        return 0  # memory: nothing outlives the process; Redis: readers close them
    left_open = await store.open_generations()
    for generation in left_open:
        logger.warning(
            "generation %s of chat %r was running when the previous process stopped: closing it",
            generation.generation_id,
            generation.chat_id,
        )
        stopped = await store.stop_requested(generation.chat_id, generation.generation_id)
        await close_abandoned(
            store, generation.chat_id, generation.generation_id, stop_requested=stopped
        )
    return len(left_open)
