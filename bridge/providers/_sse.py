"""The server-sent event decoder every provider stream is read with.

Bytes in, `(event, data)` out. It is written for speed on the providers' own streams
(one `data:` line per event, most events a few dozen bytes) and keeps `data` as bytes, so
it goes to `orjson.loads` without a decode. The event-stream rules a provider stream can
exercise are kept: chunks split anywhere (inside a line, a UTF-8 sequence or a CRLF),
LF, CRLF or CR line ends, multi-line `data`, comments (`: ping`), and an event still open
when the body ends is never returned. `id` and `retry` are ignored: no provider resumes
through them.
"""

from __future__ import annotations

SSEEvent = tuple[str | None, bytes]
"""(the `event:` field or None, the `data:` lines joined by LF)."""

_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    __slots__ = ("_at_start", "_buffer", "_cr_pending", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: bytes | None = None
        self._event: str | None = None
        self._cr_pending = False  # the last chunk ended with CR: maybe half of a CRLF
        self._at_start = True

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
        buffer = self._buffer + chunk if self._buffer else chunk
        if self._at_start:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._buffer = buffer
                return []
            self._at_start = False
            buffer = buffer.removeprefix(_BOM)
        end = buffer.rfind(b"\n")
        if end < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[end + 1 :]
        events: list[SSEEvent] = []
        for line in buffer[:end].split(b"\n"):
            if not line:
                if self._data is not None:
                    events.append((self._event, self._data))
                    self._data = None
                self._event = None
            elif line[0] != 0x3A:  # a line starting with ":" is a comment
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    self._data = value if self._data is None else self._data + b"\n" + value
                elif name == b"event":
                    self._event = value.decode("utf-8", errors="replace")
        return events

    def close(self) -> list[SSEEvent]:
        """The body ended: a CR held back as maybe half of a CRLF was a line end."""
        if not self._cr_pending:
            return []
        self._cr_pending = False
        return self.feed(b"\n")
