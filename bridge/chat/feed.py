"""The chat's generation feed: every generation start, announced for the chat's live tails
(bridge/chat/tail.py). Kept apart from the tail so the chat layer can announce without
importing it."""

from __future__ import annotations

import logging
import time

import orjson

from bridge.generation.plan import Turn
from bridge.store.base import GenerationInfo, SessionStore

logger = logging.getLogger("bridge.tail")


async def announce_started(store: SessionStore, info: GenerationInfo, turn: Turn) -> None:
    """Record the generation's start on the chat's feed (after `begin_generation`). A
    failure is logged, not raised: the generation runs anyway, tails learn of it late."""
    last = turn.history[-1] if turn.history else None
    user = last.dump() if last is not None and last.role == "user" and not turn.continued else None
    record = {
        "generationId": info.generation_id,
        "messageId": info.message_id,
        "userMessage": user,
        "createdAt": info.created_at or time.time(),
    }
    try:
        await store.announce_generation(info.chat_id, info.generation_id, orjson.dumps(record))
    except Exception:
        logger.warning("could not announce generation %s", info.generation_id, exc_info=True)
