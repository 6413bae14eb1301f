"""A real store (MemoryStore or RedisStore) behind a wrapper that injects faults on chosen
calls: raise before the call, raise after it took effect (a reply lost with the
connection), or run a hook before it (to interleave another request)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import StoreError
from bridge.store.base import SessionStore

Hook = Callable[[], Awaitable[None]]


@dataclass
class _Fault:
    method: str
    times: int
    after: bool
    error: type[Exception]


@dataclass
class FaultyStore:
    """Every `SessionStore` method of `inner`, with the faults planned by `fail`/`before`."""

    inner: SessionStore
    faults: list[_Fault] = field(default_factory=list)
    hooks: dict[str, Hook] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    observer: Callable[[str, tuple[Any, ...]], None] | None = None
    """Called after every call that returned normally, with the method and its arguments."""

    def fail(
        self,
        method: str,
        *,
        times: int = 1,
        after: bool = False,
        error: type[Exception] = StoreError,
    ) -> None:
        """The next `times` calls of `method` raise `error` (with `after`: once the call
        took effect, like a reply lost with its connection). times=-1: every call."""
        self.faults.append(_Fault(method, times, after, error))

    def before(self, method: str, hook: Hook) -> None:
        """Run `hook` once, before the next call of `method` (then forget it)."""
        self.hooks[method] = hook

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            hook = self.hooks.pop(name, None)
            if hook is not None:
                await hook()
            fault = next((f for f in self.faults if f.method == name and f.times != 0), None)
            if fault is not None and fault.times > 0:
                fault.times -= 1
            if fault is not None and not fault.after:
                raise fault.error(f"injected fault on {name}")
            result = await target(*args, **kwargs)
            if fault is not None:
                raise fault.error(f"injected fault after {name}")
            if self.observer is not None:
                self.observer(name, args)
            return result

        return call
