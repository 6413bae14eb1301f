"""The server-sent event decoder every provider stream is read with.

Bytes in, `(event, data)` out. It is written for speed on the providers' own streams
(one `data:` line per event, most events a few dozen bytes) and keeps `data` as bytes, so
it goes to `orjson.loads` without a decode. The event-stream rules a provider stream can
exercise are kept: chunks split anywhere (inside a line, a UTF-8 sequence or a CRLF),
LF, CRLF or CR line ends, multi-line `data`, comments (`: ping`), and an event still open
when the body ends is never returned. `id` and `retry` are ignored: no provider resumes
through them.

The work is linear in the bytes read: each chunk is scanned once, a line split over
several reads is kept as a list of pieces and joined once when it ends, and the `data`
lines of an event are joined once when it ends. An event larger than `max_event_bytes`
(its lines so far, the unfinished one included) raises `EventTooLarge` as soon as it is
seen, so a stream that never ends its event cannot grow memory without bound.
"""

from __future__ import annotations

SSEEvent = tuple[str | None, bytes]
"""(the `event:` field or None, the `data:` lines joined by LF)."""

_BOM = b"\xef\xbb\xbf"
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class EventTooLarge(ValueError):
    """An event grew past the decoder's `max_event_bytes`."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an event is larger than {limit} bytes")
        self.limit = limit


class SSEDecoder:
    __slots__ = (
        "_at_start",
        "_cr_pending",
        "_data",
        "_event",
        "_limit",
        "_partial",
        "_partial_size",
        "_size",
        "scanned",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._limit = max_event_bytes
        self._partial: list[bytes] = []  # the pieces of the line not ended yet
        self._partial_size = 0
        self._size = 0  # bytes of the current event's ended lines
        self._data: list[bytes] = []
        self._event: str | None = None
        self._cr_pending = False  # the last chunk ended with CR: maybe half of a CRLF
        self._at_start = True
        self.scanned = 0
        """Bytes looked at for line ends, in total: what shows the work is linear."""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events that the bytes so far complete, in stream order."""
        if self._cr_pending:
            chunk = b"\r" + chunk
            self._cr_pending = False
        if b"\r" in chunk:
            if chunk[-1:] == b"\r":
                chunk = chunk[:-1]
                self._cr_pending = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._at_start:
            # Only the stream's first bytes are joined here (fewer than a BOM's three).
            chunk = b"".join(self._partial) + chunk
            self._partial.clear()
            self._partial_size = 0
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._partial.append(chunk)
                self._partial_size = len(chunk)
                return []
            self._at_start = False
            chunk = chunk.removeprefix(_BOM)
        self.scanned += len(chunk)
        end = chunk.rfind(b"\n")
        if end < 0:
            if chunk:
                self._partial.append(chunk)
                self._partial_size += len(chunk)
                if self._size + self._partial_size > self._limit:
                    raise EventTooLarge(self._limit)
            return []
        lines = chunk[:end].split(b"\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
            self._partial.clear()
            self._partial_size = 0
        tail = chunk[end + 1 :]
        events: list[SSEEvent] = []
        limit = self._limit
        for line in lines:
            if not line:
                if self._data:
                    data = self._data
                    events.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    self._data = []
                self._event = None
                self._size = 0
                continue
            self._size += len(line) + 1
            if self._size > limit:
                raise EventTooLarge(limit)
            if line[0] != 0x3A:  # a line starting with ":" is a comment
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    self._data.append(value)
                elif name == b"event":
                    self._event = value.decode("utf-8", errors="replace")
        if tail:
            self._partial.append(tail)
            self._partial_size = len(tail)
            if self._size + self._partial_size > limit:
                raise EventTooLarge(limit)
        return events

    def close(self) -> list[SSEEvent]:
        """The body ended: a CR held back as maybe half of a CRLF was a line end."""
        if not self._cr_pending:
            return []
        self._cr_pending = False
        return self.feed(b"\n")
