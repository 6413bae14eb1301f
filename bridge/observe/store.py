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
        target = getattr(self._inner, name)
        if name in _UNTIMED or name.startswith("_") or not callable(target):
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

        return timed


def measured(store: SessionStore, metrics: Metrics) -> SessionStore:
    return cast("SessionStore", MeasuredStore(store, metrics))
