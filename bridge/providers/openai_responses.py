"""`openai:<model>`: the OpenAI Responses API. The official SDK makes the request (auth,
base URL, retries, errors of a non-2xx answer); the event stream is read from the raw body
(`with_streaming_response`) and parsed with orjson, at a fraction of the CPU of the SDK's
typed events.

Item ids (`msg_…`, `rs_…`, `fc_…`) are handed back in `providerMetadata.openai.itemId`, so
the next request can refer to the reasoning items of earlier steps (the API keeps them
when `store` is on, its default): reasoning models work better when they see their own
reasoning across tool calls.

Also home of what both OpenAI providers share: the client and the error mapping.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from typing import Any, Literal, cast

import openai
import orjson
from openai import AsyncOpenAI, Omit, omit
from openai.types.responses import (
    EasyInputMessageParam,
    FunctionToolParam,
    ResponseFunctionToolCallParam,
    ResponseIncludable,
    ResponseInputContentParam,
    ResponseInputItemParam,
    ResponseOutputMessageParam,
    ResponseReasoningItemParam,
    ToolParam,
)
from openai.types.responses.response_input_item_param import FunctionCallOutput
from openai.types.responses.response_output_text_param import ResponseOutputTextParam
from openai.types.shared_params import Reasoning

from bridge.errors import ProviderError
from bridge.providers._convert import (
    AssistantStep,
    Deadline,
    SystemTurn,
    UserContent,
    UserTurn,
    conversation_turns,
    error_for_status,
    file_kind,
    file_text,
    metadata_value,
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
    ProviderMetadata,
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

LABEL = "OpenAI"
ReasoningSummary = Literal["auto", "concise", "detailed"]

# Model families that reason. They take `reasoning` and reject `temperature`; other models
# reject `reasoning`. ("gpt-5-chat" is the non-reasoning chat variant.)
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "codex")


def is_reasoning_model(model: str) -> bool:
    name = model.lower().rsplit("/", 1)[-1]
    return name.startswith(_REASONING_PREFIXES) and not name.startswith("gpt-5-chat")


# --------------------------------------------------------------------------- shared


def make_openai_client(
    *,
    api_key: str,
    base_url: str | None,
    timeout: float | None,
    max_retries: int,
    http: ProviderHTTP = "aiohttp",
) -> AsyncOpenAI:
    return AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=sdk_timeout(timeout),
        max_retries=max_retries,
        http_client=sdk_http_client(openai, http),
    )


def openai_error(
    exc: openai.OpenAIError, *, provider: str, secrets: Sequence[str]
) -> ProviderError:
    """Map an SDK error. Messages are built from the parsed error body, never from
    `str(exc)`, which quotes the whole body (and with it, for a 401, part of the key)."""
    if isinstance(exc, openai.APITimeoutError) and timed_out(exc):
        return error_for_status(None, "request timed out", provider=provider, label=LABEL)
    if isinstance(exc, openai.APIConnectionError):  # (a timeout is one too)
        return error_for_status(
            None, "could not connect to the API", provider=provider, label=LABEL
        )
    if isinstance(exc, openai.APIStatusError):
        return error_for_status(
            exc.status_code,
            _body_message(exc.body),
            provider=provider,
            label=LABEL,
            secrets=secrets,
        )
    if isinstance(exc, openai.APIError):
        # An error object inside the stream (`data: {"error": {...}}`).
        return stream_error(
            exc.type or exc.code,
            _body_message(exc.body) or exc.message,
            provider=provider,
            label=LABEL,
            secrets=secrets,
        )
    return ProviderError(f"{LABEL} client error: {type(exc).__name__}", provider=provider)


def _body_message(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return body if isinstance(body, str) and body else None


# --------------------------------------------------------------------------- provider


class OpenAIResponsesProvider:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float | None = 600.0,
        max_retries: int = 2,
        reasoning_summary: ReasoningSummary | None = "auto",
        client: AsyncOpenAI | None = None,
        http: ProviderHTTP = "aiohttp",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._max_event_bytes = max_event_bytes
        self._client = client or make_openai_client(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, http=http
        )
        self._secrets = [api_key]
        self._timeout = timeout
        self._reasoning_summary = reasoning_summary

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        deadline = Deadline(self._timeout)
        reasoning = is_reasoning_model(request.model)
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    self._client.responses.with_streaming_response.create(
                        model=request.model,
                        input=to_input_items(request),
                        instructions=request.system or omit,
                        tools=to_tools(request) or omit,
                        include=_include(request) or omit,
                        max_output_tokens=request.max_output_tokens or omit,
                        temperature=(
                            omit
                            if reasoning or request.temperature is None
                            else request.temperature
                        ),
                        reasoning=_reasoning(
                            reasoning, self._reasoning_summary, request.options.reasoning_effort
                        ),
                        stream=True,
                    )
                )
            except openai.OpenAIError as exc:
                raise openai_error(exc, provider=self.name, secrets=self._secrets) from exc

            state = _StreamState(frozenset(tool.name for tool in request.tools))
            opened = False
            # After the final event the loop reads on to the end of the body, which lets
            # the connection go back to the pool rather than be closed.
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
                for _, data in events:
                    if state.finished or data.startswith(b"[DONE]"):
                        continue
                    event = _read_event(data)
                    if not opened:
                        opened = True
                        created = event.get("response") if event is not None else None
                        response_id = created.get("id") if isinstance(created, dict) else None
                        yield StreamOpened(
                            response_id=_str(response_id) or None, model=request.model
                        )
                    produced = None
                    if event is not None:
                        try:
                            produced = state.handle(event)
                        except MALFORMED:
                            produced = None
                    if produced is None:
                        # As the AI SDK does: the event is reported, the step goes on.
                        yield EventError(unreadable_event_text(data, label=LABEL))
                        continue
                    for out in produced:
                        yield out
        if state.finished:
            return
        raise error_for_status(
            None,
            "the stream ended before the response completed",
            provider=self.name,
            label=LABEL,
        )


def _read_event(data: bytes) -> dict[str, Any] | None:
    """An event's JSON object, or None when it is not one."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------- events


