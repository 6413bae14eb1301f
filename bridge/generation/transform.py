"""Provider events → UI message chunks, for one model call (one step)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from bridge.providers import base as ev
from protocol.chunks import (
    ErrorChunk,
    FileChunk,
    ReasoningDeltaChunk,
    ReasoningEndChunk,
    ReasoningStartChunk,
    SourceDocumentChunk,
    SourceUrlChunk,
    TextDeltaChunk,
    TextEndChunk,
    TextStartChunk,
    ToolApprovalRequestChunk,
    ToolInputAvailableChunk,
    ToolInputDeltaChunk,
    ToolInputErrorChunk,
    ToolInputStartChunk,
    ToolOutputAvailableChunk,
    ToolOutputErrorChunk,
    UIMessageChunk,
)

InputCheck = Callable[[str, dict[str, Any]], str | None]
"""(tool name, parsed input) -> an error text when the call is invalid, else None."""


class StepTransformer:
    """Maps one step's provider events to chunks and remembers what the step produced.

    Block ids are prefixed with the step number: providers reuse ids such as `0` in
    every call, and the client keys open text parts by id.
    """

    def __init__(self, step: int, check_input: InputCheck | None = None) -> None:
        self._prefix = f"s{step}-"
        self._check_input = check_input
        self._open_text: set[str] = set()
        self._open_reasoning: set[str] = set()
        self.tool_calls: list[ev.ToolCall] = []
        """Complete tool calls whose input parsed as a JSON object, in order."""
        self.parsed_inputs: dict[str, Any] = {}
        self.input_errors = 0
        self.provider_approvals: list[ev.ToolApprovalRequest] = []
        """Calls of the provider's own waiting for the user's approval."""
        """Tool calls answered with `tool-input-error` (the model is told and may retry)."""
        self.finished: ev.StepFinished | None = None
        self.opened = False

    def transform(self, event: ev.ProviderEvent) -> Iterator[UIMessageChunk]:
        match event:
            case ev.TextDelta(id=block, delta=delta):
                yield TextDeltaChunk(id=self._prefix + block, delta=delta)
            case ev.ReasoningDelta(id=block, delta=delta):
                yield ReasoningDeltaChunk(id=self._prefix + block, delta=delta)
            case ev.ToolInputDelta(tool_call_id=call_id, delta=delta):
                yield ToolInputDeltaChunk(tool_call_id=call_id, input_text_delta=delta)
            case ev.StreamOpened():
                self.opened = True
            case ev.TextStart(id=block, provider_metadata=metadata):
                self._open_text.add(block)
                yield TextStartChunk(id=self._prefix + block, provider_metadata=metadata)
            case ev.TextEnd(id=block, provider_metadata=metadata):
                if block in self._open_text:
                    self._open_text.discard(block)
                    yield TextEndChunk(id=self._prefix + block, provider_metadata=metadata)
            case ev.ReasoningStart(id=block, provider_metadata=metadata):
                self._open_reasoning.add(block)
                yield ReasoningStartChunk(id=self._prefix + block, provider_metadata=metadata)
            case ev.ReasoningEnd(id=block, provider_metadata=metadata):
                if block in self._open_reasoning:
                    self._open_reasoning.discard(block)
                    yield ReasoningEndChunk(id=self._prefix + block, provider_metadata=metadata)
            case ev.ToolInputStart(tool_call_id=call_id, tool_name=name, provider_executed=pe):
                yield ToolInputStartChunk(
                    tool_call_id=call_id, tool_name=name, provider_executed=pe or None
                )
            case ev.ToolCall():
                yield self._tool_call(event)
            case ev.ToolResult(tool_call_id=call_id, output=output, error=error):
                if error is not None:
                    yield ToolOutputErrorChunk(
                        tool_call_id=call_id, error_text=error, provider_executed=True
                    )
                else:
                    yield ToolOutputAvailableChunk(
                        tool_call_id=call_id, output=output, provider_executed=True
                    )
            case ev.ToolApprovalRequest(tool_call_id=call_id, approval_id=approval_id):
                # The provider runs the call once approved: the turn waits for the answer.
                self.provider_approvals.append(event)
                yield ToolApprovalRequestChunk(approval_id=approval_id, tool_call_id=call_id)
            case ev.Source():
                yield self._source(event)
            case ev.File(media_type=media_type, url=url):
                yield FileChunk(media_type=media_type, url=url)
            case ev.EventError(text=text):
                yield ErrorChunk(error_text=text)
            case ev.StepFinished():
                yield from self.close_open_blocks()
                self.finished = event

    def close_open_blocks(self) -> Iterator[UIMessageChunk]:
        """End text and reasoning parts the provider left open at the end of a step."""
        for block in sorted(self._open_reasoning):
            yield ReasoningEndChunk(id=self._prefix + block)
        for block in sorted(self._open_text):
            yield TextEndChunk(id=self._prefix + block)
        self._open_reasoning.clear()
        self._open_text.clear()

    def _tool_call(self, call: ev.ToolCall) -> UIMessageChunk:
        text = call.input_text.strip() or "{}"
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.input_errors += 1
            return ToolInputErrorChunk(
                tool_call_id=call.tool_call_id,
                tool_name=call.tool_name,
                input=call.input_text,
                error_text=f"Invalid JSON in the tool input: {exc}",
            )
        if not isinstance(parsed, dict):
            self.input_errors += 1
            return ToolInputErrorChunk(
                tool_call_id=call.tool_call_id,
                tool_name=call.tool_name,
                input=parsed,
                error_text="The tool input must be a JSON object.",
            )
        problem = self._check_input(call.tool_name, parsed) if self._check_input else None
        if problem is not None and not call.provider_executed:
            self.input_errors += 1
            return ToolInputErrorChunk(
                tool_call_id=call.tool_call_id,
                tool_name=call.tool_name,
                input=parsed,
                error_text=problem,
            )
        self.tool_calls.append(call)
        self.parsed_inputs[call.tool_call_id] = parsed
        return ToolInputAvailableChunk(
            tool_call_id=call.tool_call_id,
            tool_name=call.tool_name,
            input=parsed,
            provider_executed=call.provider_executed or None,
            provider_metadata=call.provider_metadata,
        )

    @staticmethod
    def _source(source: ev.Source) -> UIMessageChunk:
        if source.source_type == "url":
            return SourceUrlChunk(
                source_id=source.id,
                url=source.url or "",
                title=source.title,
                provider_metadata=source.provider_metadata,
            )
        return SourceDocumentChunk(
            source_id=source.id,
            media_type=source.media_type or "text/plain",
            title=source.title or source.filename or "document",
            filename=source.filename,
            provider_metadata=source.provider_metadata,
        )
