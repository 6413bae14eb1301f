"""Fault-injecting proxies on loopback, each on its own thread and event loop
(`_ServerThread`), so a synchronous or asynchronous test can drive them:

* `FaultProxy` speaks HTTP (it parses request heads): it refuses WebSocket upgrades,
  buffers whole responses, or cuts a connection after N bytes or a byte pattern;
* `TcpProxy` only copies bytes (Redis speaks RESP): it resets every open connection at
  once, or lets one request through and drops its reply.

After a fault new connections go through as before (a client that reconnects carries on).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

_T = TypeVar("_T")
_Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


class _ServerThread:
    """A TCP server on a free loopback port, served by its own event loop thread."""

    def __init__(self, serve: _Serve, name: str) -> None:
        self._serve = serve
        self._name = name
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the {self._name} did not start")

    def call(self, coroutine: Coroutine[Any, Any, _T], seconds: float = 10) -> _T:
        """Run `coroutine` on the server's loop and return its result."""
        assert self._loop is not None
        done: Future[_T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return done.result(seconds)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            # Until every connection's task has finished cancelling (closing its sockets).
            # The gather is made inside the loop: this thread has no current event loop.
            loop.run_until_complete(_finished(tasks))
            loop.close()


async def _finished(tasks: set[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


# --- HTTP ------------------------------------------------------------------------------------
#
# It carries one request per connection (it adds `Connection: close` upstream), and strips
# `Sec-WebSocket-Extensions` from upgrades so no compression hides the frames. It can:
#
# * `refuse_websocket`: strip `Upgrade`/`Connection: upgrade`, as proxies that do not speak
#   WebSocket do: the server answers plain HTTP and the upgrade fails;
# * `buffer_responses`: hold every HTTP response until it has ended, then send it at once
#   (what some corporate proxies and compressing gateways do to streams);
# * `arm_cut(after=N | b"pattern", when=...)`: cut the next matching connection once N bytes
#   (or the bytes up to the end of the pattern) went from the server to the client.
#
# It records every request line (`requests`), the JSON text frames clients send on upgraded
# connections (`ws_frames`, unmasked), and the request line of each cut connection (`cuts`).

CutFilter = Callable[[str, bool], bool]
"""(request line, is a WebSocket upgrade) -> whether to cut this connection."""

_HOP_HEADERS = {b"connection", b"keep-alive", b"proxy-connection"}
_UPGRADE_HEADERS = {
    b"upgrade",
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"sec-websocket-extensions",
    b"sec-websocket-protocol",
}


@dataclass
class _Cut:
    after: int | bytes
    when: CutFilter
    times: int


class _FrameLog:
    """Parses client-to-server WebSocket frames (masked) and records JSON text frames."""

    def __init__(self, sink: list[dict[str, Any]]) -> None:
        self._buffer = bytearray()
        self._sink = sink

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            frame = self._take()
            if frame is None:
                return
            opcode, payload = frame
            if opcode == 1:
                with contextlib.suppress(orjson.JSONDecodeError):
                    self._sink.append(orjson.loads(payload))

    def _take(self) -> tuple[int, bytes] | None:
        data = self._buffer
        if len(data) < 2:
            return None
        opcode, length, at = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                return None
            (length,), at = struct.unpack(">H", data[2:4]), 4
        elif length == 127:
            if len(data) < 10:
                return None
            (length,), at = struct.unpack(">Q", data[2:10]), 10
        masked = data[1] & 0x80
        key = bytes(data[at : at + 4]) if masked else b"\0\0\0\0"
        at += 4 if masked else 0
        if len(data) < at + length:
            return None
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data[at : at + length]))
        del data[: at + length]
        return opcode, payload


class FaultProxy:
    """An HTTP proxy that misbehaves on demand (see above)."""

    def __init__(
        self,
        upstream_port: int,
        *,
        refuse_websocket: bool = False,
        buffer_responses: bool = False,
    ) -> None:
        self.upstream_port = upstream_port
        self.refuse_websocket = refuse_websocket
        self.buffer_responses = buffer_responses
        self.requests: list[str] = []
        self.ws_frames: list[dict[str, Any]] = []
        self.cuts: list[str] = []
        self._cut: _Cut | None = None
        self._lock = threading.Lock()
        self._server = _ServerThread(self._serve, "fault proxy")

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm_cut(self, after: int | bytes, when: CutFilter | None = None, times: int = 1) -> None:
        """Cut the next `times` connections matching `when` after `after` bytes (or after
        the first occurrence of the byte string `after`) from the server."""
        with self._lock:
            self._cut = _Cut(after, when or (lambda line, upgrade: True), times)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    # --- one connection ----------------------------------------------------------------------

    def _take_cut(self, line: str, upgrade: bool) -> int | bytes | None:
        with self._lock:
            cut = self._cut
            if cut is None or cut.times <= 0 or not cut.when(line, upgrade):
                return None
            cut.times -= 1
            return cut.after

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                head = await client_reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            lines = head[:-4].split(b"\r\n")
            line = lines[0].decode("latin-1")
            headers = [tuple(h.split(b":", 1)) for h in lines[1:] if b":" in h]
            upgrade = any(k.strip().lower() == b"upgrade" for k, _ in headers)
            self.requests.append(line)
            dropped = _HOP_HEADERS | {b"sec-websocket-extensions"}
            kept = [(k, v) for k, v in headers if k.strip().lower() not in dropped]
            if upgrade and self.refuse_websocket:
                kept = [(k, v) for k, v in kept if k.strip().lower() not in _UPGRADE_HEADERS]
                upgrade = False
            connection = b"Connection: Upgrade" if upgrade else b"Connection: close"
            new_head = b"\r\n".join([lines[0], *(k + b":" + v for k, v in kept), connection])
            cut = self._take_cut(line, upgrade)
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port
            )
            upstream_writer.write(new_head + b"\r\n\r\n")
            frames = _FrameLog(self.ws_frames) if upgrade else None
            up = asyncio.create_task(self._pipe(client_reader, upstream_writer, frames))
            down = asyncio.create_task(
                self._down(
                    upstream_reader,
                    client_writer,
                    cut,
                    buffer=self.buffer_responses and not upgrade,
                    on_cut=lambda: self.cuts.append(line),
                )
            )
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if not down.done():  # the client went away: so does the upstream connection
                down.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await down
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await up
        except (ConnectionError, OSError):
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: _FrameLog | None
    ) -> None:
        while data := await reader.read(65536):
            if frames is not None:
                frames.feed(data)
            writer.write(data)
            await writer.drain()

    @staticmethod
    async def _down(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cut: int | bytes | None,
        *,
        buffer: bool,
        on_cut: Callable[[], None],
    ) -> None:
        if buffer:  # the whole response, once it has ended
            held = bytearray()
            while data := await reader.read(65536):
                held += data
            if await _forward(writer, bytes(held), cut, 0, b""):
                on_cut()
            return
        sent, tail = 0, b""
        while data := await reader.read(65536):
            if await _forward(writer, data, cut, sent, tail):
                on_cut()
                return
            sent += len(data)
            if isinstance(cut, bytes):  # a pattern may straddle two reads
                tail = (tail + data)[-(len(cut) - 1) :] if len(cut) > 1 else b""


