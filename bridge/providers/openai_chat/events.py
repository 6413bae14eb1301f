"""The Chat Completions stream: its chunks (parsed JSON) mapped to provider events, one
completion at a time (`_StreamState`). Compatible servers differ in small ways, handled
here: reasoning arrives as `reasoning_content` (vLLM, DeepSeek) or `reasoning` (Ollama,
newer vLLM), content as a string or as typed parts (Mistral); some send a whole tool call
in one delta, some report `stop` rather than `tool_calls` as the finish reason of a tool
call."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.errors import ProviderError
from bridge.providers._errors import stream_error
from bridge.providers.base import (
    FinishReason,
    ProviderEvent,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    StepFinished,
    TextDelta,
    TextEnd,
    TextStart,
    ToolCall,
    ToolInputDelta,
    ToolInputStart,
    Usage,
)

logger = logging.getLogger("bridge.providers.openai_chat")

LABEL = "OpenAI-compatible server"
NAME = "openai-chat"  # the provider's name (`OpenAIChatProvider.name`)

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "content_filter": "content-filter",
}


def _read_chunk(data: bytes) -> dict[str, Any] | None:
    """A chunk's JSON object, or None when it is not one."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _stream_error(error: object, *, secrets: list[str]) -> ProviderError:
    """`data: {"error": {...}}` inside the stream."""
    fields = error if isinstance(error, dict) else {}
    kind = fields.get("type") or fields.get("code")
    message = fields.get("message")
    return stream_error(
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) and message else "An error occurred during streaming",
        provider=NAME,
        label=LABEL,
        secrets=secrets,
    )


@dataclass(slots=True)
class _PendingCall:
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    started: bool = False
    done: bool = False


class _StreamState:
    """Maps chunks to provider events. Tool calls are keyed by their `index`: parallel
    calls interleave their deltas."""

    def __init__(self) -> None:
        self._text: str | None = None
        self._reasoning: str | None = None
        self._blocks = 0
        self._calls: dict[int, _PendingCall] = {}
        self._raw_finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self.saw_finish = False
        self._refused = False

    def handle(self, chunk: dict[str, Any]) -> list[ProviderEvent]:
        """One `chat.completion.chunk`, as parsed JSON (fields the API leaves out or sets
        to null are treated alike)."""
        out: list[ProviderEvent] = []
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list):
            return out
        choice = choices[0]
        delta = choice.get("delta") or _EMPTY
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out += self._reasoning_delta(reasoning)
        content = delta.get("content")
        if isinstance(content, str):
            if content:
                out += self._text_delta(content)
        elif isinstance(content, list):
            # Typed parts (Mistral): `text`, and `thinking` with its own text parts.
            for kind, text in _content_parts(content):
                out += self._text_delta(text) if kind == "text" else self._reasoning_delta(text)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused = True
            out += self._text_delta(refusal)
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or _EMPTY
            out += self._tool_delta(
                call.get("index") or 0,
                _text(call.get("id")),
                _text(function.get("name")),
                _text(function.get("arguments")),
            )
        finish_reason = choice.get("finish_reason")
        if finish_reason is not None:
            self._raw_finish = str(finish_reason)
            self.saw_finish = True
            out += self._close_blocks()
            out += self._complete_calls()
        return out

    def finish(self) -> list[ProviderEvent]:
        out = [*self._close_blocks(), *self._complete_calls()]
        raw = self._raw_finish
        reason: FinishReason = _FINISH_REASONS.get(raw, "other") if raw else "other"
        if any(call.done for call in self._calls.values()):
            reason = "tool-calls"  # Ollama reports "stop" for tool calls
        elif self._refused and reason == "stop":
            reason = "content-filter"  # the refusal came in `refusal`, as the AI SDK reads it
        out.append(
            StepFinished(finish_reason=reason, usage=_usage(self._usage), raw_finish_reason=raw)
        )
        return out

    def _text_delta(self, text: str) -> list[ProviderEvent]:
        out: list[ProviderEvent] = []
        if self._text is None:
            out += self._close_blocks()
            self._text = self._next_block("text")
            out.append(TextStart(self._text))
        out.append(TextDelta(self._text, text))
        return out

    def _reasoning_delta(self, text: str) -> list[ProviderEvent]:
        out: list[ProviderEvent] = []
        if self._reasoning is None:
            out += self._close_blocks()
            self._reasoning = self._next_block("reasoning")
            out.append(ReasoningStart(self._reasoning))
        out.append(ReasoningDelta(self._reasoning, text))
        return out

    def _next_block(self, kind: str) -> str:
        self._blocks += 1
        return f"{kind}-{self._blocks}"

    def _close_blocks(self) -> list[ProviderEvent]:
        out: list[ProviderEvent] = []
        if self._reasoning is not None:
            out.append(ReasoningEnd(self._reasoning))
            self._reasoning = None
        if self._text is not None:
            out.append(TextEnd(self._text))
            self._text = None
        return out

    def _tool_delta(
        self, index: int, call_id: str | None, name: str | None, arguments: str | None
    ) -> list[ProviderEvent]:
        call = self._calls.setdefault(index, _PendingCall())
        if call.done:
            return []
        if call_id and call.id is None:
            call.id = call_id
        if name and not call.started:
            call.name = (call.name or "") + name
        if arguments:
            call.arguments += arguments
        if call.started:
            return [ToolInputDelta(call.id or "", arguments)] if arguments else []
        if call.name is None:
            return []  # wait for the name: the start event needs it
        call.started = True
        call.id = call.id or f"call_{uuid.uuid4().hex[:24]}"
        out: list[ProviderEvent] = [*self._close_blocks(), ToolInputStart(call.id, call.name)]
        if call.arguments:
            out.append(ToolInputDelta(call.id, call.arguments))
        return out

    def _complete_calls(self) -> list[ProviderEvent]:
        out: list[ProviderEvent] = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if call.done:
                continue
            if not call.started or call.id is None or call.name is None:
                logger.warning("dropping a tool call without a name (index %d)", index)
                call.done = True
                continue
            call.done = True
            out.append(ToolCall(call.id, call.name, call.arguments or "{}"))
        return out


_EMPTY: dict[str, Any] = {}


def _content_parts(content: list[Any]) -> list[tuple[str, str]]:
    """`("text" | "reasoning", text)` of `delta.content` given as an array of parts; other
    part types are skipped (with a debug log)."""
    parts: list[tuple[str, str]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append(("text", part["text"]))
        elif kind == "thinking" and isinstance(part.get("thinking"), list):
            text = "".join(
                chunk["text"]
                for chunk in part["thinking"]
                if isinstance(chunk, dict)
                and chunk.get("type") == "text"
                and isinstance(chunk.get("text"), str)
            )
            if text:
                parts.append(("reasoning", text))
        else:
            logger.debug("Chat Completions stream: content part %r ignored", kind)
    return parts


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _usage(usage: dict[str, Any] | None) -> Usage:
    if usage is None:
        return Usage()
    details = usage.get("completion_tokens_details") or _EMPTY
    prompt = usage.get("prompt_tokens_details") or _EMPTY
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        reasoning_tokens=_int(details.get("reasoning_tokens")),
        cached_input_tokens=_int(prompt.get("cached_tokens")),
    )
