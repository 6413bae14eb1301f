"""A taken-over step read again from the response the provider stored, instead of re-run.

With a provider that keeps a response going without its reader and can stream it again by
id (OpenAI Responses in background mode: `reattaches`), the producer logs the response's
id as the step's model call opens (a transient `data-provider-response` chunk: clients
ignore it, the stored message does not keep it). A new producer that takes the step over
reads the same response again from its first event: the events rebuild the step's state as
the first producer had it, the chunks the log holds already are dropped (the same events
give the same chunks), the rest is logged. No `reset-step`, nothing generated (or billed)
again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bridge.generation.transform import InputCheck, StepTransformer
from bridge.providers import base as ev
from protocol.chunks import DataChunk, UIMessageChunk

RESPONSE_CHUNK_TYPE = "data-provider-response"
"""The transient chunk naming the response a step's model call reads (`responseId`)."""


@dataclass(frozen=True, slots=True)
class Reattached:
    """Where a taken-over step's response is read again from."""

    response_id: str
    logged: int
    """The step's chunks the log holds (its model call's, not the bridge's own markers)."""


def response_chunk(response_id: str) -> DataChunk:
    return DataChunk(
        type=RESPONSE_CHUNK_TYPE, id=response_id, transient=True, data={"responseId": response_id}
    )


class ReattachedTransformer(StepTransformer):
    """The step's transformer when its response is read again from the start: the first
    `logged` chunks it makes are those the log holds already, and are dropped."""

    def __init__(self, step: int, check_input: InputCheck | None, logged: int) -> None:
        super().__init__(step, check_input)
        self._skip = logged

    def transform(self, event: ev.ProviderEvent) -> Iterator[UIMessageChunk]:
        for chunk in super().transform(event):
            if self._skip > 0:
                self._skip -= 1
            else:
                yield chunk
