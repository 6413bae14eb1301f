"""A small async SSE client for tests: read a bridge stream, stop early, collect chunks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from protocol.sse import SSEParser


@dataclass
class StreamResult:
    status: int
    headers: dict[str, str]
    events: list[tuple[str | None, str]] = field(default_factory=list)
    """(id, data) per event with data, in order; `[DONE]` included."""
    comments: list[str] = field(default_factory=list)
    raw: bytes = b""

    @property
    def done(self) -> bool:
        return bool(self.events) and self.events[-1][1] == "[DONE]"

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [orjson.loads(data) for _, data in self.events if data != "[DONE]"]

    @property
    def offsets(self) -> list[int]:
        return [
            int(event_id)
            for event_id, data in self.events
            if data != "[DONE]" and event_id is not None
        ]

    @property
    def types(self) -> list[str]:
        return [str(chunk["type"]) for chunk in self.chunks]

    def text(self) -> str:
        return "".join(str(c["delta"]) for c in self.chunks if c["type"] == "text-delta")


async def read_stream(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
    started: asyncio.Event | None = None,
    streaming: asyncio.Event | None = None,
) -> StreamResult:
    """Read an SSE response; with `stop_after`, hang up after that many chunk events.
    What a concurrent step of the test waits on: `started` is set once the response headers
    came (for a POST: the generation began), `streaming` once a text delta was read (the
    answer is being produced); both also when the response ended."""
    parser = SSEParser()
    async with client.stream(method, url, json=json, headers=headers) as response:
        result = StreamResult(status=response.status_code, headers=dict(response.headers))
        if started is not None:
            started.set()
        try:
            if response.status_code != 200:
                await response.aread()
                result.raw = response.content
                return result
            async for piece in response.aiter_raw():
                result.raw += piece
                for event in parser.feed(piece):
                    if event.data is not None:
                        result.events.append((event.id, event.data))
                        if streaming is not None and '"text-delta"' in event.data:
                            streaming.set()
                    elif event.comment is not None:
                        result.comments.append(event.comment)
                if stop_after is not None and len(result.events) >= stop_after:
                    break
        finally:
            for event in (started, streaming):
                if event is not None:
                    event.set()
    return result
