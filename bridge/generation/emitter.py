"""The producer's output: each chunk encoded once, written to the generation's log and
folded into the assistant message; the token usage summed over the steps."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bridge.generation.plan import Generation, GenerationPlan
from bridge.log.writer import GenerationLog
from bridge.providers import base as ev
from protocol.assembler import MessageAssembler
from protocol.chunks import FinishStepChunk, StartStepChunk, UIMessageChunk, encode_chunk


@dataclass(slots=True)
class Totals:
    """Token usage over a generation's steps."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_input_tokens: int = 0
    seen: bool = False

    def add(self, usage: ev.Usage) -> None:
        for name in ("input_tokens", "output_tokens", "reasoning_tokens", "cached_input_tokens"):
            value = getattr(usage, name)
            if value is not None:
                setattr(self, name, getattr(self, name) + value)
                self.seen = True

    def as_metadata(self) -> dict[str, int]:
        usage = {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens,
        }
        if self.reasoning_tokens:
            usage["reasoningTokens"] = self.reasoning_tokens
        if self.cached_input_tokens:
            usage["cachedInputTokens"] = self.cached_input_tokens
        return usage


def message_metadata(plan: GenerationPlan, totals: Totals) -> dict[str, Any]:
    """The `finish` chunk's metadata: the model and, when reported, the usage."""
    metadata: dict[str, Any] = {"model": plan.model_id}
    if totals.seen:
        metadata["usage"] = totals.as_metadata()
    return metadata


class Emitter:
    """Encodes each chunk once, logs it and folds it into the assistant message."""

    def __init__(self, writer: GenerationLog, assembler: MessageAssembler, generation: Generation):
        self._writer = writer
        self._assembler = assembler
        self._generation = generation
        self.step_open = False
        self.first_content_at: float | None = None
        self.chunks = 0

    @property
    def writer(self) -> GenerationLog:
        return self._writer

    async def drained(self) -> None:
        """Backpressure: wait while the store is behind this generation's chunks."""
        await self._writer.drained()

    def __call__(self, chunk: UIMessageChunk) -> None:
        self._writer.write(encode_chunk(chunk))
        self.chunks += 1
        self._assembler.apply(chunk)
        if isinstance(chunk, StartStepChunk):
            self.step_open = True
        elif isinstance(chunk, FinishStepChunk):
            self.step_open = False
        else:
            if self.first_content_at is None:
                self.first_content_at = time.monotonic()
            if not self._generation.opened.done():
                self._generation.opened.set_result(None)
