"""Folding a UI message chunk stream into the assistant `UIMessage`, the way the client does.

This mirrors `processUIMessageStream` (ai/src/ui/process-ui-message-stream.ts, ai@7.0.173)
rule for rule, so the message the server stores is the message the browser built from the
same chunks. The server uses it to keep the assistant message of a running generation and to
rebuild it from the chunk log.

Internally parts are plain dicts in wire form (camelCase keys), mutated in place like the
client's objects; "undefined" in the client is "key absent" here (protocol/js_values.py).
To keep `apply` O(1) per token, growing text is kept as a list of pieces and a streaming
tool input is only parsed (protocol/partial_json.py: the same repair as the client) when the
message is read (protocol/lazy_text.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from protocol.chunks import (
    AbortChunk,
    CustomChunk,
    DataChunk,
    ErrorChunk,
    FileChunk,
    FinishChunk,
    FinishReason,
    FinishStepChunk,
    MessageMetadataChunk,
    ReasoningDeltaChunk,
    ReasoningEndChunk,
    ReasoningFileChunk,
    ReasoningStartChunk,
    ResetStepChunk,
    SourceDocumentChunk,
    SourceUrlChunk,
    StartChunk,
    StartStepChunk,
    SteeringMessageChunk,
    TextDeltaChunk,
    TextEndChunk,
    TextStartChunk,
    ToolApprovalRequestChunk,
    ToolApprovalResponseChunk,
    ToolInputAvailableChunk,
    ToolInputDeltaChunk,
    ToolInputErrorChunk,
    ToolInputStartChunk,
    ToolOutputAvailableChunk,
    ToolOutputDeniedChunk,
    ToolOutputErrorChunk,
    UIMessageChunk,
    parse_chunk,
)
from protocol.js_values import UNDEFINED, defined, merge_metadata, set_value
from protocol.lazy_text import PartialInput, Text, TextPrefix, materialise
from protocol.messages import UIMessage
from protocol.partial_json import parse_partial_json

__all__ = [
    "UNDEFINED",
    "AssemblyError",
    "MessageAssembler",
    "merge_metadata",
    "parse_partial_json",
]

Part = dict[str, Any]


class AssemblyError(ValueError):
    """A chunk the client's state machine throws on (it then stops processing the stream)."""

    def __init__(self, message: str, *, chunk_type: str, chunk_id: str) -> None:
        super().__init__(message)
        self.chunk_type = chunk_type
        self.chunk_id = chunk_id


# --- the state machine -------------------------------------------------------------------------


def _is_tool(part: Part) -> bool:
    kind: str = part["type"]
    return kind.startswith("tool-") or kind == "dynamic-tool"


class _PartialToolCall:
    __slots__ = (
        "dynamic",
        "input_encoding",
        "part",
        "step",
        "text",
        "text_encoding",
        "title",
        "tool_metadata",
        "tool_name",
    )

    def __init__(
        self,
        *,
        tool_name: str,
        dynamic: bool,
        input_encoding: str | None,
        title: str | None,
        tool_metadata: Any,
        text: str = "",
    ) -> None:
        self.text = Text(text)
        self.tool_name = tool_name
        self.dynamic = dynamic
        self.input_encoding = input_encoding
        self.text_encoding = input_encoding == "text"
        self.title = title
        self.tool_metadata = tool_metadata
        # The part the last delta updated and the step it was found in: a later delta of
        # the same step finds the same part, so the per-token lookup is O(1).
        self.part: Part | None = None
        self.step = -1


