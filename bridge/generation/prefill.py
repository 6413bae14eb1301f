"""A taken-over step continued from its partial text instead of re-run.

When the producer of a step died while the step's only output was one text part, still
open, and the provider accepts an assistant prefill (`accepts_prefill`), the new producer
asks the model with that partial text as the last assistant message and the model
continues it. Its answer goes on in the same text part: no `reset-step`, nothing the
client saw vanishes or streams twice, and the step is not generated (and billed) again.

The prefill is sent without its trailing whitespace (Anthropic refuses one that ends with
whitespace), so the continuation usually starts with the whitespace the log already holds:
that much of it is dropped here, the rest streams as it comes.
"""

from __future__ import annotations

from collections.abc import Iterator

from bridge.generation.transform import InputCheck, StepTransformer
from bridge.providers import base as ev
from protocol.chunks import UIMessageChunk
from protocol.messages import StepStartUIPart, TextUIPart, UIMessage

# Events that put something other than text into the step.
_CONTENT = (
    ev.ReasoningStart,
    ev.ToolInputStart,
    ev.ToolCall,
    ev.ToolResult,
    ev.Source,
    ev.File,
    ev.EventError,
)


def open_text_tail(message: UIMessage) -> str | None:
    """The whitespace the open step's text ends with (what the prefill leaves out), or None
    when the step is not one open text part (then it cannot be continued)."""
    parts = message.parts
    start = max((i for i, p in enumerate(parts) if isinstance(p, StepStartUIPart)), default=-1)
    step = parts[start + 1 :]
    if len(step) != 1 or not isinstance(step[0], TextUIPart) or step[0].state != "streaming":
        return None
    text = step[0].text
    return text[len(text.rstrip()) :]


class PrefillTransformer(StepTransformer):
    """The step's transformer when the model continues the open text part `chunk_id`:
    the continuation's first text block is that part (no `text-start`), minus the
    whitespace `tail` the log holds already; any other first content ends the part."""

    def __init__(self, step: int, check_input: InputCheck | None, chunk_id: str, tail: str) -> None:
        super().__init__(step, check_input)
        prefix = f"s{step}-"
        if not chunk_id.startswith(prefix):
            raise ValueError(f"text part {chunk_id!r} is not of step {step}")
        self._block = chunk_id[len(prefix) :]
        # The part is open in the log already: only this transformer learns it.
        for _ in super().transform(ev.TextStart(id=self._block)):
            pass
        self._tail = tail
        self._adopted: str | None = None  # the continuation's block that is the part
        self._settled = False  # the continuation's first content was seen

    def transform(self, event: ev.ProviderEvent) -> Iterator[UIMessageChunk]:
        if not self._settled:
            if isinstance(event, ev.TextStart):
                self._settled = True
                self._adopted = event.id
                return
            if isinstance(event, _CONTENT):
                self._settled = True
                self._tail = ""
                yield from super().transform(ev.TextEnd(id=self._block))
        match event:
            case ev.TextDelta(id=block, delta=delta) if block == self._adopted:
                if self._tail:
                    delta = self._drop_tail(delta)
                if delta:
                    yield from super().transform(ev.TextDelta(id=self._block, delta=delta))
            case ev.TextEnd(id=block, provider_metadata=metadata) if block == self._adopted:
                self._adopted = None
                yield from super().transform(ev.TextEnd(id=self._block, provider_metadata=metadata))
            case ev.TextStart(id=block) | ev.TextDelta(id=block) | ev.TextEnd(id=block) if (
                block == self._block
            ):
                # A later block with the part's own id: kept apart from the part.
                yield from super().transform(_renamed(event, block + "c"))
            case _:
                yield from super().transform(event)

    def _drop_tail(self, delta: str) -> str:
        """The continuation's start that repeats the whitespace already logged."""
        common = 0
        limit = min(len(delta), len(self._tail))
        while common < limit and delta[common] == self._tail[common]:
            common += 1
        self._tail = self._tail[common:] if common == len(delta) else ""
        return delta[common:]


def _renamed(event: ev.TextStart | ev.TextDelta | ev.TextEnd, block: str) -> ev.ProviderEvent:
    match event:
        case ev.TextStart(provider_metadata=metadata):
            return ev.TextStart(id=block, provider_metadata=metadata)
        case ev.TextDelta(delta=delta):
            return ev.TextDelta(id=block, delta=delta)
        case ev.TextEnd(provider_metadata=metadata):
            return ev.TextEnd(id=block, provider_metadata=metadata)
