"""Fan-out: one chat at RATE tok/s followed live by N readers (resumes of that chat).

The chat's upstream stalls after a few tokens (a `stall` tag, bench/fake_server.py) while
the N readers attach (each has received its first bytes: the replay of what exists); then
the upstream is released and paces the rest from that moment. For every token due after
the release, a reader's delivery latency is its arrival at that reader minus the time the
upstream's pacing made it due: the producer's read of the upstream, its write to the log
and the fan-out to the reader, the way a user watching the chat sees it.

The readers' hot path only records (arrival time, bytes) of each body piece; the events
are parsed after the chat ended, so the benchmark's client costs little per delivered
chunk (it shares the machine with the servers).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from dataclasses import dataclass, field

import orjson

from bench.http_client import StreamedResponse, open_stream


@dataclass
class FanoutReader:
    """One reader's raw body pieces and their arrival times."""

    pieces: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    error: str = ""

    def events(self) -> tuple[str, bool, list[tuple[int, float]], list[float]]:
        """(text, finished, (text length after each text-delta, its arrival), the arrival
        of every UI chunk) parsed from the body."""
        body = b"".join(self.pieces)
        ends: list[int] = []
        total = 0
        for piece in self.pieces:
            total += len(piece)
            ends.append(total)
        text = ""
        finished = False
        arrivals: list[tuple[int, float]] = []
        chunk_times: list[float] = []
        offset = 0
        for event in body.split(b"\n\n"):
            offset += len(event) + 2
            at = self.times[min(len(ends) - 1, bisect.bisect_left(ends, offset))]
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    continue
                chunk_times.append(at)
                chunk = orjson.loads(payload)
                kind = chunk.get("type")
                if kind == "text-delta":
                    text += chunk["delta"]
                    arrivals.append((len(text), at))
                elif kind == "finish":
                    finished = True
        return text, finished, arrivals, chunk_times


async def follow(
    port: int, chat_id: str, reader: FanoutReader, attached: asyncio.Event, limit: float
) -> None:
    """Resume `chat_id` and record its body to the end; `attached` is set once the first
    body bytes came (or the attempt failed). Never raises."""
    response: StreamedResponse | None = None
    try:
        async with asyncio.timeout(limit):
            response = await open_stream("127.0.0.1", port, "GET", f"/api/chat/{chat_id}/stream")
            if response.status != 200:
                reader.error = f"HTTP {response.status}"
                return
            async for arrived, data in response.pieces():
                reader.pieces.append(data)
                reader.times.append(arrived)
                attached.set()
    except TimeoutError:
        reader.error = reader.error or "timeout"
    except (OSError, ValueError, asyncio.IncompleteReadError) as error:
        reader.error = reader.error or f"{type(error).__name__}: {error}"[:200]
    finally:
        attached.set()
        if response is not None:
            response.close()


@dataclass
class Fanout:
    """What one fan-out phase measured."""

    readers: int = 0
    processes: int = 1
    attached: int = 0
    exact: int = 0  # readers whose text is the expected answer, with its finish chunk
    latency: list[float] = field(default_factory=list)  # seconds, all readers, live tokens
    delivered: int = 0  # UI chunks that reached the readers after the release
    cpu: float = 0.0  # servers + Redis, release to the last reader's end
    rss_per_reader: float = math.nan  # bytes, servers' growth with the readers attached
    attach_seconds: float = math.nan
    errors: list[str] = field(default_factory=list)


def measure_readers(
    readers: list[FanoutReader],
    expected: str,
    token_ends: list[int],
    started: float,
    rate: float,
    released: float,
    live_from: int,
    phase: Fanout,
) -> None:
    """Fold every reader's body into `phase`: exactness, latency of the tokens from
    `live_from` on, chunks delivered after `released`."""
    for reader in readers:
        if reader.error:
            phase.errors.append(reader.error)
        if not reader.pieces:
            continue
        text, finished, arrivals, chunk_times = reader.events()
        if text == expected and finished:
            phase.exact += 1
        elif not reader.error:
            phase.errors.append(f"reader: {len(text)}/{len(expected)} chars, finish={finished}")
        phase.delivered += sum(1 for at in chunk_times if at >= released)
        position = 0
        for index, end in enumerate(token_ends):
            while position < len(arrivals) and arrivals[position][0] < end:
                position += 1
            if position == len(arrivals):
                break
            if index >= live_from:
                phase.latency.append(arrivals[position][1] - (started + index / rate))


async def attach_all(
    ports: list[int], chat_id: str, count: int, limit: float, opening: int = 200
) -> tuple[list[FanoutReader], list[asyncio.Task[None]], float]:
    """`count` readers spread over `ports` in turn, at most `opening` connecting at once;
    returns once every one received its first bytes (or failed)."""
    gate = asyncio.Semaphore(opening)
    readers = [FanoutReader() for _ in range(count)]
    tasks: list[asyncio.Task[None]] = []
    began = time.monotonic()

    async def one(index: int) -> None:
        attached = asyncio.Event()
        async with gate:
            task = asyncio.create_task(
                follow(ports[index % len(ports)], chat_id, readers[index], attached, limit)
            )
            tasks.append(task)
            await attached.wait()

    await asyncio.gather(*[one(index) for index in range(count)])
    return readers, tasks, time.monotonic() - began
