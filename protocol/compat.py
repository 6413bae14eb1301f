"""What a client of an older `ai` major version may receive, chunk by chunk (pure, no I/O).

The log holds the chunks the bridge writes (the v7 protocol, see protocol/chunks.py). A
client's schema is a union of loose objects: an unknown chunk *type* fails it and ends the
client's stream with an error, an unknown *key* on a known type passes and is ignored. So
only types (and enum values) need translating; extra keys are left alone, which keeps the
common chunks byte-identical and free.

What each level lacks (read from the `uiMessageChunkSchema` of ai 5.0.277, 6.0.333, 7.0.173):

* ai 6: `reset-step`, `tool-approval-response`, `reasoning-file`, `custom`,
  `steering-message`; the finish reason `interrupted`.
* ai 5: all of that, and `tool-approval-request`, `tool-output-denied` (no approvals at all).

How each is degraded, keeping the meaning:

* `reset-step` (a failed attempt of a step is retried; v7 clients drop its parts): the
  per-reader `ChunkAdapter` holds a step's chunks back until the step ends, and forgets the
  failed attempt's when the reset comes, so the client only ever sees the attempt that
  counted. The cost is latency: with holding on, text arrives a step at a time instead of
  token by token. It is only worth paying when steps can be retried (`hold_steps`); without
  it, the open text / reasoning / tool-input parts of the failed attempt are closed and the
  retry starts fresh parts: nothing breaks, but the failed attempt's partial text stays on
  screen above the retry's.
* `finishReason: "interrupted"` becomes `"other"`.
* `tool-approval-response`, and an automatic `tool-approval-request` (`isAutomatic`, the
  server decided): dropped; the tool part goes straight to its output (or denial).
* `reasoning-file`, `custom`, `steering-message`: dropped (no part to show them in; the
  stored message keeps them).
* ai 5 only: `tool-output-denied` becomes `tool-output-error` ("denied"); a
  `tool-approval-request` a user would have to answer becomes `tool-output-error` saying the
  client cannot approve. Apps whose tools need approval are refused at configuration time
  (`check_tool_approvals`), so this is only a safety net for logs written before.

Level 7 is the identity: `adapter_for` returns None, and callers skip adapting altogether.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final

import orjson

from protocol.chunks import CHUNK_TYPES

__all__ = [
    "CLIENT_LEVELS",
    "LATEST_LEVEL",
    "ChunkAdapter",
    "ClientLevel",
    "ClientLevelError",
    "adapt_chunk",
    "adapter_for",
    "check_tool_approvals",
    "known_chunk_types",
    "parse_client_level",
    "supports_approvals",
]


class ClientLevel(IntEnum):
    """The major version of the `ai` package a client runs (`@ai-sdk/react` is that - 3)."""

    AI5 = 5
    AI6 = 6
    AI7 = 7


LATEST_LEVEL: Final = ClientLevel.AI7
CLIENT_LEVELS: Final = tuple(ClientLevel)


class ClientLevelError(ValueError):
    """A client level that is not one of 5, 6, 7, or a level the app's features exclude."""


def parse_client_level(value: str) -> ClientLevel:
    """`"5"`, `"6"` or `"7"` (surrounding blanks ignored). Raises ClientLevelError."""
    text = value.strip()
    if text in {"5", "6", "7"}:
        return ClientLevel(int(text))
    shown = text[:20] + ("..." if len(text) > 20 else "")
    raise ClientLevelError(
        f"client level must be 5, 6 or 7 (the major version of the client's `ai` package), "
        f"got {shown!r}"
    )


_NEW_IN_7: Final = frozenset(
    {"reset-step", "tool-approval-response", "reasoning-file", "custom", "steering-message"}
)
_NEW_IN_6: Final = frozenset({"tool-approval-request", "tool-output-denied"})

