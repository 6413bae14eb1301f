"""`python -m bridge`: host/port from the environment, worker processes sharing one Redis,
and more than one worker refused with the memory store."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.settings import Settings
from tests.bridge_server import chat_body, sse_events
from tests.support.bridge_process import BridgeProcess, bridge_environment
from tests.support.ports import free_port
from tests.support.redis import RedisServer, process_state
from tests.support.waiting import wait_until


def test_settings_port_and_host_fall_back_to_paas_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("BRIDGE_HOST", "BRIDGE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("HOST", "0.0.0.0")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.bridge_host, settings.bridge_port) == ("0.0.0.0", 9123)

    monkeypatch.setenv("BRIDGE_PORT", "9124")
    monkeypatch.setenv("BRIDGE_HOST", "127.0.0.2")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.bridge_host, settings.bridge_port) == ("127.0.0.2", 9124)


def test_settings_port_rejects_a_kubernetes_service_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGE_PORT", "tcp://10.0.0.7:8000")
    with pytest.raises(ValueError, match="enableServiceLinks"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_serve_refuses_several_workers_without_redis(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "--port", str(free_port())],
        cwd=tmp_path,
        env=bridge_environment(BRIDGE_WORKERS="2"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "2 workers need a shared session store: set REDIS_URL" in result.stderr


@pytest.fixture
def two_workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[BridgeProcess]:
    """`python -m bridge --workers 2` on the shared Redis, both workers started."""
    bridge = BridgeProcess(
        {
            "REDIS_URL": redis_server.url,
            "BRIDGE_KEY_PREFIX": f"workers{tmp_path.name}",
            "BRIDGE_DEMO_TOKEN_DELAY_MS": "1",
        },
        workdir=tmp_path,
        args=["--workers", "2"],
    )
    try:
        bridge.spawn().wait_ready(workers=2)
        yield bridge
    finally:
        for pid in bridge.worker_pids():
            _signal(pid, signal.SIGCONT)
        bridge.terminate()
        try:
            bridge.wait_exit()
        finally:
            bridge.close()


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone: nothing to wake
        os.kill(pid, signum)


def _pause(pid: int) -> None:
    """SIGSTOP a worker and wait until it is stopped: then only the other one accepts."""
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: process_state(pid) in ("T", "t"), 10, f"worker {pid} stopped")


def _answer(url: str, chat_id: str, text: str) -> str:
    with httpx.Client(timeout=30) as client:  # a new connection: whoever accepts it serves
        response = client.post(f"{url}/api/chat", json=chat_body(chat_id, text))
    assert response.status_code == 200, response.text
    chunks = [json.loads(data) for _, data in sse_events(response) if data != "[DONE]"]
    assert chunks[-1]["type"] == "finish", chunks[-1]
    return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")


def _stored_answer(url: str, chat_id: str) -> str:
    with httpx.Client(timeout=30) as client:
        response = client.get(f"{url}/api/chat/{chat_id}/messages")
    assert response.status_code == 200, response.text
    assistant = response.json()["messages"][-1]
    assert assistant["role"] == "assistant"
    return "".join(part["text"] for part in assistant["parts"] if part["type"] == "text")


@pytest.mark.redis
def test_serve_workers_share_one_redis(two_workers: BridgeProcess) -> None:
    first, second = two_workers.worker_pids()
    assert first != second
    url = two_workers.url

    # With one worker paused, the other serves every new connection; then the roles swap.
    _pause(second)
    answered_by_first = _answer(url, "chat-w1", "Hello from the first worker")
    _signal(second, signal.SIGCONT)
    _pause(first)
    assert _stored_answer(url, "chat-w1") == answered_by_first
    answered_by_second = _answer(url, "chat-w2", "Hello from the second worker")
    _signal(first, signal.SIGCONT)

    _pause(second)
    assert _stored_answer(url, "chat-w2") == answered_by_second
    _signal(second, signal.SIGCONT)
    assert answered_by_first
    assert answered_by_second
