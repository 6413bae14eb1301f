"""`python -m bridge`: host/port from the environment, worker processes sharing one Redis,
and more than one worker refused with the memory store."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.settings import Settings
from tests.bridge_server import chat_body, sse_events
from tests.redis_server import RedisServer

_START_SECONDS = 60.0
_STATE_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    """The machine's environment without any bridge setting, plus `extra`."""
    settings = {"HOST", "PORT", "REDIS_URL", "FORWARDED_ALLOW_IPS"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BRIDGE_", "OPENAI_", "ANTHROPIC_")) and name not in settings
    }
    env.update(BRIDGE_DEMO_TOKEN_DELAY_MS="1", **extra)
    return env


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
        [sys.executable, "-m", "bridge", "--port", str(_free_port())],
        cwd=tmp_path,
        env=_clean_env(BRIDGE_WORKERS="2"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "2 workers need a shared session store: set REDIS_URL" in result.stderr


class _Workers:
    """A `python -m bridge --workers 2` process tree and its log."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, url: str) -> None:
        self.process = process
        self.log = log
        self.url = url

    def worker_pids(self) -> list[int]:
        text = self.log.read_text(errors="replace")
        return [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", text)]

    def wait_until_ready(self) -> list[int]:
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the bridge exited:\n{self.log.read_text()}")
            if self.log.read_text(errors="replace").count("Application startup complete") >= 2:
                return self.worker_pids()
            time.sleep(0.05)
        pytest.fail(f"two workers did not start:\n{self.log.read_text()}")


@pytest.fixture
def two_workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[_Workers]:
    port = _free_port()
    log = tmp_path / "bridge.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--workers", "2", "--port", str(port)],
            cwd=tmp_path,  # no .env of the developer's
            env=_clean_env(REDIS_URL=redis_server.url, BRIDGE_KEY_PREFIX=f"workers{port}"),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    workers = _Workers(process, log, f"http://127.0.0.1:{port}")
    try:
        yield workers
    finally:
        for pid in workers.worker_pids():
            _signal(pid, signal.SIGCONT)
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone: nothing to wake
        os.kill(pid, signum)


def _pause(pid: int) -> None:
    """SIGSTOP a worker and wait until it is stopped: then only the other one accepts."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + _STATE_SECONDS
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("T", "t"):
            return
        time.sleep(0.01)
    pytest.fail(f"worker {pid} did not stop")


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
def test_serve_workers_share_one_redis(two_workers: _Workers) -> None:
    first, second = two_workers.wait_until_ready()
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
