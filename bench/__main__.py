"""Load benchmark: C concurrent chats of T tokens each through a real bridge process,
against the fake OpenAI server, with the memory store and with Redis.

    python -m bench [--chats 50] [--tokens 400] [--token-delay-ms 2] [--stores memory,redis]

Prints, per store: delivered chunks per second, the bridge's CPU seconds per 100k
delivered chunks, time to first chunk and inter-chunk delay (p50/p99), resume time to
first byte (p50/p99), and Redis commands per logged chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from protocol.sse import SSEParser
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ChatTiming:
    first_chunk: float = 0.0
    gaps: list[float] = field(default_factory=list)
    chunks: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


async def run_chat(client: httpx.AsyncClient, url: str, chat_id: str) -> ChatTiming:
    body = {
        "id": chat_id,
        "trigger": "submit-message",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "go"}]}],
    }
    timing = ChatTiming()
    parser = SSEParser()
    started = time.perf_counter()
    last = 0.0
    async with client.stream("POST", f"{url}/api/chat", json=body) as response:
        response.raise_for_status()
        async for piece in response.aiter_raw():
            now = time.perf_counter()
            for event in parser.feed(piece):
                if event.data is None or event.data == "[DONE]":
                    continue
                timing.chunks += 1
                if '"text-delta"' not in event.data:
                    continue
                if not timing.first_chunk:
                    timing.first_chunk = now - started
                else:
                    timing.gaps.append(now - last)
                last = now
    return timing


async def resume_ttfb(client: httpx.AsyncClient, url: str, chat_id: str) -> float:
    started = time.perf_counter()
    async with client.stream("GET", f"{url}/api/chat/{chat_id}/stream") as response:
        async for _ in response.aiter_raw():
            return time.perf_counter() - started
    return float("nan")


async def load(url: str, chats: int, run_id: str) -> tuple[list[ChatTiming], list[float], float]:
    limits = httpx.Limits(max_connections=chats * 2 + 10, max_keepalive_connections=chats * 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        tasks = [
            asyncio.create_task(run_chat(client, url, f"{run_id}-{index}"))
            for index in range(chats)
        ]
        await asyncio.sleep(0.3)
        resumes = await asyncio.gather(
            *[resume_ttfb(client, url, f"{run_id}-{index}") for index in range(min(chats, 20))]
        )
        timings = await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return list(timings), resumes, elapsed


def start_process(
    argv: list[str], env: dict[str, str], probe: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server process on a free port (`{port}` in argv) and wait until `probe`
    answers."""
    port = _free_port()
    process = subprocess.Popen(
        [part.format(port=port) for part in argv], cwd=ROOT, env={**os.environ, **env}
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}{probe}")
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{argv} did not start")


def start_bridge(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    return start_process(
        [sys.executable, "-m", "bridge", "--port", "{port}", "--log-level", "warning"],
        env,
        "/healthz",
    )


def redis_calls(url: str) -> dict[str, int]:
    """Calls per command so far (commands run inside scripts are counted too)."""
    client = redis.Redis.from_url(url)
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def bench_store(
    store: str, args: argparse.Namespace, fake_url: str, redis_server: RedisServer | None
) -> dict[str, float]:
    env = {
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": f"{fake_url}/v1",
        "BRIDGE_MODEL": "openai:gpt-bench",
        "BRIDGE_FLUSH_MS": str(args.flush_ms),
    }
    if redis_server is not None:
        env["REDIS_URL"] = redis_server.url
    process, url = start_bridge(env)
    try:
        asyncio.run(load(url, min(args.chats, 5), f"warmup-{store}"))
        calls_before = redis_calls(redis_server.url) if redis_server else {}
        cpu_before = _cpu_seconds(process.pid)
        timings, resumes, elapsed = asyncio.run(load(url, args.chats, f"run-{store}"))
        cpu = _cpu_seconds(process.pid) - cpu_before
        calls_after = redis_calls(redis_server.url) if redis_server else {}
        calls = {name: count - calls_before.get(name, 0) for name, count in calls_after.items()}
    finally:
        process.terminate()
        process.wait(10)
    delivered = sum(t.chunks for t in timings)
    gaps = [gap for t in timings for gap in t.gaps]
    firsts = [t.first_chunk for t in timings]
    # Each chat is read by its POST; the resumes read some chats a second time.
    logged = delivered  # one POST reader per chat: logged chunks == chunks read by POSTs
    return {
        "chunks/s": delivered / elapsed,
        "cpu s/100k": cpu / delivered * 100_000,
        "ttfc p50 ms": statistics.median(firsts) * 1000,
        "ttfc p99 ms": percentile(firsts, 0.99) * 1000,
        "gap p50 ms": statistics.median(gaps) * 1000 if gaps else float("nan"),
        "gap p99 ms": percentile(gaps, 0.99) * 1000,
        "resume ttfb p50 ms": statistics.median(resumes) * 1000,
        "resume ttfb p99 ms": percentile(resumes, 0.99) * 1000,
        # All commands, those run inside the append/end scripts included.
        "redis cmds/chunk": sum(calls.values()) / logged if redis_server else 0.0,
        # Client round trips: producer appends (one EVALSHA per batch) and reader wake-ups.
        "evalsha/chunk": calls.get("evalsha", 0) / logged if redis_server else 0.0,
        "xread/chunk": calls.get("xread", 0) / logged if redis_server else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--token-delay-ms", type=float, default=20.0)
    parser.add_argument("--flush-ms", type=float, default=5.0)
    parser.add_argument("--stores", default="memory,redis")
    args = parser.parse_args()

    fake, fake_url = start_process(
        [
            sys.executable,
            "-m",
            "bench.fake_server",
            "--port",
            "{port}",
            "--tokens",
            str(args.tokens),
            "--token-delay-ms",
            str(args.token_delay_ms),
        ],
        {},
        "/",
    )
    redis_server: RedisServer | None = None
    results: dict[str, dict[str, float]] = {}
    try:
        for store in args.stores.split(","):
            if store == "redis":
                binary = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
                if not binary:
                    raise SystemExit("redis-server not found: run `make bench`")
                redis_server = RedisServer(binary)
                redis_server.start()
            results[store] = bench_store(store, args, fake_url, redis_server)
    finally:
        fake.terminate()
        fake.wait(10)
        if redis_server is not None:
            redis_server.close()

    print(
        f"\n{args.chats} chats x {args.tokens} tokens, fake token delay "
        f"{args.token_delay_ms} ms, flush window {args.flush_ms} ms"
    )
    names = list(next(iter(results.values())))
    print(f"{'':22}" + "".join(f"{store:>12}" for store in results))
    for name in names:
        print(f"{name:22}" + "".join(f"{results[store][name]:12.2f}" for store in results))


if __name__ == "__main__":
    main()