_KNOWN: Final[dict[ClientLevel, frozenset[str]]] = {
    ClientLevel.AI7: CHUNK_TYPES,
    ClientLevel.AI6: CHUNK_TYPES - _NEW_IN_7,
    ClientLevel.AI5: CHUNK_TYPES - _NEW_IN_7 - _NEW_IN_6,
}


def known_chunk_types(level: ClientLevel) -> frozenset[str]:
    """The fixed chunk types the level's schema accepts (`data-*` chunks pass at every level)."""
    return _KNOWN[level]


def supports_approvals(level: ClientLevel) -> bool:
    return level >= ClientLevel.AI6


def check_tool_approvals(level: ClientLevel, approval_tools: list[str]) -> None:
    """Refuses a level whose clients cannot answer the approvals these tools ask for.

    Call it at startup with the configured level, and for a per-request level.
    """
    if approval_tools and not supports_approvals(level):
        names = ", ".join(sorted(approval_tools))
        raise ClientLevelError(
            f"client level {int(level)} cannot answer tool approvals (ai 5 has none), but "
            f"these tools need them: {names}. Use client level 6 or 7, or drop needs_approval."
        )


# --- one chunk -------------------------------------------------------------------------------

_TYPE_PREFIX: Final = b'{"type":"'
# Known at every level, but some of their values are not.
_INSPECTED: Final = frozenset({"finish", "tool-approval-request"})
_DENIED_TEXT: Final = "The tool call was denied."
_CANNOT_APPROVE_TEXT: Final = (
    "This tool call needs an approval, which this client (ai 5) cannot give; it was not run."
)


def _kind_of(data: bytes) -> str | None:
    """The chunk's type. encode_chunk writes `type` first, so most chunks need no parsing."""
    if data.startswith(_TYPE_PREFIX):
        end = data.find(b'"', len(_TYPE_PREFIX))
        if end != -1 and data[end - 1] != 0x5C:  # not an escaped quote
            return data[len(_TYPE_PREFIX) : end].decode("utf-8", "replace")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


def _load(data: bytes) -> dict[str, Any]:
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise ValueError("a chunk is a JSON object")
    return value


def _tool_output_error(tool_call_id: Any, text: str) -> bytes:
    chunk = {"type": "tool-output-error", "toolCallId": tool_call_id, "errorText": text}
    return orjson.dumps(chunk)


def _adapt(level: ClientLevel, kind: str | None, data: bytes) -> bytes | None:
    if kind is None or (kind in _KNOWN[level] and kind not in _INSPECTED):
        return data  # data-* chunks, common chunks, and what the client will reject anyway
    if kind == "finish":
        if b'"interrupted"' not in data:
            return data
        chunk = _load(data)
        if chunk.get("finishReason") != "interrupted":
            return data
        return orjson.dumps({**chunk, "finishReason": "other"})
    if kind == "tool-approval-request":
        chunk = _load(data)
        if chunk.get("isAutomatic") is True:
            return None  # the server decided; the tool's output (or denial) follows
        if supports_approvals(level):
            return data
        return _tool_output_error(chunk.get("toolCallId"), _CANNOT_APPROVE_TEXT)
    if kind == "tool-output-denied":  # ai 5
        return _tool_output_error(_load(data).get("toolCallId"), _DENIED_TEXT)
    if kind in _NEW_IN_7 or kind in _NEW_IN_6:
        return None
    return data  # a type no level knows: not ours to judge


def adapt_chunk(level: ClientLevel, data: bytes) -> bytes | None:
    """One encoded chunk as a client of `level` may receive it, without per-stream state.

    Returns `data` itself when unchanged, new bytes when rewritten, None when dropped. A
    `reset-step` is dropped here; readers use a `ChunkAdapter`, which also keeps its meaning.
    """
    if level is LATEST_LEVEL:
        return data
    return _adapt(level, _kind_of(data), data)


# --- a stream --------------------------------------------------------------------------------

Entry = tuple[int, bytes]
"""(offset in the log, chunk bytes): what readers send, the offset being the SSE id."""

