"""UI messages and tools → a Chat Completions request (`messages`, `tools`)."""

from __future__ import annotations

from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionContentPartParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionToolMessageParam,
)

from bridge.providers._convert import AssistantStep, SystemTurn, UserTurn, conversation_turns
from bridge.providers._files import file_kind, file_text, unsupported_file_note
from bridge.providers.base import ModelRequest, ToolSpec
from protocol.messages import FileUIPart, ReasoningUIPart, TextUIPart


def to_tool(tool: ToolSpec) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.input_schema,
        },
    }


def to_messages(request: ModelRequest) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for turn in conversation_turns(request.messages):
        if isinstance(turn, SystemTurn):
            messages.append({"role": "system", "content": turn.text})
        elif isinstance(turn, UserTurn):
            messages.append({"role": "user", "content": _user_content(turn)})
        else:
            messages.extend(_step_messages(turn))
    return messages


def _user_content(turn: UserTurn) -> str | list[ChatCompletionContentPartParam]:
    if all(isinstance(part, TextUIPart) for part in turn.parts):
        # Plain string content: the form every compatible server understands.
        return "\n\n".join(part.text for part in turn.parts if isinstance(part, TextUIPart))
    content: list[ChatCompletionContentPartParam] = []
    for part in turn.parts:
        if isinstance(part, TextUIPart):
            content.append({"type": "text", "text": part.text})
        else:
            content.append(_file_part(part))
    return content


def _file_part(part: FileUIPart) -> ChatCompletionContentPartParam:
    kind = file_kind(part.media_type)
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": part.url}}
    if kind == "pdf" and part.url.startswith("data:"):
        return {
            "type": "file",
            "file": {"file_data": part.url, "filename": part.filename or "document.pdf"},
        }
    if kind == "text" and (text := file_text(part)) is not None:
        return {"type": "text", "text": text}
    return {"type": "text", "text": unsupported_file_note(part)}


def _step_messages(step: AssistantStep) -> list[ChatCompletionMessageParam]:
    """One assistant message per step (its text and tool calls), then one tool message per
    call. Reasoning is not sent back: compatible servers have no field for it."""
    text = "".join(part.text for part in step.parts if isinstance(part, TextUIPart))
    calls: list[ChatCompletionMessageFunctionToolCallParam] = []
    results: list[ChatCompletionToolMessageParam] = []
    for part in step.parts:
        if isinstance(part, TextUIPart | ReasoningUIPart):
            continue
        calls.append(
            {
                "id": part.tool_call_id,
                "type": "function",
                "function": {"name": part.tool_name, "arguments": part.input_json},
            }
        )
        results.append(
            {"role": "tool", "tool_call_id": part.tool_call_id, "content": part.result.text}
        )
    if not text and not calls:
        return []
    assistant: ChatCompletionAssistantMessageParam = {"role": "assistant", "content": text or None}
    if calls:
        assistant["tool_calls"] = calls
    return [assistant, *results]
