"""A steering message's record (`SessionStore.put_steering_record`): what every device reads
back as the message's outcome, in the AI SDK's terms. One shape, written by the steer
request (queued), the producer (delivered, not delivered) and the follow-up turn."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson

from bridge.store.base import SessionStore

NotDeliveredReason = Literal[
    "finished",
    "stop-condition",
    "waiting-for-tool-results",
    "aborted",
    "error",
]
"""The AI SDK's `SteeringNotDeliveredReason` (without `removed-by-prepare-step`: the bridge
has no `prepareStep`)."""


def queued_record(steering_id: str, generation_id: str, mode: str) -> dict[str, Any]:
    return {
        "id": steering_id,
        "generationId": generation_id,
        "mode": mode,
        "state": "queued",
        "at": time.time(),
    }


def delivered_record(
    steering_id: str, generation_id: str, mode: str, step_number: int
) -> dict[str, Any]:
    return {
        **queued_record(steering_id, generation_id, mode),
        "state": "delivered",
        "stepNumber": step_number,
    }


def not_delivered_record(
    steering_id: str, generation_id: str, mode: str, reason: NotDeliveredReason
) -> dict[str, Any]:
    return {
        **queued_record(steering_id, generation_id, mode),
        "state": "not-delivered",
        "reason": reason,
    }


async def record_outcome(store: SessionStore, chat_id: str, record: dict[str, Any]) -> None:
    await store.put_steering_record(chat_id, str(record["id"]), orjson.dumps(record))


def outcome_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The AI SDK's `SteeringOutcome` for a record (None while queued)."""
    if record.get("state") == "delivered":
        return {"type": "delivered", "id": record.get("id"), "stepNumber": record.get("stepNumber")}
    if record.get("state") == "not-delivered":
        return {"type": "not-delivered", "id": record.get("id"), "reason": record.get("reason")}
    return None
