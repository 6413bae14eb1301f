"""What the benchmark's client does to a server: chats, resumes, idle readers; and the
pure arithmetic on what it saw (answer check, lateness, percentiles)."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

import orjson

from bench.http_client import StreamedResponse, open_stream


@dataclass
class ChatResult:
    tag: str
    sent_at: float = 0.0
    chunks: int = 0  # UI message chunks (SSE data events other than [DONE])
    text: str = ""
    finished: bool = False  # a `finish` chunk arrived
    first_token_at: float = math.nan
    # (text length after a text-delta, its arrival time), in arrival order
    arrivals: list[tuple[int, float]] = field(default_factory=list)
    error: str = ""


@dataclass
class ResumeResult:
    first_byte: float = math.nan  # seconds from request to the first body byte
    text: str = ""
    finished: bool = False
    error: str = ""


class SSESplitter:
    """Bytes in, `data:` payloads out (the servers under test send one data line per
    event, no `event:` or `id:` lines that matter here)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        *events, self._buffer = self._buffer.split(b"\n\n")
        payloads = []
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    payloads.append(line[5:].strip())
        return payloads


class UIChunkReader:
    """Folds UI message stream payloads into the answer's text and its timings."""

    def __init__(self, result: ChatResult | ResumeResult, record_arrivals: bool) -> None:
        self.result = result
        self.splitter = SSESplitter()
        self.record_arrivals = record_arrivals
        self.chunks = 0
        self.first_text_at = math.nan

    def feed(self, arrived: float, data: bytes) -> None:
        for payload in self.splitter.feed(data):
            if payload == b"[DONE]":
                continue
            self.chunks += 1
            chunk = orjson.loads(payload)
            kind = chunk.get("type")
            if kind == "text-delta":
                self.result.text += chunk["delta"]
                if math.isnan(self.first_text_at):
                    self.first_text_at = arrived
                if self.record_arrivals and isinstance(self.result, ChatResult):
                    self.result.arrivals.append((len(self.result.text), arrived))
            elif kind == "finish":
                self.result.finished = True
            elif kind == "error":
                self.result.error = f"error chunk: {chunk.get('errorText', '')}"[:200]


def chat_body(chat_id: str, tag: str) -> bytes:
    return orjson.dumps(
        {
            "id": chat_id,
            "trigger": "submit-message",
            "messages": [
                {
                    "id": "u1",
                    "role": "user",
                    "parts": [{"type": "text", "text": f"bench-tag:{tag}"}],
                }
            ],
        }
    )


async def run_chat(
    port: int, chat_id: str, tag: str, limit: float, started: asyncio.Event | None = None
) -> ChatResult:
    """POST one chat and read its stream to the end (or `limit` seconds); never raises."""
    result = ChatResult(tag=tag)
    reader = UIChunkReader(result, record_arrivals=True)
    response: StreamedResponse | None = None
    try:
        async with asyncio.timeout(limit):
            result.sent_at = time.monotonic()
            response = await open_stream(
                "127.0.0.1", port, "POST", "/api/chat", chat_body(chat_id, tag)
            )
            if response.status != 200:
                result.error = f"HTTP {response.status}"
                return result
            async for arrived, data in response.pieces():
                reader.feed(arrived, data)
                if started is not None and result.text:
                    started.set()
    except TimeoutError:
        result.error = result.error or "timeout"
    except (OSError, ValueError, asyncio.IncompleteReadError) as error:
        result.error = result.error or f"{type(error).__name__}: {error}"[:200]
    finally:
        if response is not None:
            response.close()
        result.chunks = reader.chunks
        result.first_token_at = reader.first_text_at
    return result


async def run_resume(port: int, chat_id: str, limit: float) -> ResumeResult:
    """Resume a chat's stream and read it to the end; never raises."""
    result = ResumeResult()
    reader = UIChunkReader(result, record_arrivals=False)
    response: StreamedResponse | None = None
    try:
        async with asyncio.timeout(limit):
            sent = time.monotonic()
            response = await open_stream("127.0.0.1", port, "GET", f"/api/chat/{chat_id}/stream")
            if response.status != 200:
                result.error = f"HTTP {response.status}" + (
                    ": no active stream known to the server" if response.status == 204 else ""
                )
                return result
            async for arrived, data in response.pieces():
                if math.isnan(result.first_byte):
                    result.first_byte = arrived - sent
                reader.feed(arrived, data)
    except TimeoutError:
        result.error = result.error or "timeout"
    except (OSError, ValueError, asyncio.IncompleteReadError) as error:
        result.error = result.error or f"{type(error).__name__}: {error}"[:200]
    finally:
        if response is not None:
            response.close()
    return result


async def open_idle_reader(port: int, chat_id: str, limit: float) -> StreamedResponse | None:
    """A resume that has received its first body bytes and is then left unread; None
    when the server did not start one within `limit` seconds."""
    response: StreamedResponse | None = None
    try:
        async with asyncio.timeout(limit):
            response = await open_stream("127.0.0.1", port, "GET", f"/api/chat/{chat_id}/stream")
            if response.status == 200:
                async for _ in response.pieces():
                    return response
    except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
        pass
    if response is not None:
        response.close()
    return None


# ------------------------------------------------------------------ pure arithmetic


def token_ends(tokens: list[str]) -> list[int]:
    """Text length at the end of each token."""
    ends, total = [], 0
    for token in tokens:
        total += len(token)
        ends.append(total)
    return ends


def lateness(
    arrivals: list[tuple[int, float]], ends: list[int], started: float, rate: float
) -> list[float]:
    """Per token received: its arrival time minus the time the upstream's pacing made it
    due (token i at `started + i / rate`). A token arrives with the first text-delta that
    takes the text past its end."""
    late: list[float] = []
    position = 0
    for index, end in enumerate(ends):
        while position < len(arrivals) and arrivals[position][0] < end:
            position += 1
        if position == len(arrivals):
            break
        late.append(arrivals[position][1] - (started + index / rate))
    return late


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def median(values: list[float]) -> float:
    clean = sorted(value for value in values if not math.isnan(value))
    if not clean:
        return math.nan
    middle = len(clean) // 2
    return clean[middle] if len(clean) % 2 else (clean[middle - 1] + clean[middle]) / 2
