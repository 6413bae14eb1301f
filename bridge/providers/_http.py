"""A lean HTTP/1.1 transport for the provider SDKs' `httpx2` clients.

At paced rates every network read of a streamed answer carries one small event, so the
fixed cost of a read decides the CPU: through the SDKs' default stack (httpcore2, h11,
anyio) a read is a cancel scope, a pure-Python chunked parser and several layers of
generators. Here a read costs: `data_received` -> the C parser (httptools) -> `on_body`
-> wake the one waiting reader, and a timer is armed only when the reader has to wait.

Scope: GET and POST over http/https with a body known up front (the SDKs' requests).
Everything else (other methods, upgrades) goes to a wrapped `httpx2.AsyncHTTPTransport`.
Failures are raised as httpx2's own exceptions, so the SDKs' retries and
`_transport.is_transport_failure` treat them as they treat the default stack's.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

import httptools
import httpx2

_HANDLED_METHODS = frozenset({"GET", "POST"})
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
# Past this much unread body the socket stops being read, so a slow consumer holds the
# server back (TCP flow control) instead of growing the buffer.
_PAUSE_READING_AT = 64 * 1024
_FRAMING_HEADERS = frozenset({b"content-length", b"transfer-encoding"})

Origin = tuple[bytes, bytes, int]


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the socket's protocol and the parser of the response in
    flight. The response body is buffered here and handed to the one reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> None:
        self.loop = loop
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.expiry: asyncio.TimerHandle | None = None
        self._writable: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reading_paused = False
        self._waiter: asyncio.Future[bool] | None = None
        self.begin(None)

    def begin(self, request: httpx2.Request | None) -> None:
        """Reset the per-response state for `request` (None: the connection is idle)."""
        self.request = request
        self._parser = httptools.HttpResponseParser(self) if request is not None else None
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received_any = False
        self._informational = False
        self._close_delimited = False
        self._error: tuple[type[httpx2.TransportError], str] | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, hence no check).
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        parser = self._parser
        if parser is None or self.complete:
            # Bytes nobody asked for: whatever they are, the connection cannot be reused.
            self.keep_alive = False
            self.close()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx2.RemoteProtocolError, "unexpected protocol upgrade")
        except httptools.HttpParserError as exc:
            self._fail(httpx2.RemoteProtocolError, f"malformed HTTP response: {exc}")
        if self._buffered > _PAUSE_READING_AT and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return False  # close the socket: connection_lost decides what the EOF means

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self.complete and self._error is None:
            if self.headers_done and self._close_delimited:
                self.complete = True  # a body without length ends with the connection
            elif exc is not None:
                self._error = (httpx2.ReadError, f"connection lost: {exc!r}")
            else:
                self._error = (
                    httpx2.RemoteProtocolError,
                    "the server closed the connection before the response was complete",
                )
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        if self.complete:  # a second response in the same bytes: not reusable
            self.keep_alive = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational (103 Early Hints…): the answer follows
            self._informational = True
            self.headers = []
            self.reason = b""
            return
        self.status = status
        self.headers_done = True
        self._close_delimited = status not in (204, 304) and not any(
            name.lower() == b"content-length"
            or (name.lower() == b"transfer-encoding" and b"chunked" in value.lower())
            for name, value in self.headers
        )
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        assert self._parser is not None
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # ------------------------------------------------------------------ the request side

    def _fail(self, kind: type[httpx2.TransportError], message: str) -> None:
        if self._error is None:
            self._error = (kind, message)
        self.close()
        self._wake()

    def _raise(self) -> None:
        if self._error is not None:
            kind, message = self._error
            raise kind(message, request=self.request)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)

    @staticmethod
    def _time_out(waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            waiter.set_result(False)

    async def _wait(self, seconds: float | None) -> None:
        """Wait for the parser to make progress: one future, and one timer only now."""
        waiter = self.loop.create_future()
        self._waiter = waiter
        timer = None if seconds is None else self.loop.call_later(seconds, self._time_out, waiter)
        try:
            progressed = await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if not progressed:
            self.close()
            raise httpx2.ReadTimeout("timed out waiting for the response", request=self.request)

    async def send(self, request: httpx2.Request, data: bytes, seconds: float | None) -> None:
        self.begin(request)
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise httpx2.WriteError("the connection is closed", request=request)
        transport.write(data)
        if self._write_paused:
            self._writable = self.loop.create_future()
            try:
                async with asyncio.timeout(seconds):
                    await self._writable
            except TimeoutError:
                self.close()
                raise httpx2.WriteTimeout(
                    "timed out sending the request", request=request
                ) from None
            finally:
                self._writable = None
            if self.closed and not self.received_any:
                raise httpx2.WriteError("the connection closed while sending", request=request)

    async def read_head(self, seconds: float | None) -> None:
        while not self.headers_done:
            self._raise()
            await self._wait(seconds)

    async def read_body(self, seconds: float | None) -> bytes | None:
        """The body bytes received since the last call (None at the end), waiting for some
        only when none are buffered."""
        while True:
            if self._chunks:
                chunks = self._chunks
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                if self._reading_paused and self.transport is not None and not self.closed:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return data
            if self.complete:
                return None
            self._raise()
            await self._wait(seconds)

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self._error is None

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.closed = True
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None


class _ResponseStream(httpx2.AsyncByteStream):
    """The body of one response; the connection goes back to the pool only when the body
    was read to its end."""

    def __init__(self, pool: LeanTransport, connection: _Connection, timeout: float | None):
        self._pool = pool
        self._connection = connection
        self._timeout = timeout
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = self._connection.read_body
        timeout = self._timeout
        try:
            while (data := await read(timeout)) is not None:
                yield data
        except BaseException:
            # A failure, a cancellation or a reader leaving early (GeneratorExit): the
            # rest of the body is unread, so the connection cannot serve another request.
            self._connection.close()
            raise
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._pool.release(self._connection)


class LeanTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 on asyncio with a keep-alive pool keyed by (scheme, host, port)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = 5.0,
        max_idle_per_origin: int = 100,
        fallback: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._max_idle = max_idle_per_origin
        self._fallback = fallback
        self._idle: dict[Origin, list[_Connection]] = {}
        self._active: set[_Connection] = set()

    # ------------------------------------------------------------------ httpx2 API

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if (
            request.method not in _HANDLED_METHODS
            or url.raw_scheme not in _DEFAULT_PORTS
            or "upgrade" in request.headers
        ):
            return await self._fallback_transport().handle_async_request(request)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = await request.aread()
        data = _request_bytes(request, body)
        origin = (url.raw_scheme, url.raw_host, url.port or _DEFAULT_PORTS[url.raw_scheme])
        read_timeout = timeouts.get("read")
        connection = self._take_idle(origin)
        if connection is None:
            connection = await self._connect(origin, request, timeouts.get("connect"))
        self._active.add(connection)
        try:
            try:
                await connection.send(request, data, timeouts.get("write"))
                await connection.read_head(read_timeout)
            except (httpx2.NetworkError, httpx2.RemoteProtocolError):
                # (A timeout is not retried: the server may be slow rather than gone.)
                if not (connection.reused and not connection.received_any):
                    raise
                # A kept-alive connection the server had closed: retried once, fresh.
                self._discard(connection)
                connection = await self._connect(origin, request, timeouts.get("connect"))
                self._active.add(connection)
                await connection.send(request, data, timeouts.get("write"))
                await connection.read_head(read_timeout)
        except BaseException:
            self._discard(connection)
            raise
        return httpx2.Response(
            connection.status,
            headers=connection.headers,
            stream=_ResponseStream(self, connection, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason.strip()},
        )

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        for connection in self._active:
            connection.close()
        self._active.clear()
        if self._fallback is not None:
            await self._fallback.aclose()

    # ------------------------------------------------------------------ the pool

    def release(self, connection: _Connection) -> None:
        """A response is done with `connection`: back to the pool if it was read to the end
        and the server keeps it alive, else closed."""
        self._active.discard(connection)
        idle = self._idle.setdefault(connection.origin, [])
        if not connection.reusable or len(idle) >= self._max_idle:
            connection.close()
            return
        connection.begin(None)
        connection.expiry = connection.loop.call_later(
            self._keepalive_expiry, self._expire, connection
        )
        idle.append(connection)

    def _expire(self, connection: _Connection) -> None:
        connection.expiry = None
        self._remove_idle(connection)
        connection.close()

    def _remove_idle(self, connection: _Connection) -> None:
        idle = self._idle.get(connection.origin)
        if idle is not None and connection in idle:
            idle.remove(connection)

    def _discard(self, connection: _Connection) -> None:
        self._active.discard(connection)
        connection.close()

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        loop = asyncio.get_running_loop()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if connection.loop is not loop:  # pooled under an event loop since closed
                continue
            if connection.expiry is not None:
                connection.expiry.cancel()
                connection.expiry = None
            if (
                connection.closed
                or connection.transport is None
                or connection.transport.is_closing()
            ):
                connection.close()
                continue
            connection.reused = True
            return connection
        return None

    async def _connect(
        self, origin: Origin, request: httpx2.Request, seconds: float | None
    ) -> _Connection:
        scheme, raw_host, port = origin
        host = raw_host.decode("ascii")
        loop = asyncio.get_running_loop()
        context = self._tls_context() if scheme == b"https" else None
        try:
            async with asyncio.timeout(seconds):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, origin),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError:
            raise httpx2.ConnectTimeout(
                f"connecting to {host}:{port} timed out", request=request
            ) from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx2.ConnectError(str(exc) or repr(exc), request=request) from exc
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            # What httpx2 builds for verify=True (SSL_CERT_FILE / SSL_CERT_DIR honoured),
            # offering HTTP/1.1 only, as that is all this transport speaks.
            context = httpx2.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context

    def _fallback_transport(self) -> httpx2.AsyncBaseTransport:
        if self._fallback is None:
            self._fallback = httpx2.AsyncHTTPTransport()
        return self._fallback


def _request_bytes(request: httpx2.Request, body: bytes) -> bytes:
    """The request head and body. The body was read whole, so it is sent with a
    Content-Length whatever framing the request had declared."""
    framed = False
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if name.lower() in _FRAMING_HEADERS:
            framed = True
            continue
        parts += (name, b": ", value, b"\r\n")
    if body or framed:
        parts += (b"Content-Length: ", str(len(body)).encode("ascii"), b"\r\n")
    parts += (b"\r\n", body)
    return b"".join(parts)


def environment_proxy_mounts(
    **transport_options: Any,
) -> dict[str, httpx2.AsyncBaseTransport | None] | None:
    """httpx2 reads proxies from the environment only when no `transport=` is given, so a
    client built around `LeanTransport` mounts them itself: a proxy transport for each
    proxied pattern, None (the client's own transport) for each NO_PROXY one. None when
    this httpx2 no longer has the (private) reader: the caller then keeps the SDK's
    default stack rather than ignore a configured proxy."""
    try:
        from httpx2._utils import get_environment_proxies  # not re-exported by httpx2
    except ImportError:
        return None
    return {
        pattern: None
        if proxy is None
        else httpx2.AsyncHTTPTransport(proxy=proxy, **transport_options)
        for pattern, proxy in get_environment_proxies().items()
    }
