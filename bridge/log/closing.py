"""The chunks that close a generation early: one function for every path that ends one
(the runner's own end, the hand-over's successor, recovery of a dead producer)."""

from __future__ import annotations

from typing import Any

from protocol.chunks import AbortChunk, ErrorChunk, FinishChunk, FinishStepChunk, UIMessageChunk

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
