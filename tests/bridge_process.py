"""The bridge as a process of its own (`python -m bridge`), so a test can kill it for real
(SIGKILL, SIGTERM). Start-up is awaited on `/healthz`; a bridge that does not come up
fails the test with the end of its log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BridgeProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        descriptor, name = tempfile.mkstemp(prefix="bridge-", suffix=".log")
        self._log_path = Path(name)
        with os.fdopen(descriptor, "wb") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--port", str(self.port), "--log-level", "info"],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the bridge exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"the bridge did not start in {START_TIMEOUT_SECONDS} s:\n{self.log()}")

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log_path.unlink(missing_ok=True)


@pytest.fixture
def bridge_processes() -> Iterator[Any]:
    """A factory: `start(**env)` starts a bridge process and waits until it is ready."""
    started: list[BridgeProcess] = []

    def start(**env: str) -> BridgeProcess:
        bridge = BridgeProcess(env)
        started.append(bridge)
        bridge.wait_ready()
        return bridge

    yield start
    for bridge in started:
        bridge.stop()
