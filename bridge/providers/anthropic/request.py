"""The Messages request: UI messages → system prompt and messages, tools → tool
definitions and the provider tools configured (with the beta headers they need)."""

from __future__ import annotations

from typing import Any, Literal, cast

import orjson
from anthropic.types import (
    Base64ImageSourceParam,
    ContentBlockParam,
    DocumentBlockParam,
    MessageParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUnionParam,
)

from bridge.providers._convert import (
    PENDING,
    AssistantStep,
    SystemTurn,
    ToolExchange,
    UserTurn,
    conversation_turns,
    metadata_value,
)
from bridge.providers._files import file_kind, parse_data_url, unsupported_file_note
from bridge.providers.base import (
    ModelRequest,
    ToolSpec,
)
from protocol.messages import FileUIPart, ReasoningUIPart, TextUIPart


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

    # The calls Anthropic ran itself go back as it sent them (a paused turn goes on).
    conversation = conversation_turns(request.messages, provider_executed=True)
    for index, turn in enumerate(conversation):
        if isinstance(turn, SystemTurn):
            system.append(turn.text)
        elif isinstance(turn, UserTurn):
            add("user", _user_blocks(turn))
        else:
            add("assistant", _assistant_blocks(turn, last=index == len(conversation) - 1))
            # Results go in the user turn right after the assistant turn that called.
            add(
                "user",
                [_tool_result(call) for call in turn.tool_exchanges if not call.provider_executed],
            )
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


def _assistant_blocks(step: AssistantStep, *, last: bool = False) -> list[ContentBlockParam]:
    """`last`: the conversation's final step, a paused turn's calls without a result go
    back too (the API runs them on); elsewhere such a call is left out."""
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
        elif part.provider_executed:
            blocks += _server_tool_blocks(part, pending=last)
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


def _server_tool_blocks(call: ToolExchange, *, pending: bool) -> list[ContentBlockParam]:
    """A call Anthropic ran itself and its result, as the API sent them (the AI SDK's
    mapping back): web search and web fetch, the call alone when a paused turn left it
    without a result. Others are left out, as before (the model then does not see them
    on a later call)."""
    if call.tool_name not in ("web_search", "web_fetch"):
        return []
    use: dict[str, Any] = {
        "type": "server_tool_use",
        "id": call.tool_call_id,
        "name": call.tool_name,
        "input": call.input if isinstance(call.input, dict) else {},
    }
    if call.result is PENDING:
        return [cast("ContentBlockParam", use)] if pending else []
    output = call.result.output
    content: Any
    if call.result.is_error:
        code = _error_code(call.result.text)
        content = {"type": f"{call.tool_name}_tool_result_error", "error_code": code}
    elif call.tool_name == "web_search" and isinstance(output, list):
        content = [
            {
                "type": item.get("type") or "web_search_result",
                "url": item.get("url"),
                "title": item.get("title"),
                "page_age": item.get("pageAge"),
                "encrypted_content": item.get("encryptedContent"),
            }
            for item in output
            if isinstance(item, dict)
        ]
    elif call.tool_name == "web_fetch" and isinstance(output, dict):
        document = output.get("content") or {}
        source = document.get("source") or {}
        content = {
            "type": "web_fetch_result",
            "url": output.get("url"),
            "retrieved_at": output.get("retrievedAt"),
            "content": {
                "type": "document",
                "title": document.get("title"),
                "citations": document.get("citations"),
                "source": {
                    "type": source.get("type"),
                    "media_type": source.get("mediaType"),
                    "data": source.get("data"),
                },
            },
        }
    else:
        return []
    result: dict[str, Any] = {
        "type": f"{call.tool_name}_tool_result",
        "tool_use_id": call.tool_call_id,
        "content": content,
    }
    return [cast("ContentBlockParam", use), cast("ContentBlockParam", result)]


def _error_code(text: str) -> str:
    """The error code of a provider tool's error result (`{"type", "errorCode"}` JSON)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "unavailable"
    code = value.get("errorCode") if isinstance(value, dict) else None
    return code if isinstance(code, str) and code else "unavailable"


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