class MessageAssembler:
    """Folds chunks into the assistant message like the AI SDK client.

    `message`: the last message of the conversation. When it is an assistant message the
    chunks continue it (the client does the same for a continued turn, e.g. after a tool
    approval); otherwise a new message with id `message_id` is started (`start.messageId`
    sets or replaces the id).

    Errors: `apply` raises `AssemblyError` where the client throws (text-delta without
    text-start, unknown toolCallId or approvalId, ...); the chunk then has no effect. The
    client stops at that point, so a caller mirroring it stops feeding. After an `error`
    chunk the Chat class stops processing the stream; with `stop_on_error` (default) later
    chunks do not change the message either (a `finish` still sets `finish_reason`, an
    `abort` still sets `aborted`). `stop_on_error=False` goes on like `readUIMessageStream`.

    Replays: call `begin_replay()` before feeding a response again from its first chunk (a
    resume); as in the client (`resumeStreamIsReplay`), the first `start` then resets the
    message to empty (keeping its id), and a `start` with a different messageId resets it too.
    """

    def __init__(
        self,
        *,
        message: UIMessage | None = None,
        message_id: str | None = None,
        stop_on_error: bool = True,
    ) -> None:
        self._stop_on_error = stop_on_error
        self._replay = False
        self._first_start = True
        self._stopped = False
        self._cached: UIMessage | None = None
        self._finish_reason: FinishReason | None = None
        self._aborted = False
        self._abort_reason: str | None = None
        self._error_text: str | None = None
        self._step = 0
        if message is not None and message.role == "assistant":
            dumped = message.dump()
            self._reset(dumped["id"], dumped.get("metadata"), dumped["parts"])
        else:
            self._reset(message_id or "", None, [])

    def _reset(self, message_id: str, metadata: Any, parts: list[Part]) -> None:
        self._id = message_id
        self._metadata = metadata
        self._parts = parts
        self._active_text: dict[str, Part] = {}
        self._active_reasoning: dict[str, Part] = {}
        self._partial_tools: dict[str, _PartialToolCall] = {}
        # First data part per (type, id): data chunks with the same type and id update it.
        self._data_parts: dict[tuple[str, str], Part] = {}
        for part in parts:
            if part["type"].startswith("data-") and isinstance(part.get("id"), str):
                self._data_parts.setdefault((part["type"], part["id"]), part)
        # Index of the first part of the current step (after the last step-start), and a
        # counter that changes whenever a new step begins.
        self._step_start = 0
        for index in range(len(parts) - 1, -1, -1):
            if parts[index]["type"] == "step-start":
                self._step_start = index + 1
                break
        self._step += 1
        for part in parts[self._step_start :]:
            if _is_tool(part) and part.get("state") == "input-streaming":
                raw = part.get("rawInput")
                static = part["type"] != "dynamic-tool"
                self._partial_tools[part["toolCallId"]] = _PartialToolCall(
                    tool_name=part["type"][5:] if static else part["toolName"],
                    dynamic=not static,
                    input_encoding=part.get("inputEncoding"),
                    title=part.get("title"),
                    tool_metadata=part.get("toolMetadata"),
                    text=raw if isinstance(raw, str) else "",
                )

    # --- reading -----------------------------------------------------------------------------

    @property
    def message_id(self) -> str:
        return self._id

    @property
    def finish_reason(self) -> FinishReason | None:
        return self._finish_reason

    @property
    def aborted(self) -> bool:
        return self._aborted

    @property
    def abort_reason(self) -> str | None:
        return self._abort_reason

    @property
    def error_text(self) -> str | None:
        """The `errorText` of the first `error` chunk, if any."""
        return self._error_text

    def to_dict(self) -> dict[str, Any]:
        """The message in wire form (a new dict; values inside are shared, not copied).

        Keys the client would leave undefined are absent, so this equals `JSON.stringify` of
        the client's message.
        """
        message: dict[str, Any] = {"id": self._id, "role": "assistant"}
        if self._metadata is not None:
            message["metadata"] = self._metadata
        message["parts"] = [materialise(part) for part in self._parts]
        return message

    @property
    def message(self) -> UIMessage:
        """The message as a validated `UIMessage` (built on demand, cached until the next
        chunk changes anything); costs O(message size), read it per step, not per token."""
        if self._cached is None:
            if not self._id:
                raise AssemblyError(
                    "the message has no id: pass message_id= or send start with a messageId",
                    chunk_type="start",
                    chunk_id="",
                )
            try:
                self._cached = UIMessage.model_validate(self.to_dict())
            except ValidationError as exc:
                raise AssemblyError(
                    f"the assembled message is not a valid UIMessage: {exc}",
                    chunk_type="message",
                    chunk_id=self._id,
                ) from exc
        return self._cached

    # --- writing -----------------------------------------------------------------------------

    def begin_replay(self) -> None:
        """The following chunks replay a response from its first chunk (see the class doc)."""
        self._replay = True
        self._first_start = True
        self._stopped = False

    def apply_json(self, data: bytes | str | dict[str, Any]) -> None:
        self.apply(parse_chunk(data))

    def apply(self, chunk: UIMessageChunk) -> None:
        if self._stopped:
            if isinstance(chunk, FinishChunk) and chunk.finish_reason is not None:
                self._finish_reason = chunk.finish_reason
            elif isinstance(chunk, AbortChunk):
                self._on_abort(chunk)
            return
        self._cached = None
        handler = _HANDLERS.get(type(chunk))
        if handler is None:
            handler = _handler_for(chunk)
        handler(self, chunk)

    # start / finish / metadata / errors

    def _on_start(self, chunk: StartChunk) -> None:
        reset = (self._replay and self._first_start) or (
            self._replay and chunk.message_id is not None and chunk.message_id != self._id
        )
        self._first_start = False
        if reset:
            self._reset(self._id if chunk.message_id is None else chunk.message_id, None, [])
            self._finish_reason = None
            self._aborted = False
            self._abort_reason = None
            self._error_text = None
        if chunk.message_id is not None:
            self._id = chunk.message_id
        self._merge_metadata(chunk.message_metadata)

    def _merge_metadata(self, metadata: Any) -> None:
        if metadata is not None:
            self._metadata = (
                metadata if self._metadata is None else merge_metadata(self._metadata, metadata)
            )

    def _on_finish(self, chunk: FinishChunk) -> None:
        if chunk.finish_reason is not None:
            self._finish_reason = chunk.finish_reason
        self._merge_metadata(chunk.message_metadata)

    def _on_message_metadata(self, chunk: MessageMetadataChunk) -> None:
        self._merge_metadata(chunk.message_metadata)

    def _on_abort(self, chunk: AbortChunk) -> None:
        self._aborted = True
        self._abort_reason = chunk.reason

    def _on_error(self, chunk: ErrorChunk) -> None:
        if self._error_text is None:
            self._error_text = chunk.error_text
        self._stopped = self._stop_on_error

    # steps

    def _on_start_step(self, chunk: StartStepChunk) -> None:
        self._parts.append({"type": "step-start"})
        self._step_start = len(self._parts)
        self._step += 1

    def _on_finish_step(self, chunk: FinishStepChunk) -> None:
        pass  # parts are closed by their own end chunks

    def _on_reset_step(self, chunk: ResetStepChunk) -> None:
        self._active_text = {}
        self._active_reasoning = {}
        self._partial_tools = {}
        removed = self._parts[self._step_start :]
        if removed:
            del self._parts[self._step_start :]
            gone = {id(part) for part in removed}
            self._data_parts = {
                key: part for key, part in self._data_parts.items() if id(part) not in gone
            }

    # text and reasoning

    def _on_text_start(self, chunk: TextStartChunk) -> None:
        part: Part = {"type": "text", "text": Text()}
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata
        part["state"] = "streaming"
        self._active_text[chunk.id] = part
        self._parts.append(part)

    def _on_text_delta(self, chunk: TextDeltaChunk) -> None:
        part = self._active_part(self._active_text, "text", "text-delta", chunk.id)
        part["text"].append(chunk.delta)
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata

    def _on_text_end(self, chunk: TextEndChunk) -> None:
        part = self._active_part(self._active_text, "text", "text-end", chunk.id)
        part["state"] = "done"
        if chunk.citations is not None:
            part["citations"] = chunk.model_dump(mode="json")["citations"]
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata
        del self._active_text[chunk.id]

    def _on_reasoning_start(self, chunk: ReasoningStartChunk) -> None:
        part: Part = {"type": "reasoning", "id": chunk.id, "text": Text()}
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata
        part["state"] = "streaming"
        self._active_reasoning[chunk.id] = part
        self._parts.append(part)

    def _on_reasoning_delta(self, chunk: ReasoningDeltaChunk) -> None:
        part = self._active_part(self._active_reasoning, "reasoning", "reasoning-delta", chunk.id)
        part["text"].append(chunk.delta)
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata

    def _on_reasoning_end(self, chunk: ReasoningEndChunk) -> None:
        part = self._active_part(self._active_reasoning, "reasoning", "reasoning-end", chunk.id)
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata
        part["state"] = "done"
        del self._active_reasoning[chunk.id]

    @staticmethod
    def _active_part(active: dict[str, Part], kind: str, chunk_type: str, part_id: str) -> Part:
        part = active.get(part_id)
        if part is None:
            start = chunk_type.split("-")[0] + "-start"
            raise AssemblyError(
                f'Received {chunk_type} for missing {kind} part with ID "{part_id}". '
                f'Ensure a "{start}" chunk is sent before any "{chunk_type}" chunks.',
                chunk_type=chunk_type,
                chunk_id=part_id,
            )
        return part

    # parts pushed as they come

    def _on_custom(self, chunk: CustomChunk) -> None:
        part: Part = {"type": "custom", "kind": chunk.kind}
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata
        self._parts.append(part)

    def _on_file(self, chunk: FileChunk | ReasoningFileChunk) -> None:
        part: Part = {"type": chunk.type, "mediaType": chunk.media_type, "url": chunk.url}
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata
        self._parts.append(part)

    def _on_source_url(self, chunk: SourceUrlChunk) -> None:
        part: Part = {"type": "source-url", "sourceId": chunk.source_id, "url": chunk.url}
        if chunk.title is not None:
            part["title"] = chunk.title
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata
        self._parts.append(part)

    def _on_source_document(self, chunk: SourceDocumentChunk) -> None:
        part: Part = {
            "type": "source-document",
            "sourceId": chunk.source_id,
            "mediaType": chunk.media_type,
            "title": chunk.title,
        }
        if chunk.filename is not None:
            part["filename"] = chunk.filename
        if chunk.provider_metadata is not None:
            part["providerMetadata"] = chunk.provider_metadata
        self._parts.append(part)

    def _on_steering_message(self, chunk: SteeringMessageChunk) -> None:
        self._parts.append(
            {"type": "steering-message", "id": chunk.id, "parts": [p.dump() for p in chunk.parts]}
        )

    def _on_data(self, chunk: DataChunk) -> None:
        if chunk.transient:
            return  # only the client's onData callback sees it
        if chunk.id is not None:
            existing = self._data_parts.get((chunk.type, chunk.id))
            if existing is not None:
                existing["data"] = chunk.data
                return
        # The client stores the chunk object itself (extra keys and `transient: false` too).
        part = chunk.model_dump(mode="json")
        self._parts.append(part)
        if chunk.id is not None:
            self._data_parts[(chunk.type, chunk.id)] = part

    # tools

    def _current_step_tool(self, tool_call_id: str, kind: str) -> Part | None:
        """First tool part of the current step with that id; kind "static", "dynamic" or
        "any"."""
        for index in range(self._step_start, len(self._parts)):
            part = self._parts[index]
            if part.get("toolCallId") != tool_call_id:
                continue
            part_type: str = part["type"]
            if part_type == "dynamic-tool":
                if kind != "static":
                    return part
            elif part_type.startswith("tool-") and kind != "dynamic":
                return part
        return None

    def _tool_invocation(self, tool_call_id: str, chunk_type: str) -> Part:
        """The client's getToolInvocation: the current step first, then the latest part."""
        part = self._current_step_tool(tool_call_id, "any")
        if part is not None:
            return part
        for index in range(len(self._parts) - 1, -1, -1):
            candidate = self._parts[index]
            if candidate.get("toolCallId") == tool_call_id and _is_tool(candidate):
                return candidate
        raise AssemblyError(
            f'No tool invocation found for tool call ID "{tool_call_id}".',
            chunk_type=chunk_type,
            chunk_id=tool_call_id,
        )

    def _update_tool(
        self,
        *,
        dynamic: bool,
        tool_call_id: str,
        tool_name: str,
        state: str,
        existing: Part | None = None,
        input: Any = UNDEFINED,
        output: Any = UNDEFINED,
        error_text: Any = UNDEFINED,
        raw_input: Any = UNDEFINED,
        input_encoding: str | None = None,
        preliminary: bool | None = None,
        provider_executed: bool | None = None,
        provider_metadata: Any = None,
        title: str | None = None,
        tool_metadata: Any = None,
    ) -> Part:
        """updateToolPart / updateDynamicToolPart: update the part of this tool call in the
        current step (or `existing`), or push a new one."""
        part = existing
        if part is None:
            part = self._current_step_tool(tool_call_id, "dynamic" if dynamic else "static")
        result = state in ("output-available", "output-error")
        if part is not None:
            part["state"] = state
            if dynamic:
                part["toolName"] = tool_name
            else:
                part["type"] = "tool-" + tool_name
            set_value(part, "input", input)
            set_value(part, "output", output)
            set_value(part, "errorText", error_text)
            set_value(part, "rawInput", raw_input)
            set_value(part, "inputEncoding", defined(input_encoding))
            set_value(part, "preliminary", defined(preliminary))
            if title is not None:
                part["title"] = title
            if tool_metadata is not None:
                part["toolMetadata"] = tool_metadata
            if provider_executed is None:  # once set, it stays
                provider_executed = part.get("providerExecuted")
            set_value(part, "providerExecuted", defined(provider_executed))
            if provider_metadata is not None:
                part["resultProviderMetadata" if result else "callProviderMetadata"] = (
                    provider_metadata
                )
            return part
        if dynamic:
            part = {"type": "dynamic-tool", "toolName": tool_name}
        else:
            part = {"type": "tool-" + tool_name}
        part["toolCallId"] = tool_call_id
        part["state"] = state
        values: list[tuple[str, Any]] = [
            ("title", defined(title)),
            ("toolMetadata", defined(tool_metadata)),
            ("input", input),
            ("inputEncoding", defined(input_encoding)),
            ("output", output),
            ("errorText", error_text),
            ("preliminary", defined(preliminary)),
            ("providerExecuted", defined(provider_executed)),
        ]
        if not dynamic:  # the client's new dynamic-tool part has no rawInput
            values.append(("rawInput", raw_input))
        for key, value in values:
            if value is not UNDEFINED:
                part[key] = value
        if provider_metadata is not None:
            part["resultProviderMetadata" if result else "callProviderMetadata"] = provider_metadata
        self._parts.append(part)
        return part

    def _on_tool_input_start(self, chunk: ToolInputStartChunk) -> None:
        dynamic = bool(chunk.dynamic)
        partial = _PartialToolCall(
            tool_name=chunk.tool_name,
            dynamic=dynamic,
            input_encoding=chunk.input_encoding,
            title=chunk.title,
            tool_metadata=chunk.tool_metadata,
        )
        self._partial_tools[chunk.tool_call_id] = partial
        partial.part = self._update_tool(
            dynamic=dynamic,
            tool_call_id=chunk.tool_call_id,
            tool_name=chunk.tool_name,
            state="input-streaming",
            input_encoding=chunk.input_encoding,
            provider_executed=chunk.provider_executed,
            title=chunk.title,
            tool_metadata=chunk.tool_metadata,
            provider_metadata=chunk.provider_metadata,
        )
        partial.step = self._step

    def _on_tool_input_delta(self, chunk: ToolInputDeltaChunk) -> None:
        partial = self._partial_tools.get(chunk.tool_call_id)
        if partial is None:
            raise AssemblyError(
                f'Received tool-input-delta for missing tool call with ID "{chunk.tool_call_id}". '
                'Ensure a "tool-input-start" chunk is sent before any "tool-input-delta" chunks.',
                chunk_type="tool-input-delta",
                chunk_id=chunk.tool_call_id,
            )
        partial.text.append(chunk.input_text_delta)
        raw = TextPrefix(partial.text)
        # Parts are only removed by reset-step and replay resets, which also drop the
        # partial calls; within one step the lookup would find the same part again.
        existing = partial.part if partial.step == self._step else None
        partial.part = self._update_tool(
            dynamic=partial.dynamic,
            tool_call_id=chunk.tool_call_id,
            tool_name=partial.tool_name,
            state="input-streaming",
            existing=existing,
            input=PartialInput(raw, partial.text_encoding),
            raw_input=raw,
            input_encoding=partial.input_encoding,
            title=partial.title,
            tool_metadata=partial.tool_metadata,
        )
        partial.step = self._step

    def _on_tool_input_available(self, chunk: ToolInputAvailableChunk) -> None:
        self._update_tool(
            dynamic=bool(chunk.dynamic),
            tool_call_id=chunk.tool_call_id,
            tool_name=chunk.tool_name,
            state="input-available",
            input=chunk.input,
            provider_executed=chunk.provider_executed,
            provider_metadata=chunk.provider_metadata,
            title=chunk.title,
            tool_metadata=chunk.tool_metadata,
        )

    def _on_tool_input_error(self, chunk: ToolInputErrorChunk) -> None:
        # An existing part of this call (from tool-input-start) keeps its kind.
        existing = self._current_step_tool(chunk.tool_call_id, "any")
        dynamic = existing["type"] == "dynamic-tool" if existing else bool(chunk.dynamic)
        self._update_tool(
            dynamic=dynamic,
            tool_call_id=chunk.tool_call_id,
            tool_name=chunk.tool_name,
            state="output-error",
            input=chunk.input,
            error_text=chunk.error_text,
            provider_executed=chunk.provider_executed,
            provider_metadata=chunk.provider_metadata,
            tool_metadata=chunk.tool_metadata,
        )

    def _on_tool_approval_request(self, chunk: ToolApprovalRequestChunk) -> None:
        part = self._tool_invocation(chunk.tool_call_id, "tool-approval-request")
        approval: dict[str, Any] = {"id": chunk.approval_id}
        if chunk.approval_descriptor is not None:
            approval["descriptor"] = chunk.approval_descriptor
        if chunk.input_schema_input is not None:
            approval["inputSchemaInput"] = chunk.input_schema_input
        if chunk.reason is not None:
            approval["requestReason"] = chunk.reason
        if chunk.is_automatic is True:
            approval["isAutomatic"] = True
        if chunk.signature is not None:
            approval["signature"] = chunk.signature
        part["state"] = "approval-requested"
        part["approval"] = approval

    def _on_tool_approval_response(self, chunk: ToolApprovalResponseChunk) -> None:
        part = next(
            (
                p
                for p in self._parts
                if _is_tool(p)
                and isinstance(p.get("approval"), dict)
                and p["approval"].get("id") == chunk.approval_id
            ),
            None,
        )
        if part is None:
            raise AssemblyError(
                f'No tool invocation found for approval ID "{chunk.approval_id}".',
                chunk_type="tool-approval-response",
                chunk_id=chunk.approval_id,
            )
        approval = {**part["approval"], "id": chunk.approval_id, "approved": chunk.approved}
        if chunk.reason is not None:
            approval["reason"] = chunk.reason
        part["state"] = "approval-responded"
        part["approval"] = approval
        if chunk.provider_executed is not None:
            part["providerExecuted"] = chunk.provider_executed
        if chunk.provider_metadata is not None:
            part["callProviderMetadata"] = chunk.provider_metadata

    def _on_tool_output_denied(self, chunk: ToolOutputDeniedChunk) -> None:
        self._tool_invocation(chunk.tool_call_id, "tool-output-denied")["state"] = "output-denied"

    def _on_tool_output_available(self, chunk: ToolOutputAvailableChunk) -> None:
        part = self._tool_invocation(chunk.tool_call_id, "tool-output-available")
        dynamic = part["type"] == "dynamic-tool"
        self._update_tool(
            dynamic=dynamic,
            tool_call_id=chunk.tool_call_id,
            tool_name=part["toolName"] if dynamic else part["type"][5:],
            state="output-available",
            existing=part,
            input=part.get("input", UNDEFINED),
            output=chunk.output,
            preliminary=chunk.preliminary,
            provider_executed=chunk.provider_executed,
            provider_metadata=chunk.provider_metadata,
            title=part.get("title"),
            tool_metadata=(
                chunk.tool_metadata if chunk.tool_metadata is not None else part.get("toolMetadata")
            ),
        )

    def _on_tool_output_error(self, chunk: ToolOutputErrorChunk) -> None:
        part = self._tool_invocation(chunk.tool_call_id, "tool-output-error")
        dynamic = part["type"] == "dynamic-tool"
        self._update_tool(
            dynamic=dynamic,
            tool_call_id=chunk.tool_call_id,
            tool_name=part["toolName"] if dynamic else part["type"][5:],
            state="output-error",
            existing=part,
            input=part.get("input", UNDEFINED),
            # The static variant keeps the raw input; the dynamic one drops it.
            raw_input=UNDEFINED if dynamic else part.get("rawInput", UNDEFINED),
            error_text=chunk.error_text,
            provider_executed=chunk.provider_executed,
            provider_metadata=chunk.provider_metadata,
            title=part.get("title"),
            tool_metadata=(
                chunk.tool_metadata if chunk.tool_metadata is not None else part.get("toolMetadata")
            ),
        )


