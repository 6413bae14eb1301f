"""A plain TCP proxy on loopback (its own thread and event loop) that can reset every
connection through it at once: a network blip between a bridge and Redis.

tests/fault_proxy.py speaks HTTP (it parses request heads); Redis speaks RESP, so this one
only copies bytes. Two faults, after which new connections go through as before (a client
that reconnects carries on):

* `cut_all()` aborts both sides of every open connection, wherever they are (a dropped
  NAT entry, a restarted load balancer);
* `lose_reply(pattern)` lets the next request containing `pattern` reach Redis, waits for
  the first bytes of its reply, drops them and aborts the connection: the command was
  applied, the client cannot know (the case a retry must not turn into a duplicate).
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
        self.lost_replies = 0
        """Replies dropped by `lose_reply`."""
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._lose: bytes | None = None
        self._lost = threading.Event()
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

    def lose_reply(self, pattern: bytes, seconds: float = 10.0) -> None:
        """Drop the reply to the next request containing `pattern` (see the module doc);
        returns once that happened, AssertionError after `seconds`."""
        self._lost.clear()
        self._lose = pattern
        if not self._lost.wait(seconds):
            self._lose = None
            raise AssertionError(f"no request with {pattern!r} went through in {seconds} s")

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
