"""Probes: /healthz is liveness (always 200 while the process serves), /readyz checks the
store within BRIDGE_READY_TIMEOUT_SECONDS: a paused redis-server (SIGSTOP) makes it 503,
and it is ready again once Redis answers."""

from __future__ import annotations

import os
import signal

import httpx

from tests.bridge_server import BridgeFactory
from tests.support.redis import RedisServer


def test_readyz_follows_the_store_and_healthz_stays_live(
    bridge_factory: BridgeFactory, redis_server: RedisServer
) -> None:
    server = bridge_factory(redis_url=redis_server.url, bridge_ready_timeout_seconds=0.5)
    assert httpx.get(f"{server.url}/readyz", timeout=10).json()["status"] == "ok"
    process = redis_server._process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        paused = httpx.get(f"{server.url}/readyz", timeout=10)
        live = httpx.get(f"{server.url}/healthz", timeout=10)
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert paused.status_code == 503
    assert paused.json()["status"] == "store_unavailable"
    assert live.status_code == 200
    again = httpx.get(f"{server.url}/readyz", timeout=10)
    assert again.status_code == 200, again.text
