"""Replay cost: what a reloading client receives for one finished answer, raw (the log's own
chunks, `?cursor=-1`) and compacted (a resume without a cursor: what `useChat` sends), for
answers of several lengths with reasoning, against the final message's JSON.

    python -m bench.replay [--tokens 500,20000] [--repeats 5]

Prints bytes and events per replay, their ratio to the final message's JSON, and the time
to the first byte (median over repeats). Loopback only; one bridge in this process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
import orjson

from bridge.app import create_app
from tests.bridge_server import chat_body, make_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import LiveServer, Reasoning, Text


def _replay(client: httpx.Client, url: str) -> tuple[int, int, float]:
    started = time.perf_counter()
    first = 0.0
    size = events = 0
    with client.stream("GET", url) as response:
        assert response.status_code == 200, response.status_code
        for piece in response.iter_raw():
            if not first:
                first = time.perf_counter() - started
            size += len(piece)
            events += piece.count(b"\ndata: ") + piece.startswith(b"data: ")
    return size, events, first


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--tokens", default="500,20000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with OpenAIFake(api_key="k") as fake:
        server = LiveServer(
            create_app(
                make_settings(
                    openai_api_key="k",
                    openai_base_url=fake.base_url,
                    bridge_model="openai-chat:bench",
                    bridge_resume_grace_seconds=3600,
                )
            )
        )
        server.start()
        try:
            rows = []
            with httpx.Client(base_url=server.url, timeout=120) as client:
                for tokens in [int(t) for t in args.tokens.split(",")]:
                    words = [f"w{i} " for i in range(tokens)]
                    thoughts = [f"t{i} " for i in range(tokens // 4)]
                    fake.enqueue([Reasoning(thoughts, signature=None), Text(words)])
                    chat = f"replay-{tokens}"
                    answer = client.post("/api/chat", json=chat_body(chat, "go"))
                    assert answer.status_code == 200
                    message = client.get(f"/api/chat/{chat}/messages").json()["messages"][-1]
                    message_bytes = len(orjson.dumps(message))
                    for mode, query in (("raw (cursor=-1)", "?cursor=-1"), ("compacted", "")):
                        runs = [
                            _replay(client, f"/api/chat/{chat}/stream{query}")
                            for _ in range(args.repeats)
                        ]
                        size, events, _ = runs[0]
                        ttfb = statistics.median(run[2] for run in runs)
                        rows.append((tokens, mode, size, events, size / message_bytes, ttfb))
        finally:
            server.stop()
    print(f"{'tokens':>7}  {'replay':<16} {'bytes':>10} {'events':>7} {'x message':>9} {'ttfb':>9}")
    for tokens, mode, size, events, ratio, ttfb in rows:
        print(f"{tokens:>7}  {mode:<16} {size:>10} {events:>7} {ratio:>9.2f} {ttfb * 1000:>7.1f}ms")


if __name__ == "__main__":
    main()
