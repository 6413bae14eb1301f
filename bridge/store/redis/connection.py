"""The Redis store's connections: the command client (one server or a Redis Cluster), the
admission that bounds commands in flight, the mapping of redis-py's exceptions to
`StoreError`, and the client the subscription runs on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bridge.store.base import StoreError

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """How the store talks to Redis: explicit, never the client library's defaults (which
    changed between redis-py 5 and 8: 8 puts a 5 s socket timeout on every read)."""

    socket_timeout: float = 10.0
    """Longest wait for a reply to a command. No command of the store blocks on the server
    (the live tail is pub/sub driven), so this bounds a dead connection, not a quiet log."""
    connect_timeout: float = 5.0
    health_check_interval: float = 15.0
    """A connection idle for this long is PINGed before reuse (a NAT may have dropped it)."""
    max_connections: int = 7
    """Command connections per process (per node in a cluster)."""
    pool_timeout: float = 30.0
    """A command waits this long for a free connection (backpressure), then fails."""


def cluster_url(url: str) -> str | None:
    """The plain URL of a `redis+cluster://` (or `rediss+cluster://`) URL, else None."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    return f"{plain}{sep}{rest}" if plain and sep else None


class Connection:
    """The command client of one store, and the admission every command passes."""

    def __init__(self, url: str, options: RedisOptions) -> None:
        self.options = options
        common: dict[str, Any] = {
            "socket_timeout": options.socket_timeout,
            "socket_connect_timeout": options.connect_timeout,
            "socket_keepalive": True,
            "health_check_interval": options.health_check_interval,
        }
        self._common = common
        plain = cluster_url(url)
        self.cluster = plain is not None
        self.redis: Any
        if plain is not None:
            # The cluster client keeps its own retries: they follow failovers and slot moves,
            # and every script of the store tolerates a second run (offsets, epochs).
            self.redis = RedisCluster.from_url(
                plain, max_connections=options.max_connections, **common
            )
            self._url = plain
        else:
            # No retries: a command whose reply was lost is retried by the caller that
            # knows whether it is idempotent (the writer's appends are).
            self.redis = Redis.from_pool(
                BlockingConnectionPool.from_url(
                    url,
                    max_connections=options.max_connections,
                    timeout=options.pool_timeout,
                    retry=Retry(NoBackoff(), 0),
                    **common,
                )
            )
            self._url = url
        # The cluster client refuses a command at once when a node's pool is full; this
        # makes it wait instead (and caps the single-server pool the same way).
        self._admission = asyncio.Semaphore(options.max_connections)
        self._node_turn = 0

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Admission (wait for a connection, up to the pool timeout) and the mapping of
        redis-py's exceptions to StoreError: nothing of the client library leaks out."""
        try:
            async with asyncio.timeout(self.options.pool_timeout):
                await self._admission.acquire()
        except TimeoutError:
            raise StoreError(
                f"no Redis connection free within {self.options.pool_timeout} s"
            ) from None
        try:
            yield
        except RedisError as exc:
            raise mapped(exc) from exc
        except OSError as exc:
            raise StoreError(f"Redis connection failed: {exc}") from exc
        finally:
            self._admission.release()

    def subscriber(self) -> Redis:
        """A client of its own for the subscription (one connection, outside the command
        pool, no reply deadline: it waits for messages). In a cluster any node will do:
        plain PUBLISH reaches every node, and each new client tries the next node."""
        if not self.cluster:
            return Redis.from_url(self._url, **{**self._common, "socket_timeout": None})
        nodes = self.redis.get_nodes()
        node = nodes[self._node_turn % len(nodes)]
        self._node_turn += 1
        return Redis(host=node.host, port=node.port, **{**self._common, "socket_timeout": None})

    async def aclose(self) -> None:
        await self.redis.aclose()


def mapped(exc: Exception) -> StoreError:
    """A redis-py (or connection) failure as the store's error."""
    if isinstance(exc, StoreError):
        return exc
    return StoreError(f"Redis failed: {type(exc).__name__}: {exc}")
