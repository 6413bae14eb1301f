"""Fixtures of the chaos suite: a redis-server of each test's own and two bridge processes
sharing it (directly or through a TCP proxy that can cut their connections)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.bridge_process import BridgeProcess, start_bridges
from tests.support.proxy import TcpProxy
from tests.support.redis import RedisServer, require_redis_server, running

LEASE_SECONDS = 2
HEARTBEAT_SECONDS = 1
TOKEN_DELAY_MS = 10
"""The demo model's long answer (~400 tokens) then takes ~5 s: time to hurt it mid-text."""


@dataclass
class Cluster:
    redis: RedisServer
    bridges: list[BridgeProcess]
    tool_record: Path
    proxy: TcpProxy | None = None
    extra: list[BridgeProcess] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [bridge.url for bridge in self.bridges]

    def tool_events(self, tool_name: str) -> list[str]:
        """ "start"/"end" per run of `tool_name`, in order, from every process."""
        if not self.tool_record.exists():
            return []
        lines = self.tool_record.read_text().splitlines()
        return [line.split()[0] for line in lines if line.split()[1] == tool_name]


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisServer]:
    binary = require_redis_server()
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with running(RedisServer(binary, workdir)) as server:
        yield server


@pytest.fixture
def make_cluster(redis_process: RedisServer, tmp_path: Path) -> Iterator[ClusterFactory]:
    """`make_cluster(via_proxy=False, **settings)`: two bridges (`a` produces, `b`
    survives) on the test's redis-server; `settings` are extra environment variables."""
    made: list[Cluster] = []

    def make(*, via_proxy: bool = False, **settings: str) -> Cluster:
        proxy = TcpProxy(redis_process.port).start() if via_proxy else None
        record = tmp_path / "tool-runs.txt"
        environment = {
            "BRIDGE_MODEL": "demo:scripted",
            # The readers apply `reset-step` as ai 7 does (tests/chaos/readers.py).
            "BRIDGE_CLIENT_LEVEL": "7",
            "BRIDGE_DEMO_TOKEN_DELAY_MS": str(TOKEN_DELAY_MS),
            "REDIS_URL": proxy.url if proxy else redis_process.url,
            "BRIDGE_KEY_PREFIX": "chaos",
            "BRIDGE_LEASE_SECONDS": str(LEASE_SECONDS),
            "BRIDGE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "BRIDGE_TAKEOVER_SWEEP_SECONDS": "1",
            "BRIDGE_TOOLS": "tests.chaos.tools",
            "CHAOS_TOOL_RECORD": str(record),
            **settings,
        }
        bridges = [BridgeProcess(environment, name=name, workdir=tmp_path) for name in ("a", "b")]
        cluster = Cluster(redis_process, bridges, record, proxy)
        made.append(cluster)
        start_bridges(bridges)
        return cluster

    yield make
    for cluster in made:
        for bridge in cluster.bridges:
            bridge.close()
            # Shown by pytest only when the test failed: what each process said.
            print(f"----- bridge {bridge.name} (port {bridge.port}, log {bridge.log}) -----")
            print(bridge.digest())
        if cluster.proxy is not None:
            print(
                f"----- proxy: {cluster.proxy.connections} connections, "
                f"{cluster.proxy.cuts} cut -----"
            )
            cluster.proxy.stop()