_EMPTY: dict[str, Any] = {}
_PARALLEL = "parallel"
_RECIPIENT_PREFIX = "functions."
_HOSTED_TOOL_NAMES = {
    "web_search_call": "web_search",
    "file_search_call": "file_search",
    "code_interpreter_call": "code_interpreter",
    "image_generation_call": "image_generation",
}


def _str(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class _FunctionCall:
    call_id: str
    name: str
    item_id: str
    arguments: str = ""
    wrapper: bool = False
    """The `parallel` wrapper some deployments send: its input streaming is held back, as
    it is expanded into its calls when complete."""
    done: bool = False


class _StreamState:
    """Maps Responses stream events (parsed JSON) to provider events for one response.

    Items are found by `output_index` where the event has one: it is stable for an item's
    lifetime, while some compatible servers (GitHub Copilot's) give every event of an item
    a new `item_id`. The id an item was opened with is the one used throughout.
    """

    def __init__(self, tool_names: frozenset[str] = frozenset()) -> None:
        self.finished = False
        self._tool_names = tool_names
        self._item_ids: dict[int, str] = {}  # output_index -> the id the item opened with
        self._open_text: dict[str, bool] = {}  # item id -> any delta streamed
        self._open_reasoning: dict[str, str] = {}  # item id -> current block id
        self._calls: dict[int | str, _FunctionCall] = {}  # output_index (or item id) -> call
        self._hosted: set[str] = set()  # provider-executed calls started
        self._cited: set[str] = set()
        self._saw_tool_call = False
        self._refused = False  # the answer came as a refusal: finishes content-filter

    def _item_id(self, event: dict[str, Any]) -> str:
        index = _int(event.get("output_index"))
        if index is not None and (known := self._item_ids.get(index)) is not None:
            return known
        return _str(event.get("item_id"))

    def _call_key(self, event: dict[str, Any]) -> int | str:
        index = _int(event.get("output_index"))
        return index if index is not None else _str(event.get("item_id"))

    def handle(self, event: dict[str, Any]) -> list[ProviderEvent]:
        if self.finished:
            return []  # nothing may follow the final event
        kind = event.get("type")
        match kind:
            case "response.output_text.delta" | "response.refusal.delta":
                self._refused = self._refused or kind == "response.refusal.delta"
                item_id = self._item_id(event)
                delta = _str(event.get("delta"))
                out = self._open_text_block(item_id)
                self._open_text[item_id] = True
                return [*out, TextDelta(item_id, delta)]
            case "response.output_item.added":
                return self._item_added(event, event.get("item") or _EMPTY)
            case "response.output_item.done":
                return self._item_done(event, event.get("item") or _EMPTY)
            case "response.reasoning_summary_part.added":
                return self._summary_part(
                    self._item_id(event), _int(event.get("summary_index")) or 0
                )
            case "response.reasoning_summary_text.delta" | "response.reasoning_text.delta":
                item_id, delta = self._item_id(event), _str(event.get("delta"))
                block = self._open_reasoning.get(item_id)
                if block is None:
                    return [
                        *self._summary_part(item_id, 0),
                        ReasoningDelta(self._open_reasoning[item_id], delta),
                    ]
                return [ReasoningDelta(block, delta)]
            case "response.function_call_arguments.delta":
                call = self._calls.get(self._call_key(event))
                delta = _str(event.get("delta"))
                if call is None or not delta or call.done:
                    return []
                call.arguments += delta
                return [] if call.wrapper else [ToolInputDelta(call.call_id, delta)]
            case "response.function_call_arguments.done":
                call = self._calls.get(self._call_key(event))
                if call is None:
                    return []
                call.arguments = _str(event.get("arguments"), call.arguments)
                return self._tool_call(call)
            case "response.output_text.annotation.added":
                return self._annotation(
                    self._item_id(event),
                    _int(event.get("annotation_index")) or 0,
                    event.get("annotation") or _EMPTY,
                )
            case "response.completed" | "response.incomplete":
                finished = self._step_finished(kind, event.get("response") or _EMPTY)
                return [*self._close_all(), finished]
            case "response.failed":
                error = (event.get("response") or _EMPTY).get("error") or _EMPTY
                raise stream_error(
                    error.get("code"),
                    error.get("message") or "the response failed",
                    provider=OpenAIResponsesProvider.name,
                    label=LABEL,
                )
            case "error":
                # The API documents `code` and `message` at the top level; the stream sends
                # them nested under `error` (what the AI SDK reads first).
                nested = event.get("error")
                fields = nested if isinstance(nested, dict) else event
                raise stream_error(
                    fields.get("code") or fields.get("type"),
                    fields.get("message"),
                    provider=OpenAIResponsesProvider.name,
                    label=LABEL,
                )
        if isinstance(event.get("error"), dict):
            # A bare `{"error": {...}}` object, as compatible servers send.
            error = event["error"]
            raise stream_error(
                error.get("type") or error.get("code"),
                error.get("message"),
                provider=OpenAIResponsesProvider.name,
                label=LABEL,
            )
        if isinstance(kind, str) and kind not in _KNOWN_SKIPPED:
            logger.debug("Responses stream: event %s ignored", kind)
        return []

    def _open_text_block(self, item_id: str) -> list[ProviderEvent]:
        if item_id in self._open_text:
            return []
        self._open_text[item_id] = False
        return [TextStart(item_id, provider_metadata={"openai": {"itemId": item_id}})]

    def _item_added(self, event: dict[str, Any], item: dict[str, Any]) -> list[ProviderEvent]:
        kind = item.get("type")
        index = _int(event.get("output_index"))
        item_id = _str(item.get("id"))
        if index is not None and item_id and kind in ("message", "reasoning"):
            self._item_ids[index] = item_id
        if kind == "message":
            return self._open_text_block(item_id)
        if kind == "function_call":
            self._saw_tool_call = True
            call = _function_call(item)
            call.wrapper = call.name == _PARALLEL and _PARALLEL not in self._tool_names
            self._calls[index if index is not None else item_id or call.call_id] = call
            return [] if call.wrapper else [ToolInputStart(call.call_id, call.name)]
        if kind == "reasoning":
            return self._summary_part(item_id, 0)
        if kind in _HOSTED_TOOL_NAMES and item_id:
            self._hosted.add(item_id)
            name = _HOSTED_TOOL_NAMES[kind]
            return [ToolInputStart(item_id, name, provider_executed=True)]
        if isinstance(kind, str) and kind not in ("mcp_call", "mcp_list_tools"):
            logger.debug("Responses stream: output item %s ignored", kind)
        return []

    def _item_done(self, event: dict[str, Any], item: dict[str, Any]) -> list[ProviderEvent]:
        kind = item.get("type")
        index = _int(event.get("output_index"))
        if kind == "message":
            item_id = self._item_id(event) or _str(item.get("id"))
            if index is not None:
                self._item_ids.pop(index, None)
            out: list[ProviderEvent] = []
            if not self._open_text.get(item_id, False):
                # No deltas were streamed (some compatible servers): send the text whole.
                text = "".join(
                    _str(part.get("text" if part.get("type") == "output_text" else "refusal"))
                    for part in item.get("content") or ()
                )
                if text:
                    out += [*self._open_text_block(item_id), TextDelta(item_id, text)]
            if item_id in self._open_text:
                del self._open_text[item_id]
                out.append(TextEnd(item_id, provider_metadata={"openai": {"itemId": item_id}}))
            return out
        if kind == "function_call":
            key: int | str = index if index is not None else _str(item.get("id"))
            call = self._calls.get(key)
            if call is None:
                self._saw_tool_call = True
                call = _function_call(item)
                call.wrapper = call.name == _PARALLEL and _PARALLEL not in self._tool_names
                self._calls[key] = call
                start = [] if call.wrapper else [ToolInputStart(call.call_id, call.name)]
                return [*start, *self._tool_call(call)]
            if not call.done and isinstance(item.get("arguments"), str):
                call.arguments = item["arguments"]
            call.item_id = _str(item.get("id")) or call.item_id
            return self._tool_call(call)
        if kind == "reasoning":
            item_id = self._item_id(event) or _str(item.get("id"))
            if index is not None:
                self._item_ids.pop(index, None)
            block = self._open_reasoning.pop(item_id, None)
            if block is None:
                return []
            metadata: dict[str, object] = {"itemId": item_id}
            if encrypted := item.get("encrypted_content"):
                metadata["encryptedContent"] = encrypted
            return [ReasoningEnd(block, provider_metadata={"openai": metadata})]
        if kind in _HOSTED_TOOL_NAMES:
            return self._hosted_done(kind, item)
        if kind == "mcp_call":
            return self._mcp_call(item)
        return []

    def _hosted_done(self, kind: str, item: dict[str, Any]) -> list[ProviderEvent]:
        """A tool the API ran itself (web search, file search, code interpreter, image
        generation): the call, then its result, as the AI SDK shows them."""
        item_id = _str(item.get("id"))
        name = _HOSTED_TOOL_NAMES[kind]
        out: list[ProviderEvent] = []
        if item_id not in self._hosted:
            self._hosted.add(item_id)
            out.append(ToolInputStart(item_id, name, provider_executed=True))
        input_value: dict[str, Any] = {}
        if kind == "code_interpreter_call":
            input_value = {"containerId": item.get("container_id"), "code": item.get("code")}
        out.append(
            ToolCall(
                item_id,
                name,
                to_json(input_value),
                provider_executed=True,
                provider_metadata={"openai": {"itemId": item_id}},
            )
        )
        status = _str(item.get("status"))
        if kind == "web_search_call":
            if status != "completed":
                out.append(ToolResult(item_id, error=to_json({"status": status})))
                return out
            action = item.get("action")
            out.append(ToolResult(item_id, output=_web_search_output(action)))
            if isinstance(action, dict) and action.get("type") == "search":
                for source in action.get("sources") or ():
                    if isinstance(source, dict) and source.get("type") == "url":
                        out += self._url_source(f"{item_id}:{len(self._cited)}", source, None)
            return out
        if kind == "file_search_call":
            results = item.get("results")
            output = {
                "queries": item.get("queries") or [],
                "results": [
                    {
                        "attributes": result.get("attributes"),
                        "fileId": result.get("file_id"),
                        "filename": result.get("filename"),
                        "score": result.get("score"),
                        "text": result.get("text"),
                    }
                    for result in results
                    if isinstance(result, dict)
                ]
                if isinstance(results, list)
                else None,
            }
            out.append(ToolResult(item_id, output=output))
            for result in results if isinstance(results, list) else ():
                file_id = _str(result.get("file_id"))
                if file_id and file_id not in self._cited:
                    self._cited.add(file_id)
                    filename = _str(result.get("filename")) or "file"
                    out.append(
                        Source(
                            "document",
                            f"{item_id}:{file_id}",
                            title=filename,
                            filename=filename,
                            media_type="text/plain",
                            provider_metadata={
                                "openai": {"type": "file_search", "fileId": file_id}
                            },
                        )
                    )
            return out
        if kind == "code_interpreter_call":
            out.append(ToolResult(item_id, output={"outputs": item.get("outputs")}))
            return out
        out.append(ToolResult(item_id, output={"result": item.get("result")}))
        return out

    def _mcp_call(self, item: dict[str, Any]) -> list[ProviderEvent]:
        item_id = _str(item.get("id"))
        name = f"mcp.{_str(item.get('name'))}"
        arguments = _str(item.get("arguments")) or "{}"
        output: dict[str, Any] = {
            "type": "call",
            "serverLabel": item.get("server_label"),
            "name": item.get("name"),
            "arguments": item.get("arguments"),
        }
        if item.get("output") is not None:
            output["output"] = item["output"]
        if item.get("error") is not None:
            output["error"] = item["error"]
        return [
            ToolInputStart(item_id, name, provider_executed=True),
            ToolCall(item_id, name, arguments, provider_executed=True),
            ToolResult(item_id, output=output),
        ]

    def _summary_part(self, item_id: str, index: int) -> list[ProviderEvent]:
        """One reasoning block per summary part; a new part ends the previous one."""
        block = f"{item_id}:{index}"
        current = self._open_reasoning.get(item_id)
        if current == block:
            return []
        out: list[ProviderEvent] = []
        if current is not None:
            out.append(ReasoningEnd(current, provider_metadata={"openai": {"itemId": item_id}}))
        self._open_reasoning[item_id] = block
        out.append(ReasoningStart(block, provider_metadata={"openai": {"itemId": item_id}}))
        return out

    def _tool_call(self, call: _FunctionCall) -> list[ProviderEvent]:
        if call.done:
            return []
        call.done = True
        if call.wrapper:
            expanded = self._expand_parallel(call)
            if expanded is not None:
                return expanded
            # Not a wrapper of declared tools: the call as it came (an unknown tool).
            return [
                ToolInputStart(call.call_id, call.name),
                *([ToolInputDelta(call.call_id, call.arguments)] if call.arguments else []),
                self._whole_call(call),
            ]
        return [self._whole_call(call)]

    def _whole_call(self, call: _FunctionCall) -> ToolCall:
        return ToolCall(
            tool_call_id=call.call_id,
            tool_name=call.name,
            input_text=call.arguments or "{}",
            provider_metadata={"openai": {"itemId": call.item_id}},
        )

    def _expand_parallel(self, call: _FunctionCall) -> list[ProviderEvent] | None:
        """`parallel({"tool_uses": [{"recipient_name": "functions.x", "parameters": {…}}]})`
        → its calls, ids `<call id>_<i>`, when every recipient is a declared tool (else
        None). Each keeps the wrapper's identity (`parallelToolCall`), which the next
        request needs to send the wrapper back with one output."""
        try:
            value = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            return None
        uses = value.get("tool_uses") if isinstance(value, dict) else None
        if not isinstance(uses, list) or not uses:
            return None
        calls: list[tuple[str, str]] = []
        for use in uses:
            if not isinstance(use, dict):
                return None
            recipient, parameters = use.get("recipient_name"), use.get("parameters")
            if not isinstance(recipient, str) or not recipient.startswith(_RECIPIENT_PREFIX):
                return None
            name = recipient.removeprefix(_RECIPIENT_PREFIX)
            if not isinstance(parameters, dict) or name not in self._tool_names:
                return None
            calls.append((name, to_json(parameters)))
        out: list[ProviderEvent] = []
        for index, (name, arguments) in enumerate(calls):
            call_id = f"{call.call_id}_{index}"
            wrapper: dict[str, Any] = {
                "itemId": call.item_id,
                "toolCallId": call.call_id,
                "toolName": call.name,
                "index": index,
                "count": len(calls),
            }
            if index == 0:
                wrapper["input"] = call.arguments
            out += [
                ToolInputStart(call_id, name),
                ToolInputDelta(call_id, arguments),
                ToolCall(
                    call_id,
                    name,
                    arguments,
                    provider_metadata={"openai": {"parallelToolCall": wrapper}},
                ),
            ]
        return out

    def _url_source(
        self, source_id: str, annotation: dict[str, Any], metadata: ProviderMetadata | None
    ) -> list[ProviderEvent]:
        url = _str(annotation.get("url"))
        if not url or url in self._cited:
            return []
        self._cited.add(url)
        title = annotation.get("title")
        return [
            Source(
                "url",
                source_id,
                url=url,
                title=title if isinstance(title, str) else None,
                provider_metadata=metadata,
            )
        ]

    def _annotation(
        self, item_id: str, index: int, annotation: dict[str, Any]
    ) -> list[ProviderEvent]:
        kind = annotation.get("type")
        if kind == "url_citation":
            return self._url_source(f"{item_id}:{index}", annotation, None)
        if kind == "file_citation":
            filename = _str(annotation.get("filename")) or "file"
            file_id = _str(annotation.get("file_id"))
            if file_id in self._cited:
                return []
            self._cited.add(file_id)
            return [
                Source(
                    "document",
                    f"{item_id}:{index}",
                    title=filename,
                    filename=filename,
                    media_type="text/plain",
                    provider_metadata={"openai": {"fileId": file_id}},
                )
            ]
        return []

    def _close_all(self) -> list[ProviderEvent]:
        out: list[ProviderEvent] = [TextEnd(item_id) for item_id in sorted(self._open_text)]
        out += [ReasoningEnd(block) for block in self._open_reasoning.values()]
        self._open_text.clear()
        self._open_reasoning.clear()
        for call in self._calls.values():
            out += self._tool_call(call)
        return out

    def _step_finished(self, kind: str, response: dict[str, Any]) -> StepFinished:
        self.finished = True
        reason: FinishReason
        if kind == "response.completed":
            raw = "completed"
            if self._saw_tool_call:
                reason = "tool-calls"
            else:
                reason = "content-filter" if self._refused else "stop"
        else:
            details = response.get("incomplete_details") or _EMPTY
            raw = _str(details.get("reason")) or "incomplete"
            reason = _INCOMPLETE_REASONS.get(raw, "other")
        return StepFinished(
            finish_reason=reason,
            usage=_usage(response.get("usage")),
            raw_finish_reason=raw,
            provider_metadata={"openai": {"responseId": response.get("id")}},
        )


_KNOWN_SKIPPED = frozenset(
    {
        # Events whose content reaches the bridge through another event of the item.
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.done",
        "response.refusal.done",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.done",
        "response.reasoning_text.done",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.completed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_list_tools.failed",
    }
)


def _web_search_output(action: object) -> dict[str, Any]:
    """The AI SDK's shape of a web search's result (its action, and sources if listed)."""
    if not isinstance(action, dict):
        return {}
    kind = action.get("type")
    if kind == "search":
        search: dict[str, Any] = {"type": "search"}
        if action.get("query") is not None:
            search["query"] = action["query"]
        if action.get("queries") is not None:
            search["queries"] = action["queries"]
        output: dict[str, Any] = {"action": search}
        if action.get("sources") is not None:
            output["sources"] = action["sources"]
        return output
    if kind == "open_page":
        return {"action": {"type": "openPage", "url": action.get("url")}}
    if kind == "find_in_page":
        return {
            "action": {
                "type": "findInPage",
                "url": action.get("url"),
                "pattern": action.get("pattern"),
            }
        }
    return {}


def _function_call(item: dict[str, Any]) -> _FunctionCall:
    return _FunctionCall(
        call_id=_str(item.get("call_id")),
        name=_str(item.get("name")),
        item_id=_str(item.get("id")),
        arguments=_str(item.get("arguments")),
    )


_INCOMPLETE_REASONS: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content-filter",
}


