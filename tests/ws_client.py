"""A raw WebSocket client for tests: speaks the `WebSocketChatTransport` frames by hand, files
the server's frames by request id, and can send anything (hostile frames included)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from protocol.websocket import KEEPALIVE_REQUEST_ID

FINAL = {"end", "error", "no-active"}


def ws_url(http_url: str, path: str = "/api/chat") -> str:
    return http_url.replace("http://", "ws://", 1) + path


def send_frame(request_id: str, chat_id: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    """What the shipped transport sends for `sendMessage({text})`."""
    return {
        "type": "send",
        "requestId": request_id,
        "id": chat_id,
        "trigger": "submit-message",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}],
        "headers": {},
        "body": {},
        **extra,
    }


def resume_frame(request_id: str, chat_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "resume",
        "requestId": request_id,
        "id": chat_id,
        "headers": {},
        "body": {},
        **extra,
    }


@dataclass
class Reply:
    """Everything the server sent for one request id, in order."""

    frames: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> str | None:
        last = self.frames[-1]["type"] if self.frames else None
        return last if last in FINAL else None

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [frame["chunk"] for frame in self.frames if frame["type"] == "chunk"]

    @property
    def sequences(self) -> list[int]:
        return [frame["sequence"] for frame in self.frames if frame["type"] == "chunk"]

    @property
    def generation_id(self) -> str | None:
        for frame in self.frames:
            if frame["type"] == "start":
                return str(frame["generationId"])
        return None

    def text(self) -> str:
        return "".join(str(c["delta"]) for c in self.chunks if c["type"] == "text-delta")


class RawSocket:
    """One socket; a background task reads every frame and files it by request id."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.replies: dict[str, Reply] = defaultdict(Reply)
        self.order: list[str] = []
        """Request id of every frame, in arrival order (keep-alives included)."""
        self.keep_alives: list[str | bytes] = []
        """The raw keep-alive frames."""
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> RawSocket:
        return cls(await websockets.connect(url, **kwargs))

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                frame = orjson.loads(message)
                request_id = frame["requestId"]
                self.order.append(request_id)
                if request_id == KEEPALIVE_REQUEST_ID:
                    self.keep_alives.append(message)
                else:
                    self.replies[request_id].frames.append(frame)
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._changed.set()

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        data = frame if isinstance(frame, str | bytes) else orjson.dumps(frame).decode()
        await self.connection.send(data)

    async def wait_for(self, request_id: str, within: float = 20) -> Reply:
        """Until the request's final frame (end, error, no-active) or the socket closes."""
        async with asyncio.timeout(within):
            while self.replies[request_id].final is None and not self._reader.done():
                self._changed.clear()
                await self._changed.wait()
        return self.replies[request_id]

    async def wait_chunks(self, request_id: str, n: int, within: float = 20) -> Reply:
        async with asyncio.timeout(within):
            while len(self.replies[request_id].chunks) < n and not self._reader.done():
                self._changed.clear()
                await self._changed.wait()
        return self.replies[request_id]

    async def wait_closed(self, within: float = 10) -> tuple[int | None, str]:
        """(close code, reason) the server closed with."""
        async with asyncio.timeout(within):
            await self._reader
        return self.connection.close_code, self.connection.close_reason or ""

    async def request(self, frame: dict[str, Any], within: float = 20) -> Reply:
        await self.send(frame)
        return await self.wait_for(str(frame["requestId"]), within)

    async def close(self) -> None:
        await self.connection.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def __aenter__(self) -> RawSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
