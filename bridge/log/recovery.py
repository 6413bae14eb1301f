"""Closing a generation whose producer died (its process crashed or was killed).

Any process that notices the producer's lease has run out with the log still open calls
`close_abandoned`: it rebuilds the assistant message from the log, ends the log with
`abort` (when a stop had been asked for) or `error`, and stores the message. The store
refuses a second end marker, so two processes doing this at once are harmless.
"""

from __future__ import annotations

import logging

from bridge.errors import OffsetConflict, StoreError
from bridge.store.base import Outcome, SessionStore
from protocol.assembler import MessageAssembler
from protocol.chunks import AbortChunk, ErrorChunk, encode_chunk, parse_chunk

logger = logging.getLogger("bridge.recovery")

INTERRUPTED_TEXT = "The generation was interrupted: the server producing it stopped."


async def close_abandoned(
    store: SessionStore, chat_id: str, generation_id: str, *, stop_requested: bool = False
) -> None:
    assembler = MessageAssembler()
    after = -1
    while True:
        read = await store.read(chat_id, generation_id, after, limit=1000, wait=0)
        for entry in read.entries:
            try:
                assembler.apply(parse_chunk(entry.data))
            except Exception:  # a message we cannot rebuild still gets its log closed
                logger.exception("could not fold chunk %s of %s", entry.offset, generation_id)
            after = entry.offset
        if read.ended:
            return
        if not read.entries:
            break
    final = (
        AbortChunk(reason="stopped") if stop_requested else ErrorChunk(error_text=INTERRUPTED_TEXT)
    )
    outcome = Outcome.ABORTED if stop_requested else Outcome.ERROR
    message = assembler.message
    history = await store.load_messages(chat_id)
    kept = [item for item in history if item.get("id") != message.id]
    try:
        await store.append(chat_id, generation_id, after + 1, [encode_chunk(final)], epoch=1)
        await store.end_generation(
            chat_id, generation_id, after + 2, outcome, [*kept, message.dump()], epoch=1
        )
    except OffsetConflict:
        logger.info("generation %s was closed by someone else meanwhile", generation_id)
    except StoreError:
        logger.exception("could not close abandoned generation %s", generation_id)
