"""The benchmark's fake OpenAI upstream: Chat Completions streaming, paced on a clock.

    python -m bench.fake_server --port P [--tokens 500] [--rate 50] [--stall-after 5]

`GET /bench/rate/<tokens per second>` changes the pacing of later requests (0: unpaced);
`GET /bench/active` counts the streams being sent (a phase starts once it is 0).

One process of its own on plain asyncio (no web framework), so that it costs little of
the machine the servers under test share with it. Every request gets the same answer,
`answer_tokens(tokens)`, in the Chat Completions wire format of tests/fakes/openai_server.py
(`data: {"object": "chat.completion.chunk", ...}` lines, a usage chunk when asked, then
`data: [DONE]`).

Pacing: token i is due at t0 + i / rate, t0 being the moment the request arrived
(`time.monotonic()`, the same clock in every process of the machine). A stream that falls
behind sends every token already due in one write. The benchmark learns t0 per request
from `GET /bench/starts`: a request is named by the `bench-tag:<tag>` it carries in its
messages. A tag containing `stall` gets `--stall-after` tokens, then nothing until
`GET /bench/release` (or the client leaves): a generation paused on a tool, say. After
the release its pacing goes on from the release (its t0 in `/bench/starts` moves by the
pause), so a chat followed live by many readers can be paced from the moment they are all
attached.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import orjson

T = TypeVar("T")
TAG = re.compile(rb"bench-tag:([A-Za-z0-9_.-]+)")
_UNPACED_BATCH = 16  # tokens per write when unpaced, so readers see many reads


def answer_tokens(count: int) -> list[str]:
    """The answer: distinct words, so a lost, doubled or reordered token shows."""
    return [f"w{index} " for index in range(count)]


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    return (
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-bench",
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
        )
        + b"\n\n"
    )


def render_stream(tokens: list[str], include_usage: bool) -> tuple[bytes, list[bytes], bytes]:
    """(opening chunk, one chunk per token, closing chunks) of a Chat Completions stream."""
    opening = _chunk({"role": "assistant", "content": ""})
    body = [_chunk({"content": token}) for token in tokens]
    closing = _chunk({}, "stop")
    if include_usage:
        usage = {
            "prompt_tokens": 1,
            "completion_tokens": len(tokens),
            "total_tokens": 1 + len(tokens),
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        closing += (
            b"data: "
            + orjson.dumps(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "gpt-bench",
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": usage,
                }
            )
            + b"\n\n"
        )
    return opening, body, closing + b"data: [DONE]\n\n"


class FakeUpstream:
    def __init__(self, tokens: int, rate: float, stall_after: int) -> None:
        self.rate = rate
        self.stall_after = stall_after
        self.renders = {flag: render_stream(answer_tokens(tokens), flag) for flag in (False, True)}
        self.starts: dict[str, float] = {}
        self.active = 0  # streams being sent
        self.release = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        arrived = time.monotonic()
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        if method == "POST" and target.endswith("/chat/completions"):
            await self._stream(body, arrived, writer)
        elif target == "/bench/starts":
            _respond(writer, 200, orjson.dumps(self.starts))
        elif target == "/bench/active":
            _respond(writer, 200, b"%d" % self.active)
        elif target.startswith("/bench/rate/"):
            self.rate = float(target.removeprefix("/bench/rate/"))
            _respond(writer, 200, b"{}")
        elif target == "/bench/release":
            self.release.set()
            self.release = asyncio.Event()
            _respond(writer, 200, b"{}")
        else:
            _respond(writer, 200 if target == "/" else 404, b"{}")
        await writer.drain()
        return headers.get("connection", "").lower() != "close"

    async def _stream(self, raw: bytes, arrived: float, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        try:
            await self._send(raw, arrived, writer)
        finally:
            self.active -= 1

    async def _send(self, raw: bytes, arrived: float, writer: asyncio.StreamWriter) -> None:
        request = orjson.loads(raw)
        match = TAG.search(raw)
        tag = match.group(1).decode() if match else ""
        if tag:
            self.starts[tag] = arrived
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        opening, tokens, closing = self.renders[include_usage]
        stall_at = self.stall_after if "stall" in tag else len(tokens)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        _write_chunk(writer, opening)
        sent = 0
        while sent < len(tokens):
            if sent == stall_at:
                await writer.drain()
                await self.release.wait()
                stall_at = len(tokens)
                # Pacing goes on from the release (not a burst of every token due
                # meanwhile): the stream's clock, and its published start, move on.
                arrived = time.monotonic() - sent / self.rate if self.rate > 0 else arrived
                if tag:
                    self.starts[tag] = arrived
            if self.rate > 0:
                due = arrived + sent / self.rate
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                    now = time.monotonic()
                upto = min(stall_at, len(tokens), int((now - arrived) * self.rate) + 1)
            else:
                upto = min(stall_at, sent + _UNPACED_BATCH)
            upto = max(upto, sent + 1)
            _write_chunk(writer, b"".join(tokens[sent:upto]))
            sent = upto
            await writer.drain()
        _write_chunk(writer, closing)
        writer.write(b"0\r\n\r\n")


def _write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%b\r\n" % (len(data), data))


def _respond(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    writer.write(
        b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b"
        % (status, len(body), body)
    )


async def serve(port: int, tokens: int, rate: float, stall_after: int) -> None:
    upstream = FakeUpstream(tokens, rate, stall_after)
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--rate", type=float, default=0.0, help="tokens per second (0: unpaced)")
    parser.add_argument("--stall-after", type=int, default=5)
    args = parser.parse_args()
    run_loop(serve(args.port, args.tokens, args.rate, args.stall_after))


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop when installed (uvicorn[standard] brings it): the benchmark's own processes
    should take as little of the machine as they can."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


if __name__ == "__main__":
    main()
