"""What every chaos scenario asserts about the readers and the stored answer."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import httpx

from bridge.providers.base import ModelRequest
from bridge.providers.demo import plan_reply
from protocol.messages import UIMessage
from tests.chaos.readers import TERMINAL, Delivery


def demo_reply(user_text: str) -> tuple[str, str]:
    """(reasoning, text) the `demo:scripted` model writes for a first user message."""
    message = UIMessage.model_validate(
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": user_text}]}
    )
    reply = plan_reply(ModelRequest(model="scripted", messages=[message]))
    return reply.reasoning, reply.text


def texts(message: dict[str, Any], kind: str = "text") -> list[str]:
    return [str(part["text"]) for part in message["parts"] if part["type"] == kind]


def tool_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [part for part in message["parts"] if str(part["type"]).startswith("tool-")]


def assert_delivered_once_in_order(delivery: Delivery, *, errors_allowed: bool = False) -> None:
    """Every chunk of the log from offset 0 to its closing chunk, each once, in order, and
    nothing after the end."""
    summary = delivery.summary()
    print(summary)  # what each reader went through, shown with the test's output
    assert delivery.done, f"never saw the end: {summary}"
    assert delivery.stalls == 0, f"a connection went silent (a hang): {summary}"
    offsets = delivery.offsets
    twice = sorted(offset for offset, count in Counter(offsets).items() if count > 1)
    assert not twice, f"delivered twice: offsets {twice[:20]} ({summary})"
    assert offsets == list(range(len(offsets))), (
        f"offsets not contiguous from 0: first gap after "
        f"{next((a for a, b in itertools.pairwise(offsets) if b != a + 1), None)} "
        f"({summary})"
    )
    types = delivery.types
    assert types[0] == "start", summary
    if delivery.unlogged_end is None:
        closing = [index for index, kind in enumerate(types) if kind in TERMINAL]
        # An `error` chunk may precede the `finish` the end path writes after it.
        assert closing and closing[-1] == len(types) - 1, (
            f"the closing chunk is not last: {summary}"
        )
    if not errors_allowed:
        errors = [chunk for chunk in delivery.chunks if chunk["type"] in ("error", "abort")]
        if delivery.unlogged_end is not None:
            errors.append(delivery.unlogged_end)
        assert not errors, f"{delivery.name} got {errors} ({summary})"


def stored_answer(url: str, chat_id: str) -> dict[str, Any]:
    """The chat's stored history (GET /api/chat/{id}/messages) once nothing runs."""
    response = httpx.get(f"{url}/api/chat/{chat_id}/messages", timeout=30)
    assert response.status_code == 200, response.text
    history: dict[str, Any] = response.json()
    assert history["activeGenerationId"] is None, f"still running: {history}"
    return history


def assert_stored_matches(history: dict[str, Any], *deliveries: Delivery) -> dict[str, Any]:
    """The stored assistant message is the message every reader built from its chunks."""
    assistant: dict[str, Any] = history["messages"][-1]
    assert assistant["role"] == "assistant", history
    for delivery in deliveries:
        built = delivery.message()
        assert built["id"] == assistant["id"], (delivery.name, built["id"], assistant["id"])
        assert built["parts"] == assistant["parts"], (
            f"{delivery.name} built {built['parts']}\nstored {assistant['parts']}"
        )
    return assistant
