"""A minimal HTTP/1.1 client for streamed responses on loopback.

The benchmark's client shares the machine with the servers it measures, so it must cost
little per chunk and time arrivals exactly: one connection per request (`connection:
close`), the body read as it comes (chunked, content-length or until close), no parsing
beyond that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

_READ_LIMIT = 1 << 20


@dataclass
class StreamedResponse:
    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def pieces(self) -> AsyncIterator[tuple[float, bytes]]:
        """(arrival time, bytes) of each piece of the body, as it arrives."""
        if self.status == 204:
            return
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    return
                data = await self.reader.readexactly(size + 2)
                yield time.monotonic(), data[:-2]
        elif "content-length" in self.headers:
            remaining = int(self.headers["content-length"])
            while remaining > 0:
                data = await self.reader.read(min(remaining, 65536))
                if not data:
                    raise ConnectionError("body ended before its content-length")
                remaining -= len(data)
                yield time.monotonic(), data
        else:
            while data := await self.reader.read(65536):
                yield time.monotonic(), data

    def close(self) -> None:
        self.writer.close()


async def open_stream(
    host: str, port: int, method: str, path: str, body: bytes | None = None
) -> StreamedResponse:
    """Send the request and read the response head; the body is left to `pieces()`."""
    reader, writer = await asyncio.open_connection(host, port, limit=_READ_LIMIT)
    try:
        head = f"{method} {path} HTTP/1.1\r\nhost: {host}:{port}\r\nconnection: close\r\n"
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + (body or b""))
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
    except BaseException:
        writer.close()
        raise
    return StreamedResponse(status, headers, reader, writer)


async def get_json_bytes(host: str, port: int, path: str) -> bytes:
    response = await open_stream(host, port, "GET", path)
    try:
        return b"".join([piece async for _, piece in response.pieces()])
    finally:
        response.close()
