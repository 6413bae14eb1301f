"""A real, throw-away `redis-server` for tests (no fakes: the Lua scripts must really run).

`tests/conftest.py` re-exports the `redis_server` fixture. The binary comes from PATH or
`REDIS_SERVER_BIN`; `scripts/ensure-redis.sh` installs one. Without it the fixture fails
(it never skips, so a missing Redis cannot pass CI silently).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

_START_TIMEOUT_SECONDS = 10.0


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or os.environ.get("REDIS_SERVER_BIN") or None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One `redis-server` process on a free loopback port, without persistence."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.TemporaryDirectory(prefix="redis-test-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # The free port may be taken between probing and binding: try a few.
        errors: list[str] = []
        for _ in range(3):
            self.port = _free_port()
            options = {
                "save": "",
                "appendonly": "no",
                "port": str(self.port),
                "bind": "127.0.0.1",
                "dir": self._workdir.name,
            }
            argv = [self.binary]
            for name, value in options.items():
                argv += [f"--{name}", value]
            self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            error = self._wait_until_ready()
            if error is None:
                return
            errors.append(error)
            self.stop()
        raise RuntimeError("redis-server did not start:\n" + "\n".join(errors))

    def _wait_until_ready(self) -> str | None:
        assert self._process is not None
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    output = self._process.stdout.read() if self._process.stdout else b""
                    return output.decode(errors="replace")
                try:
                    if client.ping():
                        return None
                except redis.ConnectionError:
                    time.sleep(0.02)  # the process is starting; nothing to wait on but time
            return f"no PING answer within {_START_TIMEOUT_SECONDS}s on port {self.port}"
        finally:
            client.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()

    def close(self) -> None:
        self.stop()
        self._workdir.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = find_redis_server()
    if binary is None:
        pytest.fail(
            "redis-server not found on PATH and REDIS_SERVER_BIN is not set; "
            "run scripts/ensure-redis.sh (or install redis-server) to run the Redis tests",
            pytrace=False,
        )
    server = RedisServer(binary)
    try:
        server.start()
        yield server
    finally:
        server.close()
