"""A stored message as chunks, so a replay can rebuild it.

A generation that continues an assistant message (after a client-side tool output or an
approval) streams only what is new. A client that resumes it replays the log from `start`,
which resets its copy of the message, so the log must first rebuild what the message held
already: `message_to_chunks` gives those chunks. Readers that still hold the message (the
POST that started the continuation) skip them.

Tool parts that are already settled are rebuilt with `tool-input-error` then their output,
never `tool-input-available`: a replayed `tool-input-available` would call the client's
`onToolCall` again and run a browser tool twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from protocol.chunks import (
    CustomChunk,
    DataChunk,
    FileChunk,
    FinishStepChunk,
    MessageMetadataChunk,
    ReasoningDeltaChunk,
    ReasoningEndChunk,
    ReasoningFileChunk,
    ReasoningStartChunk,
    SourceDocumentChunk,
    SourceUrlChunk,
    StartStepChunk,
    SteeringMessageChunk,
    TextDeltaChunk,
    TextEndChunk,
    TextStartChunk,
    ToolApprovalRequestChunk,
    ToolApprovalResponseChunk,
    ToolInputAvailableChunk,
    ToolInputErrorChunk,
    ToolOutputAvailableChunk,
    ToolOutputDeniedChunk,
    UIMessageChunk,
)
from protocol.messages import (
    CustomUIPart,
    DataUIPart,
    DynamicToolUIPart,
    FileUIPart,
    ReasoningFileUIPart,
    ReasoningUIPart,
    SourceDocumentUIPart,
    SourceUrlUIPart,
    SteeringMessageUIPart,
    StepStartUIPart,
    TextUIPart,
    ToolUIPart,
    UIMessage,
)

_REPLAY_NOTE = "(rebuilt from the session log)"


def message_to_chunks(message: UIMessage) -> list[UIMessageChunk]:
    """Chunks that, applied after `start{messageId}`, rebuild `message`'s parts."""
    chunks: list[UIMessageChunk] = []
    if message.metadata is not None:
        chunks.append(MessageMetadataChunk(message_metadata=message.metadata))
    step_open = False
    for index, part in enumerate(message.parts):
        if isinstance(part, StepStartUIPart):
            if step_open:
                chunks.append(FinishStepChunk())
            chunks.append(StartStepChunk())
            step_open = True
            continue
        chunks.extend(_part_chunks(f"replay-{index}", part))
    if step_open:
        chunks.append(FinishStepChunk())
    return chunks


def _part_chunks(block_id: str, part: Any) -> Iterator[UIMessageChunk]:
    match part:
        case TextUIPart():
            yield TextStartChunk(id=block_id, provider_metadata=part.provider_metadata)
            if part.text:
                yield TextDeltaChunk(id=block_id, delta=part.text)
            yield TextEndChunk(id=block_id, provider_metadata=part.provider_metadata)
        case ReasoningUIPart():
            block_id = part.id or block_id
            yield ReasoningStartChunk(id=block_id, provider_metadata=part.provider_metadata)
            if part.text:
                yield ReasoningDeltaChunk(id=block_id, delta=part.text)
            yield ReasoningEndChunk(id=block_id, provider_metadata=part.provider_metadata)
        case ToolUIPart() | DynamicToolUIPart():
            yield from _tool_chunks(part)
        case SourceUrlUIPart():
            yield SourceUrlChunk(
                source_id=part.source_id,
                url=part.url,
                title=part.title,
                provider_metadata=part.provider_metadata,
            )
        case SourceDocumentUIPart():
            yield SourceDocumentChunk(
                source_id=part.source_id,
                media_type=part.media_type,
                title=part.title,
                filename=part.filename,
                provider_metadata=part.provider_metadata,
            )
        case FileUIPart():
            yield FileChunk(
                url=part.url, media_type=part.media_type, provider_metadata=part.provider_metadata
            )
        case ReasoningFileUIPart():
            yield ReasoningFileChunk(
                url=part.url, media_type=part.media_type, provider_metadata=part.provider_metadata
            )
        case DataUIPart():
            yield DataChunk(type=part.type, id=part.id, data=part.data)
        case CustomUIPart():
            yield CustomChunk(kind=part.kind, provider_metadata=part.provider_metadata)
        case SteeringMessageUIPart():
            yield SteeringMessageChunk(id=part.id, parts=list(part.parts))


def _tool_chunks(part: ToolUIPart | DynamicToolUIPart) -> Iterator[UIMessageChunk]:
    name = part.tool_name
    dynamic = True if isinstance(part, DynamicToolUIPart) else None
    common: dict[str, Any] = {
        "tool_call_id": part.tool_call_id,
        "tool_name": name,
        "input": part.input,
        "provider_executed": part.provider_executed,
        "provider_metadata": part.call_provider_metadata,
        "dynamic": dynamic,
        "title": part.title,
    }
    state = part.state
    approval = part.approval
    if state == "output-error":
        yield ToolInputErrorChunk(**common, error_text=part.error_text or "")
        return
    if state == "output-available" and (approval is None or not approval.approved):
        yield ToolInputErrorChunk(**common, error_text=_REPLAY_NOTE)
        yield ToolOutputAvailableChunk(
            tool_call_id=part.tool_call_id,
            output=part.output,
            provider_executed=part.provider_executed,
            provider_metadata=part.result_provider_metadata,
            preliminary=part.preliminary,
            dynamic=dynamic,
        )
        return
    yield ToolInputAvailableChunk(**common)
    if approval is None:
        return
    yield ToolApprovalRequestChunk(approval_id=approval.id, tool_call_id=part.tool_call_id)
    if approval.approved is None:
        return
    yield ToolApprovalResponseChunk(
        approval_id=approval.id, approved=approval.approved, reason=approval.reason
    )
    if state == "output-denied":
        yield ToolOutputDeniedChunk(tool_call_id=part.tool_call_id)
    elif state == "output-available":
        yield ToolOutputAvailableChunk(
            tool_call_id=part.tool_call_id,
            output=part.output,
            provider_executed=part.provider_executed,
            provider_metadata=part.result_provider_metadata,
            dynamic=dynamic,
        )
