"""The conversation cut into provider-neutral turns, and tool outputs as text.

Every provider API wants the same history in a different shape. `conversation_turns` does
the part that is the same for all of them: it walks the UI messages once, splits each
assistant message at its `step-start` parts (one step = one model call, whose tool calls
are answered before the next step) and drops what a model must not see (tool calls
without a result yet, data parts, sources). Each provider then only maps turns to its
own request types.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocol.messages import (
    DynamicToolUIPart,
    FileUIPart,
    ReasoningUIPart,
    SteeringMessageUIPart,
    StepStartUIPart,
    TextUIPart,
    ToolUIPart,
    UIMessage,
)

ProviderMetadata = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ToolResult:
    output: Any
    """The tool's output (any JSON value); for errors and denials the text below."""
    text: str
    """The output as the text a model reads."""
    is_error: bool = False
    denied: bool = False


PENDING = ToolResult(output=None, text="")
"""The result of a call the provider ran itself and has not answered yet (a paused turn):
the call goes back alone."""


@dataclass(frozen=True, slots=True)
class ToolExchange:
    """One tool call of an assistant step together with its result."""

    tool_call_id: str
    tool_name: str
    input: Any
    result: ToolResult
    provider_metadata: ProviderMetadata | None = None
    provider_executed: bool = False
    """A call the provider ran itself (kept only for `conversation_turns(...,
    provider_executed=True)`: a provider that takes its own calls back, as it sent them)."""

    @property
    def input_json(self) -> str:
        return to_json(self.input if self.input is not None else {})

    @property
    def input_object(self) -> dict[str, Any]:
        """The input as an object: APIs that take parsed input (Anthropic) reject anything
        else, and an invalid call stored as raw text is best sent as an empty object."""
        value = self.input
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return {}
        return dict(value) if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class ApprovalAnswer:
    """The user's answer to a provider's request for approval of a call it runs itself
    (OpenAI's remote MCP); only the provider that asked can use it."""

    approval_id: str
    approved: bool
    provider_metadata: ProviderMetadata | None = None


UserContent = TextUIPart | FileUIPart
AssistantContent = TextUIPart | ReasoningUIPart | ToolExchange


@dataclass(slots=True)
class SystemTurn:
    text: str


@dataclass(slots=True)
class UserTurn:
    parts: list[UserContent] = field(default_factory=list)


@dataclass(slots=True)
class AssistantStep:
    """The content of one model call, in the order the model produced it."""

    parts: list[AssistantContent] = field(default_factory=list)
    approvals: list[ApprovalAnswer] = field(default_factory=list)
    """Answers to the provider's approval requests in this step, in order."""

    @property
    def tool_exchanges(self) -> list[ToolExchange]:
        return [part for part in self.parts if isinstance(part, ToolExchange)]


Turn = SystemTurn | UserTurn | AssistantStep


def conversation_turns(
    messages: Iterable[UIMessage], *, provider_executed: bool = False
) -> list[Turn]:
    """The conversation as turns. `provider_executed`: the calls the provider ran itself
    (with their results) are kept in their steps, else left out."""
    turns: list[Turn] = []
    for message in messages:
        if message.role == "system":
            text = "\n\n".join(p.text for p in message.parts if isinstance(p, TextUIPart))
            if text.strip():
                turns.append(SystemTurn(text))
        elif message.role == "user":
            parts = _user_parts(message.parts)
            if parts:
                turns.append(UserTurn(parts))
        else:
            turns.extend(_assistant_turns(message, provider_executed))
    return turns


def _user_parts(parts: Iterable[object]) -> list[UserContent]:
    """Text (non-empty) and file parts; nothing else of a user message reaches a model."""
    kept: list[UserContent] = []
    for part in parts:
        if isinstance(part, FileUIPart) or (isinstance(part, TextUIPart) and part.text):
            kept.append(part)
    return kept


def _assistant_turns(message: UIMessage, provider_executed: bool = False) -> list[Turn]:
    turns: list[Turn] = []
    step = AssistantStep()

    def flush() -> None:
        nonlocal step
        if step.parts or step.approvals:
            turns.append(step)
        step = AssistantStep()

    for part in message.parts:
        if isinstance(part, StepStartUIPart):
            flush()
        elif isinstance(part, TextUIPart):
            if part.text:
                step.parts.append(part)
        elif isinstance(part, ReasoningUIPart):
            step.parts.append(part)
        elif isinstance(part, ToolUIPart | DynamicToolUIPart):
            answer = approval_answer(part)
            if answer is not None:
                step.approvals.append(answer)
            exchange = tool_exchange(part, provider_executed=provider_executed)
            if exchange is not None:
                step.parts.append(exchange)
        elif isinstance(part, SteeringMessageUIPart):
            # A user message injected mid-run: the model reads it where it was injected.
            flush()
            steering = _user_parts(part.parts)
            if steering:
                turns.append(UserTurn(steering))
    flush()
    return turns


def tool_exchange(
    part: ToolUIPart | DynamicToolUIPart, *, provider_executed: bool = False
) -> ToolExchange | None:
    """The call and its result, or None when the call must not be sent: without a result
    yet (streaming, waiting for approval or for the runner to execute it) or executed by
    the provider itself (unless `provider_executed`)."""
    if part.provider_executed and not provider_executed:
        return None
    result = tool_result(part)
    if result is None and part.provider_executed and part.state == "input-available":
        result = PENDING
    if result is None:
        return None
    return ToolExchange(
        tool_call_id=part.tool_call_id,
        tool_name=part.tool_name,
        input=part.input,
        result=result,
        provider_metadata=part.call_provider_metadata,
        provider_executed=part.provider_executed is True,
    )


def approval_answer(part: ToolUIPart | DynamicToolUIPart) -> ApprovalAnswer | None:
    """The user's answer to the provider's approval request for its own call, once given."""
    approval = part.approval
    if not part.provider_executed or approval is None or approval.approved is None:
        return None
    return ApprovalAnswer(approval.id, approval.approved, part.call_provider_metadata)


def tool_result(part: ToolUIPart | DynamicToolUIPart) -> ToolResult | None:
    if part.state == "output-available":
        return ToolResult(output=part.output, text=as_text(part.output))
    if part.state == "output-error":
        text = part.error_text or "The tool failed."
        return ToolResult(output=text, text=text, is_error=True)
    denied = part.state == "output-denied" or (
        part.state == "approval-responded"
        and part.approval is not None
        and part.approval.approved is False
    )
    if denied:
        text = "The user denied this tool call."
        if part.approval is not None and part.approval.reason:
            text += f" Reason: {part.approval.reason}"
        return ToolResult(output=text, text=text, is_error=True, denied=True)
    return None


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else to_json(value)


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def metadata_value(metadata: ProviderMetadata | None, provider: str, key: str) -> Any:
    """`metadata[provider][key]`, tolerating a missing or malformed level."""
    if not isinstance(metadata, dict):
        return None
    scoped = metadata.get(provider)
    return scoped.get(key) if isinstance(scoped, dict) else None
