"""Continuing an assistant message: client-side tool outputs and approval answers.

The client sends the assistant message back with its tool parts updated. Only the *stored*
message counts: the client's answers (approval responses, outputs of browser tools) are
applied onto its stored parts, and only where the server is waiting for one:

* an approval answer names an approval this server issued and recorded for that tool call
  (its id, tool and input are the server's), and is accepted once;
* a client tool output answers a call of a browser tool the server recorded as waiting
  (`input-available`); a server tool's output never comes from the client.

Approved tools then run with the input the model gave, as stored, whatever the client sent.
"""

from __future__ import annotations

from typing import Any

from bridge.chat.conversation import plan_turn
from bridge.errors import ApprovalAnswered, ApprovalRejected, HistoryConflict
from bridge.generation.plan import ApprovalDecision, Continuation, Turn
from bridge.tools import ToolBox
from protocol.messages import (
    AnyToolUIPart,
    ChatRequest,
    DynamicToolUIPart,
    ToolApproval,
    ToolUIPart,
    UIMessage,
)

AnyToolPart = (ToolUIPart, DynamicToolUIPart)


def resolve_turn(
    request: ChatRequest,
    stored: list[UIMessage],
    tools: ToolBox,
    *,
    allow_client_system: bool = False,
) -> tuple[Turn, list[ApprovalDecision]]:
    """The turn to run for `request` against the stored history, and the approval
    decisions to carry out before the model is called again."""
    planned = plan_turn(request, stored, allow_client_system=allow_client_system)
    if isinstance(planned, Turn):
        return planned, []
    return continue_turn(planned, tools)


def continue_turn(
    continuation: Continuation, tools: ToolBox
) -> tuple[Turn, list[ApprovalDecision]]:
    continued, decisions = merge_answers(continuation.sent, continuation.stored, tools)
    turn = Turn(
        history=[*continuation.base, continued],
        base=continuation.base,
        continued=continued,
        message_id=continued.id,
    )
    return turn, decisions


def _by_call_id(message: UIMessage) -> dict[str, AnyToolUIPart]:
    return {part.tool_call_id: part for part in message.tool_parts()}


def merge_answers(
    sent: UIMessage, stored: UIMessage, tools: ToolBox
) -> tuple[UIMessage, list[ApprovalDecision]]:
    """The stored message with the client's answers applied, and the approval decisions.

    Parts of the client's copy that answer nothing (settled calls, its own fields) are
    ignored; a request that answers nothing at all is refused."""
    known = _by_call_id(stored)
    answers: dict[str, AnyToolUIPart] = {}
    decisions: list[ApprovalDecision] = []
    for part in sent.tool_parts():
        old = known.get(part.tool_call_id)
        if old is not None and old.tool_name != part.tool_name:
            raise ApprovalRejected(
                f"tool call {part.tool_call_id[:80]}: the stored call is to {old.tool_name}, "
                f"not {part.tool_name[:80]}"
            )
        if part.state == "approval-responded":
            decisions.append(_check_approval(part, old))
            answers[part.tool_call_id] = part
        elif part.state in ("output-available", "output-error"):
            if old is None:
                raise ApprovalRejected(f"unknown tool call {part.tool_call_id[:80]}")
            if old.state in ("output-available", "output-error", "output-denied"):
                continue  # settled before: what is stored stays
            _check_client_output(part, old, tools)
            answers[part.tool_call_id] = part
    if not answers:
        raise HistoryConflict(
            f"message {sent.id[:80]!r} answers none of the tool calls the server is waiting "
            "for (answered already, or nothing to answer); send a user message instead"
        )
    parts: list[Any] = []
    for item in stored.parts:
        answer = answers.get(item.tool_call_id) if isinstance(item, AnyToolPart) else None
        if answer is None or not isinstance(item, AnyToolPart):
            parts.append(item)
            continue
        updates: dict[str, Any] = {"state": answer.state}
        if answer.state == "approval-responded":
            assert answer.approval is not None and item.approval is not None
            updates["approval"] = item.approval.model_copy(
                update={"approved": answer.approval.approved, "reason": answer.approval.reason}
            )
        else:
            updates["output"] = answer.output
            updates["error_text"] = answer.error_text
        parts.append(item.model_copy(update=updates))
    return stored.model_copy(update={"parts": parts}), decisions


def _check_client_output(part: AnyToolUIPart, old: AnyToolUIPart, tools: ToolBox) -> None:
    declared = tools.get(old.tool_name)
    # Fails closed: only a browser tool this process declares takes an output from the
    # client (not a server tool, nor one this process does not know: removed since, or
    # another deployment's).
    if old.provider_executed or declared is None or not declared.client_side:
        raise ApprovalRejected(
            f"tool call {part.tool_call_id[:80]}: {old.tool_name} is not a browser tool of "
            "this server; its output cannot come from the client"
        )
    if old.state != "input-available":
        raise ApprovalRejected(
            f"tool call {part.tool_call_id[:80]} is not waiting for an output (it is {old.state})"
        )


def _check_approval(part: AnyToolUIPart, old: AnyToolUIPart | None) -> ApprovalDecision:
    answer = part.approval
    if answer is None or answer.approved is None:
        raise ApprovalRejected(
            f"tool call {part.tool_call_id[:80]}: approval-responded needs "
            "`approval: {id, approved}`"
        )
    recorded: ToolApproval | None = old.approval if old is not None else None
    if old is None or recorded is None or recorded.id != answer.id:
        raise ApprovalRejected(
            f"approval {answer.id[:80]!r} for tool call {part.tool_call_id[:80]} "
            "was never requested"
        )
    if old.state != "approval-requested":
        raise ApprovalAnswered(f"approval {answer.id[:80]!r} was answered already")
    return ApprovalDecision(
        tool_call_id=old.tool_call_id,
        tool_name=old.tool_name,
        input=old.input,
        approved=answer.approved,
        reason=answer.reason,
        provider_executed=bool(old.provider_executed),
    )
