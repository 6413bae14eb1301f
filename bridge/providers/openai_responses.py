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
from typing import Any, Literal

import openai
from openai import AsyncOpenAI, Omit, omit
from openai.types.responses import (
    EasyInputMessageParam,
    FunctionToolParam,
    ResponseFunctionToolCallParam,
    ResponseInputContentParam,
    ResponseInputItemParam,
    ResponseOutputMessageParam,
    ResponseReasoningItemParam,
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
    unsupported_file_note,
)
from bridge.providers._http_client import ProviderHTTP, sdk_http_client
from bridge.providers._sse import DEFAULT_MAX_EVENT_BYTES
from bridge.providers._transport import MALFORMED, malformed_event, parse_event, read_sse
from bridge.providers.base import (
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
    http: ProviderHTTP = "lean",
) -> AsyncOpenAI:
    return AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        http_client=sdk_http_client(openai, http),
    )


def openai_error(
    exc: openai.OpenAIError, *, provider: str, secrets: Sequence[str]
) -> ProviderError:
    """Map an SDK error. Messages are built from the parsed error body, never from
    `str(exc)`, which quotes the whole body (and with it, for a 401, part of the key)."""
    if isinstance(exc, openai.APITimeoutError):
        return error_for_status(None, "request timed out", provider=provider, label=LABEL)
    if isinstance(exc, openai.APIConnectionError):
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
        http: ProviderHTTP = "lean",
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
                        tools=[to_tool(tool) for tool in request.tools] or omit,
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

            state = _StreamState()
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
                    event = parse_event(data, provider=self.name, label=LABEL)
                    if not opened:
                        opened = True
                        created = event.get("response")
                        response_id = created.get("id") if isinstance(created, dict) else None
                        yield StreamOpened(
                            response_id=_str(response_id) or None, model=request.model
                        )
                    try:
                        produced = state.handle(event)
                    except MALFORMED as exc:
                        raise malformed_event(data, provider=self.name, label=LABEL) from exc
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


# --------------------------------------------------------------------------- events


_EMPTY: dict[str, Any] = {}


