"""A request's line and headers must arrive within `BRIDGE_HEADER_TIMEOUT_SECONDS`.

uvicorn bounds the idle time between two requests of a keep-alive connection, but not the
time a client takes to send a request's headers: a client that opens connections and sends
half a request line, or a header every few seconds (slowloris), holds each connection, and
its slot, for as long as it likes. `HeaderTimeoutProtocol` is uvicorn's httptools protocol
(the one `uvicorn[standard]` picks) with one timer: armed when a connection opens and when
the first bytes of a request arrive while no response is under way, cancelled as soon as
the request line and headers are complete. When it fires, a request begun gets
`408 Request Timeout` and the connection is closed; a connection that sent nothing is
closed. Everything after the headers is someone else's bound: the body
(`BRIDGE_BODY_TIMEOUT_SECONDS`), an idle keep-alive connection (uvicorn's keep-alive
timeout), a WebSocket (its own protocol once upgraded) and a response being streamed.

`python -m bridge` serves with it; an embedding app's server has its own settings.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge.settings import Settings

_logger = logging.getLogger("bridge.access")

_TIMED_OUT_BODY = (
    b'{"error":{"code":"header_timeout","message":"the request headers did not arrive in time"}}'
)
_TIMED_OUT = b"".join(
    [
        b"HTTP/1.1 408 Request Timeout\r\n",
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(_TIMED_OUT_BODY),
        b"connection: close\r\n\r\n",
        _TIMED_OUT_BODY,
    ]
)


@functools.cache
def header_timeout_seconds() -> float:
    """The bound, read once per process from the same settings the app reads (a worker
    process starts from the environment and `.env` of `python -m bridge`)."""
    return Settings().bridge_header_timeout_seconds


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers."""

    _header_timer: asyncio.TimerHandle | None = None
    _awaiting_headers = True
    """From the connection's start, and from a new request's first byte, until its
    headers are complete."""
    _request_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and not self._response_under_way():
            # A byte between two requests starts the next one (even a bare CRLF, which the
            # parser skips without beginning a message: it would cancel the keep-alive
            # timer and leave the connection unbounded).
            self._awaiting_headers = True
        super().data_received(data)
        self._watch_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._request_begun = True

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._request_begun = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    # --- the timer ---------------------------------------------------------------------

    def _response_under_way(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _watch_headers(self) -> None:
        """Arm the timer while headers are awaited and no response is being sent (a
        pipelined request's headers wait for the response before them; a response is
        never cut by the next request's deadline)."""
        if self.transport is None or self.transport.is_closing():
            return
        waiting = self._awaiting_headers and not self._response_under_way()
        if waiting and self._header_timer is None:
            self._header_timer = self.loop.call_later(
                header_timeout_seconds(), self._headers_timed_out
            )
        elif not waiting:
            self._cancel_header_timer()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._request_begun:
            _logger.info("request headers not received within %gs: 408", header_timeout_seconds())
            self.transport.write(_TIMED_OUT)
        self.transport.close()