_Handler = Callable[[MessageAssembler, Any], None]

_HANDLERS: dict[type, _Handler] = {
    StartChunk: MessageAssembler._on_start,
    FinishChunk: MessageAssembler._on_finish,
    MessageMetadataChunk: MessageAssembler._on_message_metadata,
    AbortChunk: MessageAssembler._on_abort,
    ErrorChunk: MessageAssembler._on_error,
    StartStepChunk: MessageAssembler._on_start_step,
    FinishStepChunk: MessageAssembler._on_finish_step,
    ResetStepChunk: MessageAssembler._on_reset_step,
    TextStartChunk: MessageAssembler._on_text_start,
    TextDeltaChunk: MessageAssembler._on_text_delta,
    TextEndChunk: MessageAssembler._on_text_end,
    ReasoningStartChunk: MessageAssembler._on_reasoning_start,
    ReasoningDeltaChunk: MessageAssembler._on_reasoning_delta,
    ReasoningEndChunk: MessageAssembler._on_reasoning_end,
    CustomChunk: MessageAssembler._on_custom,
    FileChunk: MessageAssembler._on_file,
    ReasoningFileChunk: MessageAssembler._on_file,
    SourceUrlChunk: MessageAssembler._on_source_url,
    SourceDocumentChunk: MessageAssembler._on_source_document,
    SteeringMessageChunk: MessageAssembler._on_steering_message,
    DataChunk: MessageAssembler._on_data,
    ToolInputStartChunk: MessageAssembler._on_tool_input_start,
    ToolInputDeltaChunk: MessageAssembler._on_tool_input_delta,
    ToolInputAvailableChunk: MessageAssembler._on_tool_input_available,
    ToolInputErrorChunk: MessageAssembler._on_tool_input_error,
    ToolApprovalRequestChunk: MessageAssembler._on_tool_approval_request,
    ToolApprovalResponseChunk: MessageAssembler._on_tool_approval_response,
    ToolOutputDeniedChunk: MessageAssembler._on_tool_output_denied,
    ToolOutputAvailableChunk: MessageAssembler._on_tool_output_available,
    ToolOutputErrorChunk: MessageAssembler._on_tool_output_error,
}


def _handler_for(chunk: object) -> _Handler:
    for cls in type(chunk).__mro__:  # subclasses of the chunk models
        if cls in _HANDLERS:
            return _HANDLERS[cls]
    raise TypeError(f"not a UI message chunk: {chunk!r}")
