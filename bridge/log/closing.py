"""Closing a generation early: the closing chunks (one function for every path that ends
one: the runner's own end, the hand-over's successor, a dead producer's log), and
`close_claimed`, which closes a claimed log whose producer is gone when it is not to be
continued (a stop was requested, its plan cannot be carried out here).

The caller of `close_claimed` has claimed the generation (`claim_generation`: a new
epoch, exactly one winner), so nobody else writes to the log meanwhile; the message
rebuilt from the log is stored."""

from __future__ import annotations

import logging
from typing import Any

from bridge.errors import OffsetConflict, StoreError
from bridge.store.base import Claim, Outcome, SessionStore
from protocol.assembler import MessageAssembler
from protocol.chunks import (
    AbortChunk,
    ErrorChunk,
    FinishChunk,
    FinishStepChunk,
    UIMessageChunk,
    encode_chunk,
)

logger = logging.getLogger("bridge.recovery")

STOPPED_REASON = "stopped"
SHUTDOWN_REASON = "server shutting down"
INTERRUPTED_TEXT = "The generation was interrupted: the server producing it stopped."


def closing_chunks(
    *,
    error_text: str | None = None,
    abort_reason: str | None = None,
    step_open: bool,
    metadata: dict[str, Any] | None = None,
) -> list[UIMessageChunk]:
    """An error closes like the SDK's own servers: `error`, `finish-step` when a step is
    open, `finish{finishReason:"error"}`. An abort is the lone `abort{reason}` (the SDK's
    servers write nothing after it). Exactly one of the two is given."""
    if (error_text is None) == (abort_reason is None):
        raise ValueError("give exactly one of error_text and abort_reason")
    if abort_reason is not None:
        return [AbortChunk(reason=abort_reason)]
    assert error_text is not None
    chunks: list[UIMessageChunk] = [ErrorChunk(error_text=error_text)]
    if step_open:
        chunks.append(FinishStepChunk())
    chunks.append(FinishChunk(finish_reason="error", message_metadata=metadata))
    return chunks


async def close_claimed(
    store: SessionStore,
    chat_id: str,
    generation_id: str,
    claim: Claim,
    assembler: MessageAssembler,
    *,
    step_open: bool,
    error_text: str | None = None,
) -> None:
    """End the claimed generation: `abort` when a stop was requested, else `error`
    (`error_text`, by default "interrupted") with `finish-step`/`finish`."""
    if claim.stop_requested:
        chunks = closing_chunks(abort_reason=STOPPED_REASON, step_open=step_open)
        outcome = Outcome.ABORTED
    else:
        chunks = closing_chunks(error_text=error_text or INTERRUPTED_TEXT, step_open=step_open)
        outcome = Outcome.ERROR
    for chunk in chunks:
        assembler.apply(chunk)
    message = assembler.message
    history = await store.load_messages(chat_id)
    kept = [item for item in history if item.get("id") != message.id]
    try:
        await store.append(
            chat_id,
            generation_id,
            claim.next_offset,
            [encode_chunk(c) for c in chunks],
            epoch=claim.epoch,
        )
        await store.end_generation(
            chat_id,
            generation_id,
            claim.next_offset + len(chunks),
            outcome,
            [*kept, message.dump()],
            epoch=claim.epoch,
        )
    except OffsetConflict:
        logger.info("generation %s was closed by someone else meanwhile", generation_id)
    except StoreError:
        logger.exception("could not close abandoned generation %s", generation_id)