def _usage(usage: object) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    input_details = usage.get("input_tokens_details") or _EMPTY
    output_details = usage.get("output_tokens_details") or _EMPTY
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        reasoning_tokens=_int(output_details.get("reasoning_tokens")),
        cached_input_tokens=_int(input_details.get("cached_tokens")),
    )


# --------------------------------------------------------------------------- request


def to_tools(request: ModelRequest) -> list[ToolParam]:
    """The request's function tools, then the provider tools the model is configured with
    (BRIDGE_MODEL_OPTIONS `provider_tools`), sent as given: they are in the API's shape."""
    tools: list[ToolParam] = [to_tool(tool) for tool in request.tools]
    tools += [cast("ToolParam", dict(tool)) for tool in request.options.provider_tools]
    return tools


# What a provider tool's call carries only when asked for: the sources a web search read,
# the outputs of code the interpreter ran, the results a file search found.
_INCLUDES: dict[str, ResponseIncludable] = {
    "web_search": "web_search_call.action.sources",
    "code_interpreter": "code_interpreter_call.outputs",
    "file_search": "file_search_call.results",
}


def _include(request: ModelRequest) -> list[ResponseIncludable]:
    kinds = {str(tool.get("type")) for tool in request.options.provider_tools}
    return [include for kind, include in _INCLUDES.items() if kind in kinds]


