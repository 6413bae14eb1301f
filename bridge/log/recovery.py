"""Closing a generation whose producer is gone, when it is not to be continued (a stop
was requested, its plan cannot be carried out here, or nobody can take it over).

The caller has claimed the generation (`claim_generation`: a new epoch, exactly one
winner), so nobody else writes to the log meanwhile. The log is closed with the same
closing chunks the runner writes for its own early ends (bridge/log/closing.py) and the
message rebuilt from the log is stored.
"""

from __future__ import annotations

import logging

from bridge.errors import OffsetConflict, StoreError
from bridge.log.closing import INTERRUPTED_TEXT, STOPPED_REASON, closing_chunks
from bridge.store.base import Claim, Outcome, SessionStore
from protocol.assembler import MessageAssembler
from protocol.chunks import encode_chunk

logger = logging.getLogger("bridge.recovery")


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
