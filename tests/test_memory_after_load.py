"""Memory after a load: a real bridge process (Redis store) is warmed up, its RSS taken as
the baseline, then driven through rounds of many concurrent chats against the benchmark's
fake upstream (its own process, unpaced: the load that grows a process most); once the
load has gone the process must give its RSS back to near the baseline, waited for with a
bounded deadline (the process trims after the load, `bridge/observe/memory.py`).

The bound is generous (within 40% of the baseline): what is asserted is that the hundreds
of megabytes a load takes are handed back, not a precise figure. The load must first
have grown RSS well past that bound, or the test would prove nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.workload import run_chat
from bridge.observe.memory import AfterLoad, can_trim
from tests.support.bridge_process import BridgeProcess
from tests.support.ports import accepts_connections, free_port
from tests.support.redis import RedisServer, redis_server  # noqa: F401
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not can_trim(), reason="malloc_trim is glibc's"),
]

ROOT = Path(__file__).resolve().parents[1]
CHATS = 150  # concurrent chats per round
ROUNDS = 2
TOKENS = 2000  # long answers: enough live data at once to grow the process well past the bound
BOUND = 1.4  # RSS after the load, at most this times the baseline
GROWN = 1.8  # the load must have taken RSS past this times the baseline
GIVE_BACK_SECONDS = 90.0


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.fixture
def upstream() -> Iterator[int]:
    """The benchmark's fake OpenAI upstream, unpaced, in a process of its own."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_server", "--port", str(port), "--tokens", str(TOKENS)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: accepts_connections(port), 30, "the fake upstream answering")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _chats(port: int, prefix: str, count: int) -> list[str]:
    """`count` chats at once, each read to its end; the errors of those that failed."""

    async def run() -> list[str]:
        results = await asyncio.gather(
            *[run_chat(port, f"{prefix}-{i}", f"{prefix}-{i}", 180) for i in range(count)]
        )
        return [result.error or "no finish" for result in results if not result.finished]

    return asyncio.run(run())


def test_memory_after_load_returns_to_baseline(
    upstream: int,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    bridge = BridgeProcess(
        {
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream}/v1",
            "BRIDGE_MODEL": "openai-chat:gpt-test",
            "REDIS_URL": redis_server.url,
            "BRIDGE_KEY_PREFIX": f"memory-{uuid.uuid4().hex[:8]}",
        }
    ).spawn()
    try:
        bridge.wait_ready()  # until its port accepts connections
        # Warmed up: every path of the load taken once (imports, pools, scripts).
        assert _chats(bridge.port, "warm", 5) == []
        baseline = _rss(bridge.pid)
        for round_ in range(ROUNDS):
            assert _chats(bridge.port, f"load{round_}", CHATS) == [], bridge.digest()
        peak = _peak(bridge.pid)
        assert peak > GROWN * baseline, (
            f"the load did not grow the process (peak {peak >> 20} MB, baseline "
            f"{baseline >> 20} MB): the test would prove nothing"
        )
        wait_until(
            lambda: _rss(bridge.pid) <= BOUND * baseline,
            GIVE_BACK_SECONDS,
            f"RSS back within {BOUND}x of its baseline {baseline >> 20} MB "
            f"after a peak of {peak >> 20} MB",
        )
    finally:
        bridge.close()


def test_memory_trim_waits_for_the_load_to_fall() -> None:
    """The decision alone: a trim once RSS grew and the load fell to a quarter of its peak,
    never while the load goes on, and not again before RSS grows anew."""
    mb = 1 << 20
    state = AfterLoad(rss=100 * mb, growth=32 * mb)
    assert not state.due(running=40, rss=400 * mb)  # the load goes on
    assert not state.due(running=20, rss=450 * mb)  # half of the peak: still a load
    assert state.due(running=10, rss=450 * mb)  # a quarter of the peak: it passed
    state.trimmed(running=10, rss=120 * mb)
    assert not state.due(running=0, rss=140 * mb)  # grown less than 32 MB since
    assert state.due(running=0, rss=160 * mb)
