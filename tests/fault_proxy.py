"""A misbehaving HTTP proxy for tests, on loopback, in its own thread and event loop.

It carries one request per connection (it adds `Connection: close` upstream), and strips
`Sec-WebSocket-Extensions` from upgrades so no compression hides the frames. It can:

* `refuse_websocket`: strip `Upgrade`/`Connection: upgrade`, as proxies that do not speak
  WebSocket do: the server answers plain HTTP and the upgrade fails;
* `buffer_responses`: hold every HTTP response until it has ended, then send it at once
  (what some corporate proxies and compressing gateways do to streams);
* `arm_cut(after=N | b"pattern", when=...)`: cut the next matching connection once N bytes
  (or the bytes up to the end of the pattern) went from the server to the client.

It records every request line (`requests`), the JSON text frames clients send on upgraded
connections (`ws_frames`, unmasked), and the request line of each cut connection (`cuts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

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
        self.port = 0
        self._cut: _Cut | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

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
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

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
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

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
