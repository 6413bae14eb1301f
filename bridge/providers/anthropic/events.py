"""The Messages stream: its events (parsed JSON) mapped to provider events, one
message at a time (`_StreamState`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from bridge.providers._convert import to_json
from bridge.providers.base import (
    FinishReason,
    ProviderEvent,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    Source,
    StepFinished,
    StreamOpened,
    TextDelta,
    TextEnd,
    TextStart,
    ToolCall,
    ToolInputDelta,
    ToolInputStart,
    ToolResult,
    Usage,
)

logger = logging.getLogger("bridge.providers.anthropic")

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool-calls",
    "refusal": "content-filter",
    "pause_turn": "stop",  # a long server-tool turn paused: as the AI SDK reports it
}


def _read_event(data: bytes) -> dict[str, Any] | None:
    """An event's JSON object, or None when it is not one."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(slots=True)
class _Block:
    kind: Literal["text", "thinking", "redacted", "tool", "server-tool", "other"]
    id: str
    name: str = ""
    parts: list[str] = field(default_factory=list)
    signature: str = ""
    data: str = ""


_EMPTY: dict[str, Any] = {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


# The code execution tool's sub-tools are shown under its own name, as the AI SDK does.
_SERVER_TOOL_NAMES = {
    "bash_code_execution": "code_execution",
    "text_editor_code_execution": "code_execution",
}


def _server_tool_input(text: str, tool: str) -> str:
    """The code execution tool's input as the AI SDK shows it: its bash and text editor
    calls marked with their type, a `{code}` call as a programmatic tool call."""
    if tool not in ("bash_code_execution", "text_editor_code_execution", "code_execution"):
        return text
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if not isinstance(value, dict) or "type" in value:
        return text
    if tool != "code_execution":
        return to_json({"type": tool, **value})
    if "code" in value:
        return to_json({"type": "programmatic-tool-call", **value})
    return text


def _server_error(call_id: str, kind: str, fields: dict[str, Any]) -> ToolResult:
    return ToolResult(call_id, error=to_json({"type": kind, "errorCode": fields.get("error_code")}))


class _StreamState:
    def __init__(self) -> None:
        self.finished = False
        self._opened = False
        self._blocks: dict[int, _Block] = {}
        self._uncached: int | None = None
        self._cache_write: int | None = None
        self._cache_read: int | None = None
        self._output: int | None = None
        self._reasoning: int | None = None
        self._stop_reason: str | None = None
        self._saw_tool = False
        self._cited: set[str] = set()
        self._server_calls: dict[str, str] = {}  # provider-executed call id -> tool name
        self._source_count = 0
        self._web_results = False  # a web search gave results: its citations add no source

    def open(self, model: str, start: dict[str, Any] = _EMPTY) -> list[ProviderEvent]:
        """`StreamOpened`, once, before anything else of the stream."""
        if self._opened:
            return []
        self._opened = True
        return [
            StreamOpened(response_id=start.get("id") or None, model=start.get("model") or model)
        ]

    def handle(self, event: dict[str, Any], model: str) -> list[ProviderEvent]:
        """One stream event, as parsed JSON."""
        if self.finished:
            return []  # nothing may follow message_stop
        kind = event.get("type")
        start = (event.get("message") or _EMPTY) if kind == "message_start" else _EMPTY
        out = self.open(model, start)
        match kind:
            case "content_block_delta":
                out += self._block_delta(event.get("index") or 0, event.get("delta") or _EMPTY)
            case "message_start":
                self._add_usage(start.get("usage") or _EMPTY)
            case "content_block_start":
                out += self._block_start(
                    event.get("index") or 0, event.get("content_block") or _EMPTY
                )
            case "content_block_stop":
                out += self._block_stop(event.get("index") or 0)
            case "message_delta":
                delta = event.get("delta") or _EMPTY
                self._stop_reason = delta.get("stop_reason") or self._stop_reason
                self._add_usage(event.get("usage") or _EMPTY)
            case "message_stop":
                out += self._finish()
            case _:
                logger.debug("Anthropic stream: event %r ignored", kind)
        return out

    def _block_start(self, index: int, block: dict[str, Any]) -> list[ProviderEvent]:
        kind = block.get("type")
        block_id = str(index)
        if kind == "text":
            self._blocks[index] = _Block("text", block_id)
            text = str(block.get("text", "") or "")
            return [TextStart(block_id), *([TextDelta(block_id, text)] if text else [])]
        if kind == "thinking":
            self._blocks[index] = _Block(
                "thinking", block_id, signature=str(block.get("signature", "") or "")
            )
            text = str(block.get("thinking", "") or "")
            return [ReasoningStart(block_id), *([ReasoningDelta(block_id, text)] if text else [])]
        if kind == "redacted_thinking":
            self._blocks[index] = _Block("redacted", block_id, data=str(block.get("data", "")))
            return [ReasoningStart(block_id)]
        if kind == "tool_use":
            self._saw_tool = True
            call_id, name = str(block.get("id", "")), str(block.get("name", ""))
            initial = block.get("input")
            entry = _Block("tool", call_id, name=name)
            if initial:
                entry.data = to_json(initial)  # input sent whole rather than streamed
            self._blocks[index] = entry
            return [ToolInputStart(call_id, name)]
        if kind == "server_tool_use":
            # A tool Anthropic runs itself (web search, web fetch, code execution, tool
            # search): shown as a provider-executed call; its input may stream.
            call_id = str(block.get("id", ""))
            name = _SERVER_TOOL_NAMES.get(str(block.get("name", "")), str(block.get("name", "")))
            initial = block.get("input")
            # `signature` holds the tool's own name: the code execution tool's input is
            # marked with it, as the AI SDK does (`{"type": "bash_code_execution", ...}`).
            entry = _Block("server-tool", call_id, name=name, signature=str(block.get("name", "")))
            if isinstance(initial, dict) and initial:
                entry.data = to_json(initial)
            self._blocks[index] = entry
            self._server_calls[call_id] = name
            return [ToolInputStart(call_id, name, provider_executed=True)]
        if kind == "mcp_tool_use":
            call_id, name = str(block.get("id", "")), str(block.get("name", ""))
            self._blocks[index] = _Block("other", block_id)
            self._server_calls[call_id] = name
            return [
                ToolInputStart(call_id, name, provider_executed=True),
                ToolCall(
                    call_id,
                    name,
                    to_json(block.get("input") or {}),
                    provider_executed=True,
                    provider_metadata={
                        "anthropic": {
                            "type": "mcp-tool-use",
                            "serverName": block.get("server_name"),
                        }
                    },
                ),
            ]
        self._blocks[index] = _Block("other", block_id)
        if isinstance(kind, str) and kind.endswith("_tool_result"):
            return self._server_tool_result(kind, block)
        logger.debug("Anthropic stream: content block %r ignored", kind)
        return []

    def _server_tool_result(self, kind: str, block: dict[str, Any]) -> list[ProviderEvent]:
        """The result of a call Anthropic ran, shaped as the AI SDK shows it. A result for
        a call this step never started is dropped: the client would reject it."""
        call_id = str(block.get("tool_use_id", ""))
        if call_id not in self._server_calls:
            logger.debug("Anthropic stream: %s for an unknown call ignored", kind)
            return []
        content = block.get("content")
        fields = content if isinstance(content, dict) else _EMPTY
        if kind == "web_search_tool_result":
            if not isinstance(content, list):
                return [_server_error(call_id, "web_search_tool_result_error", fields)]
            results = [result for result in content if isinstance(result, dict)]
            self._web_results = self._web_results or bool(results)
            out: list[ProviderEvent] = [
                ToolResult(
                    call_id,
                    output=[
                        {
                            "url": result.get("url"),
                            **({"title": result["title"]} if result.get("title") else {}),
                            "pageAge": result.get("page_age"),
                            "encryptedContent": result.get("encrypted_content"),
                            "type": result.get("type"),
                        }
                        for result in results
                    ],
                )
            ]
            for result in results:
                url = str(result.get("url") or "")
                if url:
                    self._source_count += 1
                    out.append(
                        Source(
                            "url",
                            f"{call_id}:{self._source_count}",
                            url=url,
                            title=result.get("title") or None,
                            provider_metadata={"anthropic": {"pageAge": result.get("page_age")}},
                        )
                    )
            return out
        if kind == "web_fetch_tool_result":
            if fields.get("type") != "web_fetch_result":
                return [_server_error(call_id, "web_fetch_tool_result_error", fields)]
            document = fields.get("content") or _EMPTY
            source = document.get("source") or _EMPTY
            return [
                ToolResult(
                    call_id,
                    output={
                        "type": "web_fetch_result",
                        "url": fields.get("url"),
                        "retrievedAt": fields.get("retrieved_at"),
                        "content": {
                            "type": document.get("type"),
                            "title": document.get("title"),
                            "citations": document.get("citations"),
                            "source": {
                                "type": source.get("type"),
                                "mediaType": source.get("media_type"),
                                "data": source.get("data"),
                            },
                        },
                    },
                )
            ]
        if kind == "code_execution_tool_result":
            result_type = fields.get("type")
            if result_type == "code_execution_result":
                return [
                    ToolResult(
                        call_id,
                        output={
                            "type": result_type,
                            "stdout": fields.get("stdout"),
                            "stderr": fields.get("stderr"),
                            "return_code": fields.get("return_code"),
                            "content": fields.get("content") or [],
                        },
                    )
                ]
            if result_type == "encrypted_code_execution_result":
                return [
                    ToolResult(
                        call_id,
                        output={
                            "type": result_type,
                            "encrypted_stdout": fields.get("encrypted_stdout"),
                            "stderr": fields.get("stderr"),
                            "return_code": fields.get("return_code"),
                            "content": fields.get("content") or [],
                        },
                    )
                ]
            return [_server_error(call_id, "code_execution_tool_result_error", fields)]
        if kind in ("bash_code_execution_tool_result", "text_editor_code_execution_tool_result"):
            return [ToolResult(call_id, output=content)]
        if kind == "tool_search_tool_result":
            if fields.get("type") == "tool_search_tool_search_result":
                references = fields.get("tool_references") or []
                return [
                    ToolResult(
                        call_id,
                        output=[
                            {"type": ref.get("type"), "toolName": ref.get("tool_name")}
                            for ref in references
                            if isinstance(ref, dict)
                        ],
                    )
                ]
            return [_server_error(call_id, "tool_search_tool_result_error", fields)]
        if kind == "mcp_tool_result":
            if block.get("is_error"):
                return [ToolResult(call_id, error=to_json(content))]
            return [ToolResult(call_id, output=content)]
        logger.debug("Anthropic stream: content block %r ignored", kind)
        return []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[ProviderEvent]:
        block = self._blocks.get(index)
        if block is None:
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(block.id, str(delta.get("text", "")))]
        if kind == "thinking_delta":
            return [ReasoningDelta(block.id, str(delta.get("thinking", "")))]
        if kind == "signature_delta":
            block.signature += str(delta.get("signature", ""))
            return []
        if kind == "input_json_delta":
            piece = str(delta.get("partial_json", ""))
            if not piece or block.kind not in ("tool", "server-tool"):
                return []  # only a call that was started may stream its input
            block.parts.append(piece)
            return [ToolInputDelta(block.id, piece)]
        if kind == "citations_delta":
            return self._citation(delta.get("citation") or _EMPTY)
        return []

    def _block_stop(self, index: int) -> list[ProviderEvent]:
        block = self._blocks.pop(index, None)
        if block is None:
            return []
        if block.kind == "text":
            return [TextEnd(block.id)]
        if block.kind == "thinking":
            metadata = {"anthropic": {"signature": block.signature}} if block.signature else None
            return [ReasoningEnd(block.id, provider_metadata=metadata)]
        if block.kind == "redacted":
            return [
                ReasoningEnd(
                    block.id, provider_metadata={"anthropic": {"redactedData": block.data}}
                )
            ]
        if block.kind == "tool":
            text = "".join(block.parts) or block.data or "{}"
            return [ToolCall(block.id, block.name, text)]
        if block.kind == "server-tool":
            text = _server_tool_input("".join(block.parts) or block.data or "{}", block.signature)
            return [ToolCall(block.id, block.name, text, provider_executed=True)]
        return []

    def _citation(self, citation: dict[str, Any]) -> list[ProviderEvent]:
        kind = citation.get("type")
        title = citation.get("title") or citation.get("document_title")
        metadata = {"anthropic": {"citedText": citation.get("cited_text")}}
        if kind == "web_search_result_location" and self._web_results:
            return []  # the search results already gave their sources
        if kind in ("web_search_result_location", "search_result_location"):
            url = str(citation.get("url") or citation.get("source", ""))
            if not url or url in self._cited:
                return []
            self._cited.add(url)
            return [
                Source(
                    "url",
                    f"src-{len(self._cited)}",
                    url=url,
                    title=title,
                    provider_metadata=metadata,
                )
            ]
        if kind in ("char_location", "page_location", "content_block_location"):
            index = citation.get("document_index") or 0
            key = f"document:{index}"
            if key in self._cited:
                return []
            self._cited.add(key)
            media_type = "application/pdf" if kind == "page_location" else "text/plain"
            return [
                Source(
                    "document",
                    f"src-{len(self._cited)}",
                    media_type=media_type,
                    title=str(title or f"Document {int(index) + 1}"),
                    provider_metadata=metadata,
                )
            ]
        return []

    def _add_usage(self, usage: dict[str, Any]) -> None:
        # message_start and message_delta each carry some counts (the delta's are
        # cumulative); a count a later event leaves out keeps its earlier value.
        if (uncached := _int(usage.get("input_tokens"))) is not None:
            self._uncached = uncached
        if (cache_write := _int(usage.get("cache_creation_input_tokens"))) is not None:
            self._cache_write = cache_write
        if (cache_read := _int(usage.get("cache_read_input_tokens"))) is not None:
            self._cache_read = cache_read
        if (output := _int(usage.get("output_tokens"))) is not None:
            self._output = output
        details = usage.get("output_tokens_details")
        if isinstance(details, dict):
            self._reasoning = _int(details.get("thinking_tokens"))

    def _usage(self) -> Usage:
        # Anthropic counts cache reads and writes apart from `input_tokens`; the bridge
        # reports the whole input, as OpenAI does, with the cache reads inside it.
        total_input = None
        if self._uncached is not None:
            total_input = self._uncached + (self._cache_write or 0) + (self._cache_read or 0)
        return Usage(
            input_tokens=total_input,
            output_tokens=self._output,
            reasoning_tokens=self._reasoning,
            cached_input_tokens=self._cache_read,
        )

    def _finish(self) -> list[ProviderEvent]:
        self.finished = True
        out: list[ProviderEvent] = []
        for index in sorted(self._blocks):
            out += self._block_stop(index)
        raw = self._stop_reason
        reason = _FINISH_REASONS.get(raw, "other") if raw else "other"
        if raw is None and self._saw_tool:
            reason = "tool-calls"
        out.append(StepFinished(finish_reason=reason, usage=self._usage(), raw_finish_reason=raw))
        return out