def to_tool(tool: ToolSpec) -> FunctionToolParam:
    # strict: False, as the schemas come from tool authors and strict mode accepts only a
    # subset of JSON schema (every property required, no additionalProperties).
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.input_schema,
        "strict": False,
    }


def to_input_items(request: ModelRequest) -> list[ResponseInputItemParam]:
    items: list[ResponseInputItemParam] = []
    for turn in conversation_turns(request.messages):
        if isinstance(turn, SystemTurn):
            items.append(EasyInputMessageParam(type="message", role="system", content=turn.text))
        elif isinstance(turn, UserTurn):
            items.append(
                EasyInputMessageParam(type="message", role="user", content=_user_content(turn))
            )
        else:
            items.extend(_step_items(turn))
    return items


def _user_content(turn: UserTurn) -> list[ResponseInputContentParam]:
    content: list[ResponseInputContentParam] = []
    for part in turn.parts:
        content.append(_content_part(part))
    return content


def _content_part(part: UserContent) -> ResponseInputContentParam:
    if isinstance(part, TextUIPart):
        return {"type": "input_text", "text": part.text}
    return _file_part(part)


def _file_part(part: FileUIPart) -> ResponseInputContentParam:
    kind = file_kind(part.media_type)
    is_data = part.url.startswith("data:")
    if kind == "image":
        return {"type": "input_image", "image_url": part.url, "detail": "auto"}
    if kind == "pdf" and is_data:
        return {
            "type": "input_file",
            "filename": part.filename or "document.pdf",
            "file_data": part.url,
        }
    if kind in ("pdf", "text") and not is_data:
        return {"type": "input_file", "file_url": part.url}
    if kind == "text" and (text := file_text(part)) is not None:
        return {"type": "input_text", "text": text}
    return {"type": "input_text", "text": unsupported_file_note(part)}