def _str(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


@dataclass(slots=True)
class _FunctionCall:
    call_id: str
    name: str
    arguments: str = ""


class _StreamState:
    """Maps Responses stream events (parsed JSON) to provider events for one response."""

    def __init__(self) -> None:
        self.finished = False
        self._open_text: set[str] = set()
        self._open_reasoning: dict[str, str] = {}  # item id -> current block id
        self._calls: dict[str, _FunctionCall] = {}  # item id -> call (arguments so far)
        self._calls_done: set[str] = set()
        self._cited: set[str] = set()
        self._saw_tool_call = False

    def handle(self, event: dict[str, Any]) -> list[ProviderEvent]:
        if self.finished:
            return []  # nothing may follow the final event
        kind = event.get("type")
        match kind:
            case "response.output_text.delta" | "response.refusal.delta":
                item_id = _str(event.get("item_id"))
                delta = _str(event.get("delta"))
                return [*self._open_text_block(item_id), TextDelta(item_id, delta)]
            case "response.output_item.added":
                return self._item_added(event.get("item") or _EMPTY)
            case "response.output_item.done":
                return self._item_done(event.get("item") or _EMPTY)
            case "response.reasoning_summary_part.added":
                return self._summary_part(
                    _str(event.get("item_id")), _int(event.get("summary_index")) or 0
                )
            case "response.reasoning_summary_text.delta" | "response.reasoning_text.delta":
                item_id, delta = _str(event.get("item_id")), _str(event.get("delta"))
                block = self._open_reasoning.get(item_id)
                if block is None:
                    return [
                        *self._summary_part(item_id, 0),
                        ReasoningDelta(self._open_reasoning[item_id], delta),
                    ]
                return [ReasoningDelta(block, delta)]
            case "response.function_call_arguments.delta":
                call = self._calls.get(_str(event.get("item_id")))
                delta = _str(event.get("delta"))
                if call is None or not delta:
                    return []
                call.arguments += delta
                return [ToolInputDelta(call.call_id, delta)]
            case "response.function_call_arguments.done":
                item_id = _str(event.get("item_id"))
                call = self._calls.get(item_id)
                if call is None:
                    return []
                call.arguments = _str(event.get("arguments"), call.arguments)
                return self._tool_call(item_id, call)
            case "response.output_text.annotation.added":
                return self._annotation(
                    _str(event.get("item_id")),
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
                raise stream_error(
                    event.get("code"),
                    event.get("message"),
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
        return []

    def _open_text_block(self, item_id: str) -> list[ProviderEvent]:
        if item_id in self._open_text:
            return []
        self._open_text.add(item_id)
        return [TextStart(item_id, provider_metadata={"openai": {"itemId": item_id}})]

    def _item_added(self, item: dict[str, Any]) -> list[ProviderEvent]:
        kind = item.get("type")
        if kind == "function_call":
            self._saw_tool_call = True
            call = _function_call(item)
            self._calls[_str(item.get("id")) or call.call_id] = call
            return [ToolInputStart(call.call_id, call.name)]
        if kind == "reasoning":
            return self._summary_part(_str(item.get("id")), 0)
        return []

    def _item_done(self, item: dict[str, Any]) -> list[ProviderEvent]:
        kind = item.get("type")
        item_id = _str(item.get("id"))
        if kind == "message":
            out: list[ProviderEvent] = []
            if item_id not in self._open_text:
                # No deltas were streamed (some compatible servers): send the text whole.
                text = "".join(
                    _str(part.get("text" if part.get("type") == "output_text" else "refusal"))
                    for part in item.get("content") or ()
                )
                if not text:
                    return []
                out += [*self._open_text_block(item_id), TextDelta(item_id, text)]
            self._open_text.discard(item_id)
            out.append(TextEnd(item_id, provider_metadata={"openai": {"itemId": item_id}}))
            return out
        if kind == "function_call":
            call = _function_call(item)
            item_id = item_id or call.call_id
            if item_id not in self._calls:
                self._saw_tool_call = True
                self._calls[item_id] = call
                return [ToolInputStart(call.call_id, call.name), *self._tool_call(item_id, call)]
            return self._tool_call(item_id, self._calls[item_id])
        if kind == "reasoning":
            block = self._open_reasoning.pop(item_id, None)
            if block is None:
                return []
            metadata: dict[str, object] = {"itemId": item_id}
            if encrypted := item.get("encrypted_content"):
                metadata["encryptedContent"] = encrypted
            return [ReasoningEnd(block, provider_metadata={"openai": metadata})]
        return []

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

    def _tool_call(self, item_id: str, call: _FunctionCall) -> list[ProviderEvent]:
        if item_id in self._calls_done:
            return []
        self._calls_done.add(item_id)
        return [
            ToolCall(
                tool_call_id=call.call_id,
                tool_name=call.name,
                input_text=call.arguments or "{}",
                provider_metadata={"openai": {"itemId": item_id}},
            )
        ]

    def _annotation(
        self, item_id: str, index: int, annotation: dict[str, Any]
    ) -> list[ProviderEvent]:
        kind = annotation.get("type")
        if kind == "url_citation":
            url = _str(annotation.get("url"))
            if not url or url in self._cited:
                return []
            self._cited.add(url)
            title = annotation.get("title")
            return [
                Source(
                    "url",
                    f"{item_id}:{index}",
                    url=url,
                    title=title if isinstance(title, str) else None,
                )
            ]
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
                    media_type="application/octet-stream",
                    provider_metadata={"openai": {"fileId": file_id}},
                )
            ]
        return []

    def _close_all(self) -> list[ProviderEvent]:
        out: list[ProviderEvent] = [TextEnd(item_id) for item_id in sorted(self._open_text)]
        out += [ReasoningEnd(block) for block in self._open_reasoning.values()]
        self._open_text.clear()
        self._open_reasoning.clear()
        for item_id, call in self._calls.items():
            out += self._tool_call(item_id, call)
        return out

    def _step_finished(self, kind: str, response: dict[str, Any]) -> StepFinished:
        self.finished = True
        reason: FinishReason
        if kind == "response.completed":
            raw = "completed"
            reason = "tool-calls" if self._saw_tool_call else "stop"
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


def _function_call(item: dict[str, Any]) -> _FunctionCall:
    return _FunctionCall(
        call_id=_str(item.get("call_id")),
        name=_str(item.get("name")),
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
