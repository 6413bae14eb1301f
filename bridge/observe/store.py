"""Store operations timed and their failures counted (`bridge_store_operation_seconds`,
`bridge_store_errors_total`), by operation: a thin proxy in front of any `SessionStore`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from bridge.errors import StoreError
from bridge.observe.metrics import Metrics
from bridge.store.base import SessionStore

# Waits, not operations: timing them would only measure how long nothing happened.
_UNTIMED = frozenset({"watch_logs", "wait_for_stop", "read_steering", "read_generations"})


class MeasuredStore:
    def __init__(self, inner: SessionStore, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        # Only reached on a first access: the method made here is kept on the proxy, as
        # store calls are made per chunk and building them each time showed in profiles.
        target = getattr(self._inner, name)
        if not callable(target):
            return target  # a value, read from the store each time
        if name in _UNTIMED or name.startswith("_"):
            setattr(self, name, target)
            return target
        latency = self._metrics.store_latency.labels(name)
        errors = self._metrics.store_errors.labels(name)
        call = cast("Callable[..., Awaitable[Any]]", target)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            except StoreError:
                errors.inc()
                raise
            finally:
                latency.observe(time.perf_counter() - started)

        setattr(self, name, timed)
        return timed


def measured(store: SessionStore, metrics: Metrics) -> SessionStore:
    return cast("SessionStore", MeasuredStore(store, metrics))
