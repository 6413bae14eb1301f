"""Micro-benchmark of the provider SDKs' HTTP stack at paced rates: CPU the event loop
spends reading streamed response bodies where every network read carries one small event.

    python -m bench.http_reads [--events 20000] [--streams 20] [--rate 100] [--loop uvloop]

A local server (a thread of this process with its own event loop) answers each of
`--streams` concurrent POSTs with a chunked SSE body of events/streams one-event chunks,
paced at `--rate` events/s per stream. The client reads them with `response.aiter_bytes()`
(as `_stream.read_sse` does) through each of the SDK's own stacks as the bridge builds them
(`_sdk_http.sdk_http_client`, BRIDGE_PROVIDER_HTTP): `httpx` (`DefaultAsyncHttpxClient`,
httpx2) and `aiohttp` (`DefaultAioHttpClient`). Only the client thread's CPU is counted.
Prints CPU seconds per 10k reads and events per read (1.0: paced).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable

import httpx2
import openai

from bridge.providers._sdk_http import sdk_http_client

EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"tok "}}]}\n\n'
CHUNK = b"%x\r\n%s\r\n" % (len(EVENT), EVENT)


class PacedServer:
    """Chunked SSE answers, one event per chunk, paced per stream."""

    def __init__(self, events_per_stream: int, rate: float) -> None:
        self.events = events_per_stream
        self.interval = 1 / rate
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PacedServer:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def _run(self) -> None:
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        # Stopped: end the connection handlers still waiting for a next request.
        server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()

        async def cancelled() -> None:
            await asyncio.gather(*tasks, return_exceptions=True)

        self._loop.run_until_complete(cancelled())
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                due = time.monotonic()
                for _ in range(self.events):
                    due += self.interval
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    writer.write(CHUNK)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # (A cancelled handler ends normally: 3.11's stream callback would log it.)
            writer.close()


async def _read_all(client: httpx2.AsyncClient, url: str, streams: int) -> int:
    async def one() -> int:
        reads = 0
        async with client.stream("POST", url, content=b"{}") as response:
            async for _ in response.aiter_bytes():
                reads += 1
        return reads

    return sum(await asyncio.gather(*(one() for _ in range(streams))))


def measure(
    make_client: Callable[[], httpx2.AsyncClient], url: str, streams: int, events: int
) -> tuple[float, float]:
    async def run() -> tuple[float, int]:
        async with make_client() as client:
            await _read_all(client, url, 1)  # warm-up: imports, TLS-less connect, pool
            started = time.thread_time()
            reads = await _read_all(client, url, streams)
            return time.thread_time() - started, reads

    spent, reads = asyncio.run(run())
    return spent * 10_000 / reads, events / reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    per_stream = args.events // args.streams
    clients: dict[str, Callable[[], httpx2.AsyncClient]] = {
        "httpx": lambda: sdk_http_client(openai, "httpx"),
        "aiohttp": lambda: sdk_http_client(openai, "aiohttp"),
    }
    print(
        f"CPU seconds per 10k paced reads ({args.streams} streams x {per_stream} events "
        f"at {args.rate:g}/s, {args.loop})"
    )
    # The warm-up stream is as long as the others: the server answers every POST alike.
    with PacedServer(per_stream, args.rate) as server:
        url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
        for name, make in clients.items():
            cpu, per_read = measure(make, url, args.streams, per_stream * args.streams)
            print(f"  {name:7s} {cpu:.3f} CPU-s/10k reads  ({per_read:.2f} events per read)")


if __name__ == "__main__":
    main()
