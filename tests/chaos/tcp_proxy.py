"""A plain TCP proxy on loopback (its own thread and event loop) that can reset every
connection through it at once: a network blip between a bridge and Redis.

tests/fault_proxy.py speaks HTTP (it parses request heads); Redis speaks RESP, so this one
only copies bytes. `cut_all()` aborts both sides of every open connection (an RST, as a
dropped NAT entry or a restarted load balancer gives); new connections go through as
before, so a client that reconnects carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        """Connections accepted so far."""
        self.cuts = 0
        """Connections reset by `cut_all`."""
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> TcpProxy:
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TCP proxy did not start")
        return self

    def cut_all(self) -> int:
        """Reset every open connection; returns how many were cut."""
        loop = self._loop
        assert loop is not None
        done: Future[int] = asyncio.run_coroutine_threadsafe(self._cut_all(), loop)
        return done.result(10)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    async def _cut_all(self) -> int:
        pairs = list(self._open)
        self._open.clear()
        for client, upstream in pairs:
            client.transport.abort()
            upstream.transport.abort()
        self.cuts += len(pairs)
        return len(pairs)

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
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

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
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_pipe(client_reader, upstream_writer))
                group.create_task(_pipe(upstream_reader, client_writer))
        except* (ConnectionError, OSError):
            pass  # a cut, or one side went away: both sides are closed below
        finally:
            self._open.discard(pair)
            for writer in pair:
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then close the other side (half-close is not needed:
    RESP clients never half-close)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()
