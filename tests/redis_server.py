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

    def start(self, **extra: str) -> None:
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
                **extra,
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


_CLUSTER_SLOTS = 16384


class RedisClusterServers:
    """A real 3-master Redis Cluster: three `redis-server --cluster-enabled yes` processes
    on loopback ports, slots split evenly, joined with CLUSTER MEET."""

    def __init__(self, binary: str, masters: int = 3) -> None:
        self.nodes = [RedisServer(binary) for _ in range(masters)]

    @property
    def url(self) -> str:
        """The store's cluster URL (any node will do: the client discovers the rest)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        for node in self.nodes:
            # Each node has a directory of its own, so one file name serves them all.
            node.start(**{"cluster-enabled": "yes", "cluster-config-file": "nodes.conf"})
        clients = [redis.Redis(host="127.0.0.1", port=node.port) for node in self.nodes]
        try:
            share = _CLUSTER_SLOTS // len(clients)
            for index, client in enumerate(clients):
                first = index * share
                last = _CLUSTER_SLOTS - 1 if index == len(clients) - 1 else first + share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port)
            deadline = time.monotonic() + _START_TIMEOUT_SECONDS
            while not all(_cluster_ready(client, len(clients)) for client in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError("the test Redis Cluster did not become ready")
                time.sleep(0.05)  # gossip between the nodes: nothing to wait on but time
        finally:
            for client in clients:
                client.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()


def _cluster_ready(client: redis.Redis, masters: int) -> bool:
    fields = client.cluster("INFO")  # redis-py parses the reply into a dict
    return fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(masters)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    binary = find_redis_server()
    if binary is None:
        pytest.fail(
            "redis-server not found on PATH and REDIS_SERVER_BIN is not set; "
            "run scripts/ensure-redis.sh (or install redis-server) to run the Redis tests",
            pytrace=False,
        )
    cluster = RedisClusterServers(binary)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