def _step_items(step: AssistantStep) -> list[ResponseInputItemParam]:
    items: list[ResponseInputItemParam] = []
    outputs: list[ResponseInputItemParam] = []
    reasoning: ResponseReasoningItemParam | None = None
    for part in step.parts:
        if isinstance(part, ReasoningUIPart):
            merged = _reasoning_item(part, reasoning)
            if merged is not None and merged is not reasoning:
                items.append(merged)
            reasoning = merged
            continue
        reasoning = None
        if isinstance(part, TextUIPart):
            items.append(_assistant_text(part))
            continue
        call = ResponseFunctionToolCallParam(
            type="function_call",
            call_id=part.tool_call_id,
            name=part.tool_name,
            arguments=part.input_json,
        )
        item_id = metadata_value(part.provider_metadata, "openai", "itemId")
        if isinstance(item_id, str):
            call["id"] = item_id
        items.append(call)
        outputs.append(
            FunctionCallOutput(
                type="function_call_output", call_id=part.tool_call_id, output=part.result.text
            )
        )
    return [*_drop_orphan_reasoning(items), *outputs]


def _assistant_text(part: TextUIPart) -> ResponseInputItemParam:
    item_id = metadata_value(part.provider_metadata, "openai", "itemId")
    if isinstance(item_id, str):
        text: ResponseOutputTextParam = {
            "type": "output_text",
            "text": part.text,
            "annotations": [],
        }
        return ResponseOutputMessageParam(
            type="message", role="assistant", id=item_id, status="completed", content=[text]
        )
    return EasyInputMessageParam(type="message", role="assistant", content=part.text)


