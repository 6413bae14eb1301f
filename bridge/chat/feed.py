"""The chat's generation feed: every generation start, announced for the chat's live tails
(bridge/chat/tail.py). Kept apart from the tail so the chat layer can announce without
importing it.

The feed holds what a tail needs to show a turn's start, never more than a bound per
record: the ids and the user message, or an excerpt of it when it is large (a tail client
reads the chat's messages for the rest). The stores cap the records per chat and expire
them with the logs, so a feed's size never follows what clients send."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from bridge.generation.plan import Turn
from bridge.store.base import GenerationInfo, SessionStore
from protocol.messages import TextUIPart, UIMessage

logger = logging.getLogger("bridge.tail")

FEED_MESSAGE_BYTES = 16 * 1024
"""A user message up to this size (as JSON) is kept whole in its feed record."""
FEED_EXCERPT_CHARS = 2048
"""A larger one is kept as this much of its text, marked `truncated`."""


def feed_message(message: UIMessage) -> dict[str, Any]:
    """The message as a feed record keeps it: whole when small, else an excerpt of its
    text with its id and role (`truncated: true`)."""
    dumped = message.dump()
    if len(orjson.dumps(dumped)) <= FEED_MESSAGE_BYTES:
        return dumped
    text = " ".join(part.text for part in message.parts if isinstance(part, TextUIPart))
    return {
        "id": message.id,
        "role": message.role,
        "parts": [{"type": "text", "text": text[:FEED_EXCERPT_CHARS]}],
        "truncated": True,
    }


async def announce_started(store: SessionStore, info: GenerationInfo, turn: Turn) -> None:
    """Record the generation's start on the chat's feed (after `begin_generation`). A
    failure is logged, not raised: the generation runs anyway, tails learn of it late."""
    last = turn.history[-1] if turn.history else None
    user = (
        feed_message(last)
        if last is not None and last.role == "user" and not turn.continued
        else None
    )
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
