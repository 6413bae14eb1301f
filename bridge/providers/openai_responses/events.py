"""The Responses stream: its events (parsed JSON) mapped to provider events, one
response at a time (`_StreamState`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.providers._convert import to_json
from bridge.providers._errors import stream_error
from bridge.providers.base import (
    FinishReason,
    ProviderEvent,
    ProviderMetadata,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    Source,
    StepFinished,
    TextDelta,
    TextEnd,
    TextStart,
    ToolApprovalRequest,
    ToolCall,
    ToolInputDelta,
    ToolInputStart,
    ToolResult,
    Usage,
)

logger = logging.getLogger("bridge.providers.openai_responses")

LABEL = "OpenAI"
NAME = "openai"  # the provider's name (`OpenAIResponsesProvider.name`)


def _read_event(data: bytes) -> dict[str, Any] | None:
    """An event's JSON object, or None when it is not one."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


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
                    provider=NAME,
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
                    provider=NAME,
                    label=LABEL,
                )
        if isinstance(event.get("error"), dict):
            # A bare `{"error": {...}}` object, as compatible servers send.
            error = event["error"]
            raise stream_error(
                error.get("type") or error.get("code"),
                error.get("message"),
                provider=NAME,
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
        if isinstance(kind, str) and kind not in (
            "mcp_call",
            "mcp_list_tools",
            "mcp_approval_request",
        ):
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
        if kind == "mcp_approval_request":
            return self._mcp_approval_request(item)
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

    def _mcp_approval_request(self, item: dict[str, Any]) -> list[ProviderEvent]:
        """A remote MCP call the API runs once the user approves it (`require_approval`):
        a provider-executed call waiting for approval, as the AI SDK shows it, under the
        request's id; the answer goes back as `mcp_approval_response` (request.py). The AI
        SDK makes up a call id; the request's own id serves here, so the part is the same
        whichever process reads the stream."""
        item_id = _str(item.get("id"))
        if not item_id:
            return []
        approval_id = _str(item.get("approval_request_id")) or item_id
        name = f"mcp.{_str(item.get('name'))}"
        arguments = _str(item.get("arguments")) or "{}"
        return [
            ToolInputStart(item_id, name, provider_executed=True),
            ToolCall(
                item_id,
                name,
                arguments,
                provider_executed=True,
                provider_metadata={
                    "openai": {"itemId": item_id, "serverLabel": item.get("server_label")}
                },
            ),
            ToolApprovalRequest(item_id, approval_id),
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
