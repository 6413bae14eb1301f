"""`anthropic:<model>`: the Anthropic Messages API. The SDK makes the request (auth,
retries, errors of a non-2xx answer); the event stream is read from the raw body
(`with_streaming_response`) and parsed with orjson, which costs a fraction of the SDK's
typed events. Leaving the `async with` closes the HTTP response, so a stop reaches
Anthropic at once.

Thinking blocks come back on later turns only with their signature (Anthropic verifies
it), which `ReasoningEnd` hands out as `providerMetadata.anthropic.signature`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import anthropic
import orjson
from anthropic import AsyncAnthropic, omit
from anthropic.types import (
    Base64ImageSourceParam,
    ContentBlockParam,
    DocumentBlockParam,
    MessageParam,
    ThinkingConfigEnabledParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUnionParam,
)

from bridge.errors import ProviderError
from bridge.providers._convert import (
    AssistantStep,
    Deadline,
    SystemTurn,
    ToolExchange,
    UserTurn,
    conversation_turns,
    error_for_status,
    file_kind,
    metadata_value,
    parse_data_url,
    stream_error,
    to_json,
    unsupported_file_note,
)
from bridge.providers._sdk_http import ProviderHTTP, sdk_http_client, sdk_timeout
from bridge.providers._sse import DEFAULT_MAX_EVENT_BYTES
from bridge.providers._stream import MALFORMED, read_sse, timed_out, unreadable_event_text
from bridge.providers.base import (
    EventError,
    FinishReason,
    ModelRequest,
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
    ToolSpec,
    Usage,
)
from protocol.messages import FileUIPart, ReasoningUIPart, TextUIPart

logger = logging.getLogger(__name__)

LABEL = "Anthropic"
DEFAULT_MAX_TOKENS = 4096

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool-calls",
    "refusal": "content-filter",
    "pause_turn": "stop",  # a long server-tool turn paused: as the AI SDK reports it
}


def anthropic_error(
    exc: anthropic.AnthropicError, *, provider: str, secrets: Sequence[str]
) -> ProviderError:
    """Map an SDK error; messages come from the parsed body (`str(exc)` quotes it whole)."""
    if isinstance(exc, anthropic.APITimeoutError) and timed_out(exc):
        return error_for_status(None, "request timed out", provider=provider, label=LABEL)
    if isinstance(exc, anthropic.APIConnectionError):  # (a timeout is one too)
        return error_for_status(
            None, "could not connect to the API", provider=provider, label=LABEL
        )
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code < 400:
            # An `error` event inside a 200 stream (overloaded, api_error, …).
            return stream_error(
                exc.type, exc.api_message, provider=provider, label=LABEL, secrets=secrets
            )
        return error_for_status(
            exc.status_code, exc.api_message, provider=provider, label=LABEL, secrets=secrets
        )
    return ProviderError(f"{LABEL} client error: {type(exc).__name__}", provider=provider)


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float | None = 600.0,
        max_retries: int = 2,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        thinking_budget: int | None = None,
        client: AsyncAnthropic | None = None,
        http: ProviderHTTP = "aiohttp",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._max_event_bytes = max_event_bytes
        self._client = client or AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=sdk_timeout(timeout),
            max_retries=max_retries,
            http_client=sdk_http_client(anthropic, http),
        )
        self._secrets = [api_key]
        self._timeout = timeout
        self._default_max_tokens = default_max_tokens
        self._thinking_budget = thinking_budget

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        deadline = Deadline(self._timeout)
        system, messages = to_messages(request)
        max_tokens = request.max_output_tokens or self._default_max_tokens
        thinking: ThinkingConfigEnabledParam | None = None
        budget = request.options.thinking_budget or self._thinking_budget
        if budget:
            # The budget counts against max_tokens: add it, so the answer keeps its share.
            thinking = {"type": "enabled", "budget_tokens": budget}
            max_tokens += budget
        # This SDK no longer declares `temperature`; the API takes it (not with thinking).
        extra = (
            {"temperature": request.temperature}
            if request.temperature is not None and thinking is None
            else None
        )
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    self._client.messages.with_streaming_response.create(
                        model=request.model,
                        max_tokens=max_tokens,
                        messages=messages,
                        system=system or omit,
                        tools=to_tools(request) or omit,
                        thinking=thinking or omit,
                        stream=True,
                        extra_body=extra,
                        extra_headers=_beta_headers(request),
                    )
                )
            except anthropic.AnthropicError as exc:
                raise anthropic_error(exc, provider=self.name, secrets=self._secrets) from exc

            state = _StreamState()
            # After message_stop the loop reads on to the end of the body, which lets the
            # connection go back to the pool rather than be closed.
            # Closed by the stack (before the response) however the loop is left.
            stream = await stack.enter_async_context(
                aclosing(
                    read_sse(
                        response.http_response,
                        deadline,
                        provider=self.name,
                        label=LABEL,
                        max_event_bytes=self._max_event_bytes,
                    )
                )
            )
            async for events in stream:
                for name, data in events:
                    if name == "ping" or state.finished:
                        continue  # what the SDK skips too
                    event = _read_event(data)
                    # Some Anthropic-compatible servers send no `event:` lines: the type is
                    # the payload's own.
                    if name == "error" or (event is not None and event.get("type") == "error"):
                        raise _stream_error(event or {}, secrets=self._secrets)
                    produced = None
                    if event is not None:
                        try:
                            produced = state.handle(event, request.model)
                        except MALFORMED:
                            produced = None
                    if produced is None:
                        # As the AI SDK does: the event is reported, the step goes on.
                        produced = [
                            *state.open(request.model),
                            EventError(unreadable_event_text(data, label=LABEL)),
                        ]
                    for out in produced:
                        yield out
        if state.finished:
            return
        raise error_for_status(
            None, "the stream ended before message_stop", provider=self.name, label=LABEL
        )


def _read_event(data: bytes) -> dict[str, Any] | None:
    """An event's JSON object, or None when it is not one."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _stream_error(event: dict[str, Any], *, secrets: Sequence[str]) -> ProviderError:
    """An `error` event inside a 200 stream (overloaded_error, api_error, …)."""
    error = event.get("error")
    fields = error if isinstance(error, dict) else {}
    kind, message = fields.get("type"), fields.get("message")
    return stream_error(
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) else None,
        provider=AnthropicProvider.name,
        label=LABEL,
        secrets=secrets,
    )


