"""Server-Sent Events framing of the UI message stream, and a small incremental parser.

One chunk per event: `id: <offset>\\ndata: <json>\\n\\n`. The AI SDK client only reads the
`data` field (the `id` is for our own resume bookkeeping and for other SSE clients), ignores
comments and `[DONE]`, and silently drops an event that is not followed by a blank line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DONE_EVENT",
    "UI_MESSAGE_STREAM_HEADERS",
    "SSEEvent",
    "SSEParser",
    "comment",
    "encode_event",
]

UI_MESSAGE_STREAM_HEADERS: dict[str, str] = {
    "content-type": "text/event-stream",
    # `no-transform` keeps compressing proxies (Next.js rewrites behind `next start`) from
    # buffering the stream until it ends.
    "cache-control": "no-cache, no-transform",
    "connection": "keep-alive",
    "x-vercel-ai-ui-message-stream": "v1",
    # Disables nginx response buffering.
    "x-accel-buffering": "no",
}

DONE_EVENT = b"data: [DONE]\n\n"

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def encode_event(data: bytes, event_id: str | int | None = None) -> bytes:
    """One SSE event carrying `data`.

    Compact JSON never contains a raw line break, so the common case is a single `data:`
    line. Should `data` contain one anyway, each line becomes its own `data:` line: SSE
    parsers join them with `\\n`, so an event can never be split (CR and CRLF come back as LF,
    which JSON treats as whitespace and never allows raw inside a string).
    """
    if b"\n" in data or b"\r" in data:
        body = b"".join(b"data: " + line + b"\n" for line in _LINE_BREAK.split(data))
    else:
        body = b"data: " + data + b"\n"
    if event_id is None:
        return body + b"\n"
    if isinstance(event_id, int):
        head = b"id: %d\n" % event_id
    else:
        if "\n" in event_id or "\r" in event_id or "\0" in event_id:
            # A line break would end the field early; SSE ignores ids containing NUL.
            raise ValueError(f"an SSE event id cannot contain CR, LF or NUL: {event_id!r}")
        head = b"id: " + event_id.encode() + b"\n"
    return head + body + b"\n"


def comment(text: str = "") -> bytes:
    """An SSE comment (heartbeat); every line of `text` is its own comment line."""
    lines = _LINE_BREAK.split(text.encode())
    return b"".join(b": " + line + b"\n" for line in lines) + b"\n"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """A dispatched event (`data` set) or a comment line (`data` None, `comment` set).

    `id` is the stream's last event id when the event was dispatched (SSE keeps it across
    events until another `id:` field changes it).
    """

    data: str | None
    id: str | None = None
    event: str | None = None
    comment: str | None = None


class SSEParser:
    """Incremental SSE parser (the WHATWG event-stream rules).

    `feed()` takes bytes as they arrive, split anywhere (even inside a UTF-8 sequence or
    between CR and LF) and returns what became complete. Lines end with LF, CR or CRLF; a
    blank line dispatches the event; an event still open at the end of the stream is never
    returned (the AI SDK client drops it too). Comments are returned in stream order as
    `SSEEvent(data=None, comment=...)`.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._skip_lf = False  # the previous feed ended with CR: a leading LF belongs to it
        self._at_start = True  # a UTF-8 BOM is allowed once, at the very start
        self._data: list[str] = []
        self._has_data = False
        self._event: str | None = None
        self._last_id: str | None = None

    @property
    def last_event_id(self) -> str | None:
        return self._last_id

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        if not chunk:
            return []
        self._skip_lf = False
        buffer = self._buffer + chunk
        if self._at_start:
            if len(buffer) < 3 and b"\xef\xbb\xbf".startswith(buffer):
                self._buffer = buffer
                return []
            self._at_start = False
            buffer = buffer.removeprefix(b"\xef\xbb\xbf")
        events: list[SSEEvent] = []
        start = 0
        for match in _LINE_BREAK.finditer(buffer):
            end = match.end()
            if match.group() == b"\r" and end == len(buffer):
                # A CR at the end may be the first half of a CRLF split across feeds.
                self._skip_lf = True
            self._line(buffer[start : match.start()], events)
            start = end
        self._buffer = buffer[start:]
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        line = raw.decode("utf-8", errors="replace")
        if not line:
            self._dispatch(events)
            return
        if line[0] == ":":
            text = line[1:]
            events.append(SSEEvent(data=None, comment=text[1:] if text[:1] == " " else text))
            return
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "event":
            self._event = value
        # `retry` and unknown fields are ignored, as by the AI SDK client.

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._has_data:
            events.append(SSEEvent(data="\n".join(self._data), id=self._last_id, event=self._event))
        self._data = []
        self._has_data = False
        self._event = None
