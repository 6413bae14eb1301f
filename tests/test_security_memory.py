"""Bounded memory under hostile input: the generation feed keeps a bounded record per turn,
is capped and expires with the logs; a real bridge process driven with the worst request
shapes (max-size messages, edits, WebSocket floods) keeps its RSS within a stated bound,
on SQLite and on Redis."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from bridge.store.base import FEED_MAX_RECORDS, SessionStore
from protocol.sse import SSEParser
from tests import test_store_contract as contract
from tests.bridge_server import BridgeFactory, chat_body

try:  # the contract suite's Redis Cluster backend needs its fixture here too
    from tests.support.redis import redis_cluster
except ImportError:  # the helpers' earlier place
    from tests.redis_server import redis_cluster  # type: ignore[no-redef]  # noqa: F401

backend = contract.backend
store = contract.store

RSS_GROWTH_BOUND_MB = 160
"""What the load below may add to the process's resident memory (interpreter arenas and
caches warming up included). The feed as it was grew ~34 MB per 4 MB turn: ~0.8 GB here."""
MESSAGE_BYTES = 3 * 1024 * 1024
TURNS = 25


async def test_feed_is_capped_and_positions_never_repeat(store: SessionStore) -> None:
    for n in range(FEED_MAX_RECORDS + 44):
        assert await store.announce_generation("c", f"g{n}", b"r%d" % n) == n + 1
    kept = await store.read_generations("c", 0)
    assert len(kept) == FEED_MAX_RECORDS
    assert kept[0] == (45, b"r44") and kept[-1] == (300, b"r299")
    assert await store.read_generations("c", 299) == [(300, b"r299")]
    assert await store.announce_generation("c", "g300", b"r300") == 301


async def test_live_tail_user_message_is_a_bounded_excerpt(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=0)
    big = "word " * 200_000  # 1 MB
    url = f"{server.url}/api/chat/big-feed/live"
    async with httpx.AsyncClient(timeout=60) as client, client.stream("GET", url) as tail:
        parser = SSEParser()
        chunks = tail.aiter_bytes()
        assert b": live" in await anext(chunks)  # the tail holds the chat's state
        answer = await client.post(f"{server.url}/api/chat", json=chat_body("big-feed", big))
        assert answer.status_code == 200
        event = None
        while event is None:
            for item in parser.feed(await anext(chunks)):
                if item.data and "data-user-message" in item.data:
                    event = item
        await chunks.aclose()
    assert event.data is not None
    data = orjson.loads(event.data)["data"]
    assert len(event.data) < 20_000
    assert data["message"]["truncated"] is True
    assert data["message"]["id"] == "u1"
    assert data["message"]["parts"][0]["text"].startswith("word word")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _turn(client: httpx.Client, url: str, chat_id: str, text: str, message_id: str) -> None:
    body = {
        "id": chat_id,
        "messages": [{"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}],
        "trigger": "submit-message",
    }
    with client.stream("POST", f"{url}/api/chat", json=body) as response:
        assert response.status_code == 200, response.read()
        for _ in response.iter_bytes():
            pass


async def _flood(url: str) -> None:
    """Large frames on one socket, every one parsed (the rate is set high here)."""
    frame = orjson.dumps({"type": "abort", "requestId": "f", "pad": "x" * 2_000_000}).decode()
    socket_url = url.replace("http://", "ws://") + "/api/chat"
    async with websockets.connect(socket_url, max_size=None, ping_interval=None) as ws:
        for _ in range(50):
            await ws.send(frame)
        # Answered once every abort before it was read: the flood is through.
        resume = {"type": "resume", "requestId": "r", "id": "flood", "headers": {}, "body": {}}
        await ws.send(orjson.dumps(resume).decode())
        while orjson.loads(await ws.recv())["requestId"] != "r":
            pass  # keep-alive frames


def _drive(bridge: Any) -> tuple[float, float]:
    """Warm up, then the worst shapes; (RSS after warming up, RSS after the load)."""
    pid = bridge.process.pid
    with httpx.Client(timeout=120) as client:
        text = "x" * MESSAGE_BYTES
        for n in range(3):
            _turn(client, bridge.url, "warm", f"{n} {text}", f"w{n}")
        before = _rss_mb(pid)
        # Max-size messages, each an edit of the chat's one user message (the history
        # stays one message: only what the process keeps per turn can grow).
        for n in range(TURNS):
            _turn(client, bridge.url, "worst", f"{n} {text}", "u1")
        asyncio.run(_flood(bridge.url))
        # Many chats, one max-size turn each.
        for n in range(10):
            _turn(client, bridge.url, f"many-{n}", text, "u1")
        after = _rss_mb(pid)
    return before, after


@pytest.mark.parametrize("store_kind", ["sqlite", "redis"])
def test_rss_stays_bounded_under_the_worst_request_shapes(
    bridge_processes: Any, redis_server: Any, tmp_path: Path, store_kind: str
) -> None:
    settings = {
        "BRIDGE_DEMO_TOKEN_DELAY_MS": "0",
        "BRIDGE_RATE_LIMIT_PER_MINUTE": "100000",
        "BRIDGE_WS_MAX_FRAME_BYTES": str(4 * 1024 * 1024),
    }
    if store_kind == "redis":
        prefix = f"rss{uuid.uuid4().hex[:8]}"
        settings |= {"REDIS_URL": redis_server.url, "BRIDGE_KEY_PREFIX": prefix}
    else:
        settings |= {"BRIDGE_STORE": "sqlite", "BRIDGE_DATA_DIR": str(tmp_path / "data")}
    bridge = bridge_processes(**settings)
    before, after = _drive(bridge)
    print(f"RSS {store_kind}: {before:.0f} MB -> {after:.0f} MB")
    assert after - before < RSS_GROWTH_BOUND_MB, (before, after)
    if store_kind == "redis":
        redis = redis_server.client()
        feed = f"{prefix}:{{worst}}:generations"
        assert redis.xlen(feed) <= FEED_MAX_RECORDS
        # It expires with the logs (24 h by default), not with the history (30 days).
        assert 0 < redis.pttl(feed) <= 24 * 3600 * 1000
        assert redis.memory_usage(feed) < 1024 * 1024
