"""What a chat request means for the stored history, which is the only truth.

A request does exactly one of these, always against the history this server stored:

* **adds one new user message** (the newest message in the body, a user message whose id
  the server does not know) after the stored history;
* **edits** a stored user message (the newest message reuses a stored user message's id):
  the history is cut before it and the new text takes its place;
* **continues** the stored last assistant message (the newest message is that assistant
  message, carrying answers to its tool calls: see continuation.py);
* **regenerates** (`trigger: "regenerate-message"`) at a stored message id, or the last
  answer.

Every earlier message in the body (the stock client sends them all) is never sent to the
model nor stored: it is compared with the stored copy, ignored when it matches and refused
(409) when it conflicts. A new chat starts from nothing the client claims happened: earlier
messages in the first request are a conflict too. Client `system` messages are refused
unless BRIDGE_ALLOW_CLIENT_SYSTEM is on (then only as the start of a new chat).
"""

from __future__ import annotations

from typing import Any

from bridge.errors import ClientSystemMessage, HistoryConflict, RequestError
from bridge.generation.ids import new_message_id
from bridge.generation.plan import Continuation, Turn
from protocol.messages import (
    ChatRequest,
    DataUIPart,
    DynamicToolUIPart,
    FileUIPart,
    ReasoningUIPart,
    TextUIPart,
    ToolUIPart,
    UIMessage,
)

# Parts a user may write; tool, reasoning and step parts come only from the model.
_USER_PART_TYPES = (TextUIPart, FileUIPart, DataUIPart)


def _index_of(messages: list[UIMessage], message_id: str) -> int | None:
    for index, message in enumerate(messages):
        if message.id == message_id:
            return index
    return None


def _part_key(part: Any) -> tuple[Any, ...] | None:
    """What of a part matters for the conversation; None: presentation only.

    The client builds its copy from the same chunks as the server, but keeps fields of its
    own (streaming `state`, provider metadata, transient UI data, `preliminary`, message
    metadata): those never make a copy conflict."""
    if isinstance(part, TextUIPart):
        return ("text", part.text) if part.text else None
    if isinstance(part, ReasoningUIPart):
        return ("reasoning", part.text) if part.text else None
    if isinstance(part, ToolUIPart | DynamicToolUIPart):
        output = part.output if part.state == "output-available" else None
        return ("tool", part.tool_name, part.tool_call_id, part.input, output, part.error_text)
    if isinstance(part, FileUIPart):
        return ("file", part.media_type, part.url)
    return None


def canonical(message: UIMessage) -> tuple[Any, ...]:
    """A message reduced to what a conflict is about: id, role and content."""
    keys = (_part_key(part) for part in message.parts)
    return (message.id, message.role, tuple(key for key in keys if key is not None))


def _consistent(mine: tuple[Any, ...], stored: tuple[Any, ...]) -> bool:
    """A client's part may be an earlier view of the stored one: a text it stopped reading
    early (stop, a dropped connection), a tool call whose result it never received."""
    if mine == stored:
        return True
    if mine[0] != stored[0]:
        return False
    if mine[0] in ("text", "reasoning"):
        return bool(stored[1].startswith(mine[1]))
    if mine[0] == "tool":
        _, name, call_id, tool_input, output, error_text = mine
        if (name, call_id) != stored[1:3]:
            return False
        if output is None and error_text is None:
            return True  # its input may have been still streaming
        return (tool_input, output, error_text) == stored[3:]
    return False


def matches_stored(mine: UIMessage, stored: UIMessage) -> bool:
    """The client's copy says nothing the stored one does not: a user message is the same,
    an assistant message the same or an earlier view of it (fewer parts, shorter text)."""
    if mine.id != stored.id or mine.role != stored.role:
        return False
    my_keys, stored_keys = canonical(mine)[2], canonical(stored)[2]
    if mine.role != "assistant":
        return bool(my_keys == stored_keys)
    return len(my_keys) <= len(stored_keys) and all(
        _consistent(a, b) for a, b in zip(my_keys, stored_keys, strict=False)
    )