# --------------------------------------------------------------------------- events


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


# --------------------------------------------------------------------------- request


def to_tools(request: ModelRequest) -> list[ToolUnionParam]:
    """The request's tools, then the server tools the model is configured with
    (BRIDGE_MODEL_OPTIONS `provider_tools`), sent as given: they are in the API's shape."""
    tools: list[ToolUnionParam] = [to_tool(tool) for tool in request.tools]
    tools += [cast("ToolUnionParam", dict(tool)) for tool in request.options.provider_tools]
    return tools


# Server tools still in beta: the `anthropic-beta` value each needs, by its type's prefix.
_BETAS = {
    "web_fetch_20250910": "web-fetch-2025-09-10",
    "code_execution_20250825": "code-execution-2025-08-25",
    "tool_search_tool_regex_20251119": "advanced-tool-use-2025-11-20",
    "tool_search_tool_bm25_20251119": "advanced-tool-use-2025-11-20",
}


def _beta_headers(request: ModelRequest) -> dict[str, str] | None:
    betas = dict.fromkeys(
        _BETAS[kind]
        for tool in request.options.provider_tools
        if (kind := str(tool.get("type"))) in _BETAS
    )
    return {"anthropic-beta": ",".join(betas)} if betas else None


def to_tool(tool: ToolSpec) -> ToolParam:
    return {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}


Role = Literal["user", "assistant"]


