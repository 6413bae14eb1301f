"""What a chat request means for the history: new turn, continuation, regenerate, edit."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import RequestError
from bridge.ids import new_message_id
from protocol.messages import ChatRequest, UIMessage


@dataclass(frozen=True, slots=True)
class Turn:
    history: list[UIMessage]
    """The conversation as stored when the generation begins (the continued assistant
    message included)."""
    base: list[UIMessage]
    """`history` without the continued assistant message: the answer is appended to it."""
    continued: UIMessage | None
    """The assistant message this generation continues (tool outputs, approvals)."""
    message_id: str


def _truncate_at(messages: list[UIMessage], message_id: str) -> list[UIMessage] | None:
    """Messages before `message_id`, or None when it is not there."""
    for index, message in enumerate(messages):
        if message.id == message_id:
            return messages[:index]
    return None


def plan_turn(request: ChatRequest, stored: list[UIMessage]) -> Turn:
    """Resolve the request against the stored history, the way the client truncates its own
    copy: the stock client sends the whole (already truncated) `messages`; a client sending
    only `message` relies on the server to do the same with what it stored."""
    if request.messages is not None:
        history = list(request.messages)
    else:
        assert request.message is not None
        newest = request.message
        before = _truncate_at(stored, newest.id)
        history = [*(stored if before is None else before), newest]

    if request.trigger == "regenerate-message":
        # Regenerating an assistant message: drop it (and anything after it).
        if request.message_id is not None:
            before = _truncate_at(history, request.message_id)
            if before is not None:
                history = before
        while history and history[-1].role == "assistant":
            history.pop()

    if not history:
        raise RequestError("the conversation is empty: send at least one user message")
    last = history[-1]
    if last.role == "system":
        raise RequestError(
            "the last message must be a user message (or the assistant "
            "message being continued), not a system message"
        )
    if last.role == "assistant":
        return Turn(history=history, base=history[:-1], continued=last, message_id=last.id)
    return Turn(history=history, base=history, continued=None, message_id=new_message_id())