def check_earlier(sent: list[UIMessage], expected: list[UIMessage], chat_id: str) -> None:
    """The body's earlier messages must be the stored ones (all, or the most recent ones;
    an answer the client never received may be missing): they are ignored then. Anything
    else is a conflict the client resolves by reloading the chat."""
    if not sent:
        return
    if not expected:
        raise HistoryConflict(
            f"chat {chat_id} has no stored history: a new chat starts with the new message "
            f"alone, the {len(sent)} earlier message(s) in the body are unknown here"
        )
    reload = f"reload GET /api/chat/{chat_id}/messages"
    position = len(expected) - 1
    for mine in reversed(sent):
        # Stored answers the client never received (a dropped stream) are passed over.
        while position >= 0 and expected[position].id != mine.id:
            if expected[position].role != "assistant":
                break
            position -= 1
        if position < 0 or expected[position].id != mine.id:
            raise HistoryConflict(
                f"message {mine.id[:80]!r} ({mine.role}) is not where the stored history "
                f"has it, or not there at all; {reload}"
            )
        if not matches_stored(mine, expected[position]):
            raise HistoryConflict(
                f"message {mine.id[:80]!r} differs from the stored copy; earlier messages "
                "cannot be changed (edit a user message by sending it with its id)"
            )
        position -= 1


def _check_user_message(message: UIMessage) -> None:
    for part in message.parts:
        if not isinstance(part, _USER_PART_TYPES):
            kind = getattr(part, "type", "?")
            raise RequestError(
                f"a user message may carry text, file and data parts, not {str(kind)[:60]!r}"
            )


def _refuse_system(sent: list[UIMessage], allow: bool) -> None:
    if not allow and any(message.role == "system" for message in sent):
        raise ClientSystemMessage(
            "system messages come from the server's configuration, not from the client "
            "(BRIDGE_ALLOW_CLIENT_SYSTEM is off)"
        )


def plan_turn(
    request: ChatRequest, stored: list[UIMessage], *, allow_client_system: bool = False
) -> Turn | Continuation:
    """Resolve the request against the stored history: a Turn ready to run, or a
    Continuation whose answers continuation.py checks and applies."""
    sent = list(request.messages) if request.messages is not None else []
    if request.message is not None:
        sent.append(request.message)
    _refuse_system(sent, allow_client_system)
    if request.trigger == "regenerate-message":
        return _regenerate(request, sent, stored)
    newest, earlier = sent[-1], sent[:-1]
    if newest.role == "system":
        raise RequestError("the newest message must be a user message, not a system message")
    if newest.role == "assistant":
        return _continuation(request.id, newest, earlier, stored)
    _check_user_message(newest)
    index = _index_of(stored, newest.id)
    base = stored if index is None else stored[:index]
    if index is not None and stored[index].role != "user":
        raise HistoryConflict(
            f"message id {newest.id[:80]!r} belongs to a stored {stored[index].role} message"
        )
    if not base and allow_client_system:
        # A new chat may open with the client's system messages when the operator allows it.
        leading = 0
        while leading < len(earlier) and earlier[leading].role == "system":
            leading += 1
        base, earlier = earlier[:leading], earlier[leading:]
    check_earlier(earlier, base, request.id)
    history = [*base, newest]
    return Turn(history=history, base=history, continued=None, message_id=new_message_id())


def _continuation(
    chat_id: str, newest: UIMessage, earlier: list[UIMessage], stored: list[UIMessage]
) -> Continuation:
    last = stored[-1] if stored else None
    if last is None or last.role != "assistant" or last.id != newest.id:
        raise HistoryConflict(
            f"only the stored last assistant message can be continued, and "
            f"{newest.id[:80]!r} is not it; send a user message, or reload "
            f"GET /api/chat/{chat_id}/messages"
        )
    base = stored[:-1]
    check_earlier(earlier, base, chat_id)
    return Continuation(base=base, stored=last, sent=newest)


def _regenerate(request: ChatRequest, sent: list[UIMessage], stored: list[UIMessage]) -> Turn:
    base = list(stored)
    if request.message_id is not None:
        index = _index_of(stored, request.message_id)
        if index is None:
            raise HistoryConflict(
                f"message {request.message_id[:80]!r} is not in the stored history; "
                f"reload GET /api/chat/{request.id}/messages"
            )
        # An assistant message is regenerated from before it; a user message is answered anew.
        base = stored[:index] if stored[index].role == "assistant" else stored[: index + 1]
    while base and base[-1].role == "assistant":
        base.pop()
    if not base or base[-1].role != "user":
        raise RequestError("there is no stored user message to answer again")
    check_earlier(sent, base, request.id)
    return Turn(history=base, base=base, continued=None, message_id=new_message_id())