def to_messages(request: ModelRequest) -> tuple[str | None, list[MessageParam]]:
    """The system prompt (request's plus any system messages) and the messages, with
    consecutive same-role turns merged: the API wants user and assistant to alternate."""
    system = [request.system] if request.system else []
    turns: list[tuple[Role, list[ContentBlockParam]]] = []

    def add(role: Role, blocks: list[ContentBlockParam]) -> None:
        if not blocks:
            return
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))

    for turn in conversation_turns(request.messages):
        if isinstance(turn, SystemTurn):
            system.append(turn.text)
        elif isinstance(turn, UserTurn):
            add("user", _user_blocks(turn))
        else:
            add("assistant", _assistant_blocks(turn))
            # Results go in the user turn right after the assistant turn that called.
            add("user", [_tool_result(call) for call in turn.tool_exchanges])
    _trim_final_assistant(turns)
    messages: list[MessageParam] = []
    for role, blocks in turns:
        if role == "user":
            messages.append({"role": "user", "content": blocks})
        else:
            messages.append({"role": "assistant", "content": blocks})
    return ("\n\n".join(system) or None), messages


def _tool_result(call: ToolExchange) -> ContentBlockParam:
    block: ToolResultBlockParam = {
        "type": "tool_result",
        "tool_use_id": call.tool_call_id,
        "content": call.result.text,
    }
    if call.result.is_error:
        block["is_error"] = True  # errors and denials: the model should not trust the text
    return block


def _user_blocks(turn: UserTurn) -> list[ContentBlockParam]:
    blocks: list[ContentBlockParam] = []
    for part in turn.parts:
        if isinstance(part, TextUIPart):
            blocks.append({"type": "text", "text": part.text})
        else:
            blocks.append(_file_block(part))
    return blocks


_IMAGE_TYPES: dict[str, Literal["image/jpeg", "image/png", "image/gif", "image/webp"]] = {
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/png": "image/png",
    "image/gif": "image/gif",
    "image/webp": "image/webp",
}


def _file_block(part: FileUIPart) -> ContentBlockParam:
    kind = file_kind(part.media_type)
    data = parse_data_url(part.url)
    if data is None and kind in ("image", "pdf") and part.url.startswith(("http://", "https://")):
        if kind == "image":
            return {"type": "image", "source": {"type": "url", "url": part.url}}
        return {"type": "document", "source": {"type": "url", "url": part.url}}
    if data is not None:
        image_type = _IMAGE_TYPES.get(data.media_type)
        if kind == "image" and image_type is not None:
            source: Base64ImageSourceParam = {
                "type": "base64",
                "media_type": image_type,
                "data": data.data,
            }
            return {"type": "image", "source": source}
        if kind == "pdf":
            return {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": data.data},
            }
        if kind == "text":
            block: DocumentBlockParam = {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": data.text()},
            }
            if part.filename:
                block["title"] = part.filename
            return block
    return {"type": "text", "text": unsupported_file_note(part)}


def _assistant_blocks(step: AssistantStep) -> list[ContentBlockParam]:
    blocks: list[ContentBlockParam] = []
    for part in step.parts:
        if isinstance(part, ReasoningUIPart):
            redacted = metadata_value(part.provider_metadata, "anthropic", "redactedData")
            signature = metadata_value(part.provider_metadata, "anthropic", "signature")
            if isinstance(redacted, str):
                blocks.append({"type": "redacted_thinking", "data": redacted})
            elif isinstance(signature, str) and signature:
                blocks.append({"type": "thinking", "thinking": part.text, "signature": signature})
            # Without a signature the API would reject the block: it is left out.
        elif isinstance(part, TextUIPart):
            blocks.append({"type": "text", "text": part.text})
        else:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": part.tool_call_id,
                    "name": part.tool_name,
                    "input": part.input_object,
                }
            )
    return blocks


def _trim_final_assistant(turns: list[tuple[Role, list[ContentBlockParam]]]) -> None:
    """A final assistant turn is a prefill, which must not end with whitespace."""
    if not turns or turns[-1][0] != "assistant":
        return
    blocks = turns[-1][1]
    last = blocks[-1] if blocks else None
    if last is not None and last.get("type") == "text":
        text = str(last.get("text", "")).rstrip()
        if text:
            blocks[-1] = {"type": "text", "text": text}
        else:
            blocks.pop()
            if not blocks:
                turns.pop()
