"""The Responses request: UI messages → input items, tools → function tools and the
configured provider tools, and the parameters that depend on the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from openai import Omit, omit
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
from openai.types.responses.response_input_item_param import (
    FunctionCallOutput,
    ItemReference,
    McpApprovalResponse,
)
from openai.types.responses.response_output_text_param import ResponseOutputTextParam
from openai.types.shared_params import Reasoning

from bridge.providers._convert import (
    AssistantStep,
    SystemTurn,
    ToolExchange,
    UserContent,
    UserTurn,
    conversation_turns,
    metadata_value,
)
from bridge.providers._files import file_kind, file_text, unsupported_file_note
from bridge.providers.base import (
    ModelRequest,
    ToolSpec,
)
from protocol.messages import FileUIPart, ReasoningUIPart, TextUIPart

ReasoningSummary = Literal["auto", "concise", "detailed"]

# Model families that reason. They take `reasoning` and reject `temperature`; other models
# reject `reasoning`. ("gpt-5-chat" is the non-reasoning chat variant.)
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "codex")


def is_reasoning_model(model: str) -> bool:
    name = model.lower().rsplit("/", 1)[-1]
    return name.startswith(_REASONING_PREFIXES) and not name.startswith("gpt-5-chat")


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
    wrappers = _parallel_wrappers(step)
    for part in step.parts:
        wrapper = _wrapper_of(part, wrappers)
        if wrapper is not None:
            reasoning = None
            if wrapper.call_id not in wrappers.sent:
                wrappers.sent.add(wrapper.call_id)
                items.append(wrapper.call)
                outputs.append(wrapper.output)
            continue
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
    for answer in step.approvals:
        if metadata_value(answer.provider_metadata, "openai", "itemId") is None:
            continue  # another provider's request: this API never issued it
        # The request by reference (the API stored it with its response), then the answer,
        # as the AI SDK sends them.
        outputs.append(ItemReference(type="item_reference", id=answer.approval_id))
        outputs.append(
            McpApprovalResponse(
                type="mcp_approval_response",
                approval_request_id=answer.approval_id,
                approve=answer.approved,
            )
        )
    return [*_drop_orphan_reasoning(items), *outputs]


@dataclass(slots=True)
class _Wrapper:
    """A `parallel` call the API issued, which the stream expanded into its calls (events:
    `parallelToolCall`)."""

    call_id: str
    call: ResponseFunctionToolCallParam
    output: FunctionCallOutput


@dataclass(slots=True)
class _Wrappers:
    by_call: dict[str, _Wrapper] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)


def _parallel_wrappers(step: AssistantStep) -> _Wrappers:
    """The step's `parallel` wrappers whose expanded calls all have their result, each
    rebuilt as the one call the API issued (its call id, item id and arguments) with one
    output: the results' texts joined by newlines, in call order.

    Sent back this way rather than as the expanded calls: the API issued only the wrapper
    (its `call_id` and `fc_` item are the ones it knows), and a reasoning item that
    preceded it must be followed by that item, which an id-less call made up here cannot
    be. The AI SDK's provider does the same when the API keeps the conversation
    (`previous_response_id`); without it, it sends the expanded calls under their made-up
    ids. A group with a call missing (or inconsistent metadata) goes as separate calls."""
    groups: dict[str, dict[int, tuple[ToolExchange, dict[str, Any]]]] = {}
    heads: dict[str, dict[str, Any]] = {}
    invalid: set[str] = set()
    for part in step.tool_exchanges:
        meta = _parallel_metadata(part)
        if meta is None:
            continue
        call_id = meta["toolCallId"]
        group = groups.setdefault(call_id, {})
        first = heads.setdefault(call_id, meta)
        same = all(first[key] == meta[key] for key in ("itemId", "toolName", "count"))
        if not same or meta["index"] in group:
            invalid.add(call_id)
        group[meta["index"]] = (part, meta)
        if "input" in meta:
            heads[call_id] = meta
    wrappers = _Wrappers()
    for call_id, group in groups.items():
        head = heads[call_id]
        if call_id in invalid or "input" not in head or len(group) != head["count"]:
            continue
        ordered = [group[index][0] for index in sorted(group)]
        call = ResponseFunctionToolCallParam(
            type="function_call",
            call_id=call_id,
            name=head["toolName"],
            arguments=head["input"],
            id=head["itemId"],
        )
        output = FunctionCallOutput(
            type="function_call_output",
            call_id=call_id,
            output="\n".join(part.result.text for part in ordered),
        )
        wrappers.by_call.update(
            {part.tool_call_id: _Wrapper(call_id, call, output) for part in ordered}
        )
    return wrappers


def _parallel_metadata(part: ToolExchange) -> dict[str, Any] | None:
    meta = metadata_value(part.provider_metadata, "openai", "parallelToolCall")
    if not isinstance(meta, dict):
        return None
    index, count = meta.get("index"), meta.get("count")
    well_formed = (
        all(isinstance(meta.get(key), str) for key in ("itemId", "toolCallId", "toolName"))
        and isinstance(meta.get("input", ""), str)
        and isinstance(index, int)
        and isinstance(count, int)
        and 0 <= index < count
    )
    return meta if well_formed else None


def _wrapper_of(part: object, wrappers: _Wrappers) -> _Wrapper | None:
    if not isinstance(part, ToolExchange):
        return None
    return wrappers.by_call.get(part.tool_call_id)


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
