"""`openai:<model>`: the OpenAI Responses API, streamed through the official SDK.

Item ids (`msg_…`, `rs_…`, `fc_…`) are handed back in `providerMetadata.openai.itemId`, so
the next request can refer to the reasoning items of earlier steps (the API keeps them
when `store` is on, its default): reasoning models work better when they see their own
reasoning across tool calls.

Also home of what both OpenAI providers share: the client and the error mapping.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Literal

import openai
from openai import AsyncOpenAI, omit
from openai.types.responses import (
    EasyInputMessageParam,
    FunctionToolParam,
    Response,
    ResponseFunctionToolCall,
    ResponseFunctionToolCallParam,
    ResponseInputContentParam,
    ResponseInputItemParam,
    ResponseOutputMessage,
    ResponseOutputMessageParam,
    ResponseReasoningItem,
    ResponseReasoningItemParam,
    ResponseStreamEvent,
    ResponseUsage,
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
    *, api_key: str, base_url: str | None, timeout: float | None, max_retries: int
) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)


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
    ) -> None:
        self._client = client or make_openai_client(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._secrets = [api_key]
        self._timeout = timeout
        self._reasoning_summary = reasoning_summary

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        deadline = Deadline(self._timeout)
        reasoning = is_reasoning_model(request.model)
        try:
            response = await self._client.responses.create(
                model=request.model,
                input=to_input_items(request),
                instructions=request.system or omit,
                tools=[to_tool(tool) for tool in request.tools] or omit,
                max_output_tokens=request.max_output_tokens or omit,
                temperature=(
                    omit if reasoning or request.temperature is None else request.temperature
                ),
                reasoning=(
                    Reasoning(summary=self._reasoning_summary)
                    if reasoning and self._reasoning_summary
                    else omit
                ),
                stream=True,
            )
        except openai.OpenAIError as exc:
            raise openai_error(exc, provider=self.name, secrets=self._secrets) from exc

        # `async with` closes the HTTP response however we leave: end, error, `aclose()`.
        async with response:
            state = _StreamState()
            opened = False
            try:
                while (event := await deadline.next(response)) is not None:
                    if not opened:
                        opened = True
                        created = getattr(event, "response", None)
                        yield StreamOpened(
                            response_id=created.id if isinstance(created, Response) else None,
                            model=request.model,
                        )
                    for out in state.handle(event):
                        yield out
            except openai.OpenAIError as exc:
                raise openai_error(exc, provider=self.name, secrets=self._secrets) from exc
            except TimeoutError as exc:
                raise deadline.error(provider=self.name, label=LABEL) from exc
        # The loop reads on past the final event to the end of the body, which lets the
        # SDK hand the connection back to its pool rather than close it.
        if state.finished:
            return
        raise error_for_status(
            None,
            "the stream ended before the response completed",
            provider=self.name,
            label=LABEL,
        )


# --------------------------------------------------------------------------- events


class _StreamState:
    """Maps Responses stream events to provider events for one response."""

    def __init__(self) -> None:
        self.finished = False
        self._open_text: set[str] = set()
        self._open_reasoning: dict[str, str] = {}  # item id -> current block id
        self._calls: dict[str, ResponseFunctionToolCall] = {}  # item id -> call (args so far)
        self._calls_done: set[str] = set()
        self._cited: set[str] = set()
        self._saw_tool_call = False

    def handle(self, event: ResponseStreamEvent) -> list[ProviderEvent]:
        if self.finished:
            return []  # nothing may follow the final event
        match event.type:
            case "response.output_text.delta" | "response.refusal.delta":
                return [
                    *self._open_text_block(event.item_id),
                    TextDelta(event.item_id, event.delta),
                ]
            case "response.output_item.added":
                return self._item_added(event.item)
            case "response.output_item.done":
                return self._item_done(event.item)
            case "response.reasoning_summary_part.added":
                return self._summary_part(event.item_id, event.summary_index)
            case "response.reasoning_summary_text.delta" | "response.reasoning_text.delta":
                block = self._open_reasoning.get(event.item_id)
                if block is None:
                    return [
                        *self._summary_part(event.item_id, 0),
                        ReasoningDelta(self._open_reasoning[event.item_id], event.delta),
                    ]
                return [ReasoningDelta(block, event.delta)]
            case "response.function_call_arguments.delta":
                call = self._calls.get(event.item_id)
                if call is None or not event.delta:
                    return []
                call.arguments += event.delta
                return [ToolInputDelta(call.call_id, event.delta)]
            case "response.function_call_arguments.done":
                call = self._calls.get(event.item_id)
                if call is None:
                    return []
                call.arguments = event.arguments
                return self._tool_call(event.item_id, call)
            case "response.output_text.annotation.added":
                return self._annotation(event.item_id, event.annotation_index, event.annotation)
            case "response.completed" | "response.incomplete":
                return [*self._close_all(), self._step_finished(event.type, event.response)]
            case "response.failed":
                error = event.response.error
                raise stream_error(
                    error.code if error else None,
                    error.message if error else "the response failed",
                    provider=OpenAIResponsesProvider.name,
                    label=LABEL,
                )
            case "error":
                raise stream_error(
                    event.code, event.message, provider=OpenAIResponsesProvider.name, label=LABEL
                )
        return []

    def _open_text_block(self, item_id: str) -> list[ProviderEvent]:
        if item_id in self._open_text:
            return []
        self._open_text.add(item_id)
        return [TextStart(item_id, provider_metadata={"openai": {"itemId": item_id}})]

    def _item_added(self, item: object) -> list[ProviderEvent]:
        if isinstance(item, ResponseFunctionToolCall):
            self._saw_tool_call = True
            item_id = item.id or item.call_id
            self._calls[item_id] = item.model_copy(update={"arguments": item.arguments or ""})
            return [ToolInputStart(item.call_id, item.name)]
        if isinstance(item, ResponseReasoningItem):
            return self._summary_part(item.id, 0)
        return []

    def _item_done(self, item: object) -> list[ProviderEvent]:
        if isinstance(item, ResponseOutputMessage):
            out: list[ProviderEvent] = []
            if item.id not in self._open_text:
                # No deltas were streamed (some compatible servers): send the text whole.
                text = "".join(
                    part.text if part.type == "output_text" else part.refusal
                    for part in item.content
                )
                if not text:
                    return []
                out += [*self._open_text_block(item.id), TextDelta(item.id, text)]
            self._open_text.discard(item.id)
            out.append(TextEnd(item.id, provider_metadata={"openai": {"itemId": item.id}}))
            return out
        if isinstance(item, ResponseFunctionToolCall):
            item_id = item.id or item.call_id
            if item_id not in self._calls:
                self._saw_tool_call = True
                self._calls[item_id] = item
                return [ToolInputStart(item.call_id, item.name), *self._tool_call(item_id, item)]
            return self._tool_call(item_id, item)
        if isinstance(item, ResponseReasoningItem):
            block = self._open_reasoning.pop(item.id, None)
            if block is None:
                return []
            metadata: dict[str, object] = {"itemId": item.id}
            if item.encrypted_content:
                metadata["encryptedContent"] = item.encrypted_content
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

    def _tool_call(self, item_id: str, call: ResponseFunctionToolCall) -> list[ProviderEvent]:
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

    def _annotation(self, item_id: str, index: int, annotation: object) -> list[ProviderEvent]:
        kind = getattr(annotation, "type", None)
        if kind == "url_citation":
            url = str(getattr(annotation, "url", ""))
            if not url or url in self._cited:
                return []
            self._cited.add(url)
            return [
                Source(
                    "url", f"{item_id}:{index}", url=url, title=getattr(annotation, "title", None)
                )
            ]
        if kind == "file_citation":
            filename = str(getattr(annotation, "filename", "") or "file")
            file_id = str(getattr(annotation, "file_id", ""))
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

    def _step_finished(self, kind: str, response: Response) -> StepFinished:
        self.finished = True
        reason: FinishReason
        if kind == "response.completed":
            raw = "completed"
            reason = "tool-calls" if self._saw_tool_call else "stop"
        else:
            details = response.incomplete_details
            raw = (details.reason if details else None) or "incomplete"
            reason = _INCOMPLETE_REASONS.get(raw, "other")
        return StepFinished(
            finish_reason=reason,
            usage=_usage(response.usage),
            raw_finish_reason=raw,
            provider_metadata={"openai": {"responseId": response.id}},
        )


_INCOMPLETE_REASONS: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content-filter",
}


def _usage(usage: ResponseUsage | None) -> Usage:
    if usage is None:
        return Usage()
    cached = usage.input_tokens_details.cached_tokens if usage.input_tokens_details else None
    reasoning = (
        usage.output_tokens_details.reasoning_tokens if usage.output_tokens_details else None
    )
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=reasoning,
        cached_input_tokens=cached,
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