def _reasoning_item(
    part: ReasoningUIPart, current: ResponseReasoningItemParam | None
) -> ResponseReasoningItemParam | None:
    """Reasoning goes back only as the item the API produced (by id). The summary parts of
    one item arrive as consecutive reasoning parts and are merged back into `current`."""
    item_id = metadata_value(part.provider_metadata, "openai", "itemId")
    if not isinstance(item_id, str):
        return current  # another provider's reasoning, or not kept: the API cannot take it
    item = current
    if item is None or item["id"] != item_id:
        item = ResponseReasoningItemParam(type="reasoning", id=item_id, summary=[])
    if part.text:
        item["summary"] = [*item["summary"], {"type": "summary_text", "text": part.text}]
    encrypted = metadata_value(part.provider_metadata, "openai", "encryptedContent")
    if isinstance(encrypted, str):
        item["encrypted_content"] = encrypted
    return item


def _drop_orphan_reasoning(items: list[ResponseInputItemParam]) -> list[ResponseInputItemParam]:
    """The API rejects a reasoning item not followed by the item it produced ("provided
    without its required following item"). That happens when the id of the message or
    function call after it was not kept; the reasoning is then dropped rather than the
    request failing."""
    kept: list[ResponseInputItemParam] = []
    for index, item in enumerate(items):
        if item.get("type") == "reasoning":
            following = items[index + 1] if index + 1 < len(items) else None
            if following is None or following.get("type") == "reasoning" or "id" not in following:
                continue
        kept.append(item)
    return kept


def _reasoning(
    reasoning_model: bool, summary: ReasoningSummary | None, effort: str | None
) -> Reasoning | Omit:
    """The `reasoning` parameter: only for reasoning models (the others reject it)."""
    if not reasoning_model or (summary is None and effort is None):
        return omit
    value = Reasoning()
    if summary is not None:
        value["summary"] = summary
    if effort is not None:
        value["effort"] = effort  # type: ignore[typeddict-item]
    return value
