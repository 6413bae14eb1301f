"""A steering message's record (`SessionStore.put_steering_record`): what every device reads
back as the message's outcome, in the AI SDK's terms. One shape, written by the steer
request (queued), the producer (delivered, not delivered) and the follow-up turn.

The record keeps a digest of the message's content (`digest`), written with the queued
record and carried into every later one (`record_outcome`), so a request reusing the id
tells a retry (the same content) from another message (refused) whatever the state."""

from __future__ import annotations

import hashlib
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


def content_digest(parts: list[dict[str, Any]]) -> str:
    """A digest of a steering message's content (its validated parts, keys sorted)."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def queued_record(
    steering_id: str, generation_id: str, mode: str, digest: str | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": steering_id,
        "generationId": generation_id,
        "mode": mode,
        "state": "queued",
        "at": time.time(),
    }
    if digest is not None:
        record["digest"] = digest
    return record


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
    """Write a message's new record, carrying the earlier record's content digest (the
    producer rewrites the record from the queue entry, which has no digest)."""
    steering_id = str(record["id"])
    if "digest" not in record:
        earlier = await store.steering_record(chat_id, steering_id)
        digest = orjson.loads(earlier).get("digest") if earlier is not None else None
        if isinstance(digest, str):
            record = {**record, "digest": digest}
    await store.put_steering_record(chat_id, steering_id, orjson.dumps(record))


def same_content(record: dict[str, Any], digest: str) -> bool:
    """Whether a request with this content digest is a retry of the recorded message (a
    record written before digests were kept cannot tell: it is taken as one)."""
    recorded = record.get("digest")
    return not isinstance(recorded, str) or recorded == digest


def outcome_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The AI SDK's `SteeringOutcome` for a record (None while queued)."""
    if record.get("state") == "delivered":
        return {"type": "delivered", "id": record.get("id"), "stepNumber": record.get("stepNumber")}
    if record.get("state") == "not-delivered":
        return {"type": "not-delivered", "id": record.get("id"), "reason": record.get("reason")}
    return None