async def _forward(
    writer: asyncio.StreamWriter, data: bytes, cut: int | bytes | None, sent: int, tail: bytes
) -> bool:
    """Write `data`; with a cut due inside it, write up to the cut, reset the connection
    and return True."""
    stop: int | None = None
    if isinstance(cut, int) and sent + len(data) >= cut:
        stop = cut - sent
    elif isinstance(cut, bytes) and (at := (tail + data).find(cut)) != -1:
        stop = at + len(cut) - len(tail)
    writer.write(data if stop is None else data[:stop])
    await writer.drain()
    if stop is None:
        return False
    writer.transport.abort()  # a reset, not a clean end
    return True


# --- TCP -------------------------------------------------------------------------------------
#
# Redis speaks RESP, so this one only copies bytes. Two faults:
#
# * `cut_all()` aborts both sides of every open connection, wherever they are (a dropped
#   NAT entry, a restarted load balancer);
# * `lose_reply(pattern)` lets the next request containing `pattern` reach Redis, waits for
#   the first bytes of its reply, drops them and aborts the connection: the command was
#   applied, the client cannot know (the case a retry must not turn into a duplicate).


class TcpProxy:
    """A byte-copying proxy (for Redis) that can reset connections or lose a reply."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections = 0
        """Connections accepted so far."""
        self.cuts = 0
        """Connections reset by `cut_all`."""
        self.lost_replies = 0
        """Replies dropped by `lose_reply`."""
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._lose: bytes | None = None
        self._lost = threading.Event()
        self._server = _ServerThread(self._serve, "TCP proxy")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> TcpProxy:
        self._server.start()
        return self

    def cut_all(self) -> int:
        """Reset every open connection; returns how many were cut."""
        return self._server.call(self._cut_all())

    def lose_reply(self, pattern: bytes, seconds: float = 10.0) -> None:
        """Drop the reply to the next request containing `pattern` (see the module doc);
        returns once that happened, AssertionError after `seconds`."""
        self._lost.clear()
        self._lose = pattern
        if not self._lost.wait(seconds):
            self._lose = None
            raise AssertionError(f"no request with {pattern!r} went through in {seconds} s")

    def stop(self) -> None:
        self._server.stop()

    async def _cut_all(self) -> int:
        pairs = list(self._open)
        self._open.clear()
        for client, upstream in pairs:
            client.transport.abort()
            upstream.transport.abort()
        self.cuts += len(pairs)
        return len(pairs)

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port
            )
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, upstream_writer)
        self._open.add(pair)
        reply_due = asyncio.Event()  # a request whose reply is to be lost went upstream
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._requests(client_reader, upstream_writer, reply_due))
                group.create_task(self._replies(upstream_reader, client_writer, reply_due, pair))
        except* (ConnectionError, OSError):
            pass  # a cut, or one side went away: both sides are closed below
        finally:
            self._open.discard(pair)
            for writer in pair:
                writer.close()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply_due: asyncio.Event
    ) -> None:
        tail = b""
        try:
            while data := await reader.read(65536):
                pattern = self._lose
                hit = pattern is not None and pattern in tail + data
                if hit:
                    self._lose = None  # this connection's request takes the fault
                writer.write(data)
                await writer.drain()
                if hit:
                    reply_due.set()
                    return
                tail = data[-256:]
        finally:
            if not reply_due.is_set():
                with contextlib.suppress(ConnectionError, OSError):
                    writer.close()

    async def _replies(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reply_due: asyncio.Event,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await reader.read(65536):
                if reply_due.is_set():  # the reply (or its start): dropped, then the cut
                    self._open.discard(pair)
                    for side in pair:
                        side.transport.abort()
                    self.lost_replies += 1
                    self._lost.set()
                    return
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()
