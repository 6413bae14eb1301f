"""Real, throw-away `redis-server` processes for tests (no fakes: the Lua scripts must really
run): one server, or a 3-master Redis Cluster.

The binary comes from PATH or `REDIS_SERVER_BIN`; `scripts/ensure-redis.sh` installs one.
Without it the fixtures fail (they never skip, so a missing Redis cannot pass CI silently).
A server keeps its port and data directory across restarts, so a test can stop it (with its
data saved or not), pause it (SIGSTOP) and start it again on the same address.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import redis
import redis.asyncio as aioredis

from bridge.store.redis.connection import cluster_url
from tests.support.ports import free_port
from tests.support.waiting import wait_until

START_SECONDS = 10.0
EXIT_SECONDS = 30.0
_CLUSTER_SLOTS = 16384


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or os.environ.get("REDIS_SERVER_BIN") or None


def require_redis_server() -> str:
    binary = find_redis_server()
    if binary is None:
        pytest.fail(
            "redis-server not found on PATH and REDIS_SERVER_BIN is not set; "
            "run scripts/ensure-redis.sh (or install redis-server) to run the Redis tests",
            pytrace=False,
        )
    return binary


def process_state(pid: int) -> str:
    """The one-letter state in /proc (R, S, T for stopped, Z, ...); "gone" when it exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return stat.rsplit(")", 1)[1].split()[0]


class RedisServer:
    """One `redis-server` on a loopback port with a data directory of its own, without
    periodic persistence: its data survives a restart only through `shutdown(save=True)`."""

    def __init__(self, binary: str, workdir: Path | None = None) -> None:
        self.binary = binary
        self.port = 0
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._temp = tempfile.TemporaryDirectory(prefix="redis-test-")
            workdir = Path(self._temp.name)
        self.workdir = workdir
        self.log = workdir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._process is not None, "redis-server is not running"
        return self._process.pid

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self, **extra: str) -> None:
        """Start on a free port (a few tries: the port may be taken between probing and
        binding), or, once started before, on the same port again."""
        errors: list[str] = []
        # A cluster node's bus port is 10,000 above its own (so its own is at most 55535).
        cluster = extra.get("cluster-enabled") == "yes"
        for _ in range(1 if self.port else 3):
            port = self.port or (
                free_port(highest=55535, also_free=10000) if cluster else free_port()
            )
            error = self._start_on(port, extra)
            if error is None:
                self.port = port
                return
            errors.append(error)
        raise RuntimeError("redis-server did not start:\n" + "\n".join(errors))

    def _start_on(self, port: int, extra: dict[str, str]) -> str | None:
        options = {
            "port": str(port),
            "bind": "127.0.0.1",
            "dir": str(self.workdir),
            "save": "",
            "appendonly": "no",
            **extra,
        }
        argv = [self.binary]
        for name, value in options.items():
            argv += [f"--{name}", value]
        with self.log.open("ab") as sink:
            process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        self._process = process
        probe = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)

        def answers() -> bool:
            if process.poll() is not None:
                return True
            try:
                return bool(probe.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(answers, START_SECONDS, f"redis-server answering PING on port {port}")
        except AssertionError as exc:
            self.stop()
            return str(exc)
        finally:
            probe.close()
        if process.poll() is not None:
            self._process = None
            return self.log.read_text(errors="replace")
        return None

    def shutdown(self, *, save: bool) -> None:
        """SHUTDOWN SAVE (the data is written to dump.rdb, a restart loads it) or NOSAVE.

        Sent on a raw socket: a client library would retry the command it saw cut off
        (the server closing the connection is the answer), for seconds."""
        process = self._process
        assert process is not None
        command = b"SAVE" if save else b"NOSAVE"
        with socket.create_connection(("127.0.0.1", self.port), timeout=EXIT_SECONDS) as conn:
            conn.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$%d\r\n%s\r\n" % (len(command), command))
            reply = b""
            with contextlib.suppress(ConnectionResetError):
                reply = conn.recv(1024)  # b"" once the server exited; an error reply otherwise
        assert not reply, f"SHUTDOWN {command.decode()} refused: {reply!r}"
        process.wait(EXIT_SECONDS)
        self._process = None
        if not save:
            (self.workdir / "dump.rdb").unlink(missing_ok=True)

    def pause(self) -> None:
        """SIGSTOP, returning once the kernel shows it stopped."""
        os.kill(self.pid, signal.SIGSTOP)
        wait_until(lambda: process_state(self.pid) in ("T", "t"), START_SECONDS, "SIGSTOP")

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        wait_until(lambda: process_state(self.pid) not in ("T", "t"), START_SECONDS, "SIGCONT")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a paused server cannot exit
        process.terminate()
        try:
            process.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(EXIT_SECONDS)

    def close(self) -> None:
        self.stop()
        if self._temp is not None:
            self._temp.cleanup()


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
            wait_until(
                lambda: all(_cluster_ready(client, len(clients)) for client in clients),
                START_SECONDS,
                "the test Redis Cluster's nodes agreeing (gossip)",
            )
        finally:
            for client in clients:
                client.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()


class _Servers(Protocol):
    def start(self) -> None: ...
    def close(self) -> None: ...


_S = TypeVar("_S", bound=_Servers)


@contextmanager
def running(servers: _S) -> Iterator[_S]:
    """`servers` started, and closed at the end (also when they failed to start)."""
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


def _cluster_ready(client: redis.Redis, masters: int) -> bool:
    fields = client.cluster("INFO")  # redis-py parses the reply into a dict
    return fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(masters)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session (tests use key prefixes of their own)."""
    with running(RedisServer(require_redis_server())) as server:
        yield server


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client of the test's own on the shared redis-server (to look behind the store)."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    with running(RedisClusterServers(require_redis_server())) as cluster:
        yield cluster


async def age_keys(url: str, prefix: str, seconds: float) -> None:
    """Move time forward for the keys under `prefix`, as Redis sees it: `seconds` come off
    every TTL, and a key whose TTL runs out is deleted, as Redis would expire it. Redis
    expires keys on its own clock, which a test cannot inject; this stands in for sleeping."""
    plain = cluster_url(url)
    client: Any = aioredis.RedisCluster.from_url(plain) if plain else aioredis.Redis.from_url(url)
    lapse = round(seconds * 1000)
    try:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            remaining = int(await client.pttl(key))
            if remaining < 0:  # no TTL (or gone meanwhile)
                continue
            if remaining <= lapse:
                await client.delete(key)
            else:
                await client.pexpire(key, remaining - lapse)
    finally:
        await client.aclose()
