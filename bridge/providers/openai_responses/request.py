"""The Responses request: UI messages → input items, tools → function tools and the
configured provider tools, and the parameters that depend on the model."""

from __future__ import annotations

from typing import Literal, cast

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
from openai.types.responses.response_input_item_param import FunctionCallOutput
from openai.types.responses.response_output_text_param import ResponseOutputTextParam
from openai.types.shared_params import Reasoning

from bridge.providers._convert import (
    AssistantStep,
    SystemTurn,
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
