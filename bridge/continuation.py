"""Continuing an assistant message: client-side tool outputs and approval answers.

The client sends the assistant message back with its tool parts updated. The server
trusts the *stored* message, not the client's copy: it applies only the client's answers
(approval responses, outputs of browser tools) onto the stored parts, and refuses answers
to approvals it never asked for or that were answered already. Approved tools then run
with the input the model gave, as stored, whatever the client sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.errors import ApprovalAnswered, ApprovalRejected
from bridge.tools import ToolBox
from protocol.messages import (
    AnyToolUIPart,
    DynamicToolUIPart,
    ToolApproval,
    ToolUIPart,
    UIMessage,
)

AnyToolPart = (ToolUIPart, DynamicToolUIPart)


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    tool_call_id: str
    tool_name: str
    input: Any
    approved: bool
    reason: str | None


def _by_call_id(message: UIMessage | None) -> dict[str, AnyToolUIPart]:
    return {part.tool_call_id: part for part in message.tool_parts()} if message else {}


def merge_answers(
    sent: UIMessage, stored: UIMessage | None, tools: ToolBox
) -> tuple[UIMessage, list[ApprovalDecision]]:
    """The message to continue (the stored one with the client's answers applied) and
    the approval decisions to carry out before the model is called again."""
    base = stored if stored is not None else sent
    known = _by_call_id(stored)
    answers: dict[str, AnyToolUIPart] = {}
    decisions: list[ApprovalDecision] = []
    for part in sent.tool_parts():
        old = known.get(part.tool_call_id)
        if part.state == "approval-responded":
            decisions.append(_check_approval(part, old))
            answers[part.tool_call_id] = part
        elif part.state in ("output-available", "output-error"):
            if old is not None and old.state not in ("input-available", "input-streaming"):
                continue  # settled before: keep what is stored
            declared = tools.get(part.tool_name)
            if declared is not None and not declared.client_side:
                raise ApprovalRejected(
                    f"tool call {part.tool_call_id}: {part.tool_name} runs on the server; "
                    "its output cannot come from the client"
                )
            if stored is not None and old is None:
                raise ApprovalRejected(f"unknown tool call {part.tool_call_id}")
            answers[part.tool_call_id] = part
    if not answers or stored is None:
        return sent, decisions
    parts: list[Any] = []
    for item in base.parts:
        answer = answers.get(item.tool_call_id) if isinstance(item, AnyToolPart) else None
        if answer is None or not isinstance(item, AnyToolPart):
            parts.append(item)
            continue
        updates: dict[str, Any] = {"state": answer.state}
        if answer.state == "approval-responded" and answer.approval is not None:
            old_approval = item.approval
            updates["approval"] = ToolApproval(
                id=answer.approval.id,
                approved=answer.approval.approved,
                reason=answer.approval.reason,
                descriptor=old_approval.descriptor if old_approval else None,
            )
        else:
            updates["output"] = answer.output
            updates["error_text"] = answer.error_text
        parts.append(item.model_copy(update=updates))
    return base.model_copy(update={"parts": parts}), decisions


def _check_approval(part: AnyToolUIPart, old: AnyToolUIPart | None) -> ApprovalDecision:
    answer = part.approval
    if answer is None or answer.approved is None:
        raise ApprovalRejected(
            f"tool call {part.tool_call_id}: approval-responded needs `approval: {{id, approved}}`"
        )
    if old is None or old.approval is None or old.approval.id != answer.id:
        raise ApprovalRejected(
            f"approval {answer.id!r} for tool call {part.tool_call_id} was never requested"
        )
    if old.state != "approval-requested":
        raise ApprovalAnswered(f"approval {answer.id!r} was answered already")
    return ApprovalDecision(
        tool_call_id=old.tool_call_id,
        tool_name=old.tool_name,
        input=old.input,
        approved=answer.approved,
        reason=answer.reason,
    )
