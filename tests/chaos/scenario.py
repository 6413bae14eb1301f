"""The shape most chaos scenarios share: ask the long question on bridge `a`, follow it
with three readers, hurt something once they hold part of the text, then check them all."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tests.bridge_server import chat_body
from tests.chaos.checks import (
    assert_delivered_once_in_order,
    assert_stored_matches,
    demo_reply,
    stored_answer,
    texts,
)
from tests.chaos.readers import Delivery, Progress, follow_poll, follow_sse

LONG = "Write something long, please."
"""The demo model answers it with ~400 tokens, one every BRIDGE_DEMO_TOKEN_DELAY_MS."""
BUDGET = 90.0
"""Seconds a reader may take, faults and takeovers included (~10 s when all goes well)."""
MID_TEXT = 20
"""Text deltas the first reader holds when the fault strikes."""

Hurt = Callable[[Progress], Awaitable[Any]]
"""The fault: gets the first reader's progress (to strike again later, if it wants)."""


def chat_id_for(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def blocking(action: Callable[[], Any]) -> Hurt:
    """A blocking fault (signal a process and wait for it) run off the event loop."""

    async def hurt(progress: Progress) -> None:
        await asyncio.to_thread(action)

    return hurt


def holds_text(deltas: int) -> Callable[[Delivery], bool]:
    return lambda delivery: delivery.text_deltas() >= deltas


def _has_chunks(delivery: Delivery) -> bool:
    return bool(delivery.entries)


async def answer_hurt_mid_text(urls: list[str], chat_id: str, hurt: Hurt) -> list[Delivery]:
    """POST the long question to urls[0] and follow it (resuming on urls[1] when dropped),
    with an SSE reader and a long-poller on urls[1]; `hurt` runs once the first reader
    holds MID_TEXT text deltas and the others hold some chunks."""
    poster_progress, watcher_progress, poller_progress = Progress(), Progress(), Progress()
    async with asyncio.TaskGroup() as group:
        poster = group.create_task(
            follow_sse(
                "poster",
                urls,
                chat_id,
                post_body=chat_body(chat_id, LONG),
                budget=BUDGET,
                progress=poster_progress,
            )
        )
        await poster_progress.until("the first chunks", _has_chunks)
        watcher = group.create_task(
            follow_sse(
                "SSE reader on b", urls[1:], chat_id, budget=BUDGET, progress=watcher_progress
            )
        )
        poller = group.create_task(
            follow_poll("poller on b", urls[1:], chat_id, budget=BUDGET, progress=poller_progress)
        )
        await poster_progress.until(f"{MID_TEXT} text deltas", holds_text(MID_TEXT))
        await watcher_progress.until("the first chunks", _has_chunks)
        await poller_progress.until("the first chunks", _has_chunks)
        await hurt(poster_progress)
    return [poster.result(), watcher.result(), poller.result()]


def assert_whole_answer(
    url: str, chat_id: str, deliveries: list[Delivery], *, takeovers: int | None = None
) -> None:
    """Every reader got the whole log once, in order, ending with `finish` and no error;
    the message it builds is the demo's complete answer (reset-step applied), and the
    stored message is that message. With `takeovers`: the log shows exactly that many
    re-run steps (`reset-step`): one fault, one producer taking over, never two."""
    reasoning, text = demo_reply(LONG)
    for delivery in deliveries:
        if takeovers is not None:
            assert delivery.types.count("reset-step") == takeovers, delivery.summary()
        assert_delivered_once_in_order(delivery)
        assert delivery.types[-1] == "finish", delivery.summary()
        message = delivery.message()
        assert texts(message) == [text], f"{delivery.name}: {texts(message)}"
        assert texts(message, "reasoning") == [reasoning], delivery.name
    assert_stored_matches(stored_answer(url, chat_id), *deliveries)