_STEP_ENDS: Final = frozenset({"finish-step", "finish", "error", "abort"})
_OPENERS: Final = {"text-start": "text", "reasoning-start": "reasoning"}
_CLOSERS: Final = {"text-end": "text", "reasoning-end": "reasoning"}


class ChunkAdapter:
    """The chunks of one reader (one response) for a client below level 7.

    Feed every log entry in order to `feed`; send what it returns. When the log has ended,
    send what `close` returns (a step the log left unfinished). With `hold_steps`, a step's
    chunks are sent when it ends (see the module doc for why and what it costs).
    """

    def __init__(self, level: ClientLevel, *, hold_steps: bool) -> None:
        if level is LATEST_LEVEL:
            raise ValueError("level 7 needs no adapter (see adapter_for)")
        self.level = level
        self.hold_steps = hold_steps
        self._held: list[Entry] | None = None
        # What the client has open (sent, not yet ended): part id -> "text" | "reasoning",
        # tool call id -> tool name. Needed to close them on a reset the adapter cannot undo.
        self._open_parts: dict[str, str] = {}
        self._open_tools: dict[str, str] = {}

    def feed(self, offset: int, data: bytes) -> list[Entry]:
        kind = _kind_of(data)
        held = self._held
        if kind == "start-step" and self.hold_steps:
            out = self._release() if held is not None else []
            self._held = [(offset, data)]
            return out
        if kind == "reset-step":
            if held is not None:
                del held[1:]  # keep the step's start: the retry belongs to the same step
                return []
            return self._close_open(offset)
        adapted = _adapt(self.level, kind, data)
        if held is not None:
            if adapted is not None:
                held.append((offset, adapted))
            return self._release() if kind in _STEP_ENDS else []
        if adapted is None:
            return []
        self._track(adapted)
        return [(offset, adapted)]

    def close(self) -> list[Entry]:
        """What is still held when the log ends (normally nothing: steps end in the log)."""
        return self._release() if self._held is not None else []

    def _release(self) -> list[Entry]:
        held = self._held or []
        self._held = None
        for _, data in held:
            self._track(data)
        return held

    def _track(self, data: bytes) -> None:
        kind = _kind_of(data)
        if kind in _OPENERS:
            self._open_parts[str(_load(data).get("id"))] = _OPENERS[kind]
        elif kind in _CLOSERS:
            self._open_parts.pop(str(_load(data).get("id")), None)
        elif kind == "tool-input-start":
            chunk = _load(data)
            self._open_tools[str(chunk.get("toolCallId"))] = str(chunk.get("toolName"))
        elif kind in {"tool-input-available", "tool-input-error"}:
            self._open_tools.pop(str(_load(data).get("toolCallId")), None)

    def _close_open(self, offset: int) -> list[Entry]:
        """A reset of a step whose chunks were already sent: end what the attempt opened, so
        the retry's parts start clean (the attempt's partial content stays visible)."""
        out: list[Entry] = []
        for part_id, part in self._open_parts.items():
            out.append((offset, orjson.dumps({"type": f"{part}-end", "id": part_id})))
        for call_id, name in self._open_tools.items():
            chunk = {
                "type": "tool-input-error",
                "toolCallId": call_id,
                "toolName": name,
                "input": None,
                "errorText": "The step was retried.",
            }
            out.append((offset, orjson.dumps(chunk)))
        self._open_parts.clear()
        self._open_tools.clear()
        return out


def adapter_for(level: ClientLevel, *, step_retries: bool) -> ChunkAdapter | None:
    """The adapter a reader for `level` needs, or None (level 7: send the log as it is).

    `step_retries`: whether the bridge may retry a step (`BRIDGE_STEP_RETRIES` > 0), which
    is when holding steps back is worth its latency.
    """
    if level is LATEST_LEVEL:
        return None
    return ChunkAdapter(level, hold_steps=step_retries)
