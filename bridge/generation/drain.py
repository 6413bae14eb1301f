"""Draining on SIGTERM: stop taking generations, let running ones end, hand the rest over.

The server's own SIGTERM handling (uvicorn: stop accepting connections, wait for open
ones, then run the lifespan's exit) would wait on every streaming reader and only then
tell the application. So the application takes SIGTERM first: it flips to draining at
once (new generations get 503 with `Retry-After`, `/healthz` answers 503), lets running
generations go on for up to `BRIDGE_DRAIN_SECONDS`, hands the rest over (flushed, lease
released) and ends its readers, and only then passes the signal on to the server, which
then shuts down with no long-lived connection left.

Signals can only be taken in the main thread; elsewhere (an app served from a thread, as
in tests) the lifespan's exit drains with no wait at all.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from bridge.generation.runner import GenerationRunner

logger = logging.getLogger("bridge.generation.drain")

_Handler = Callable[[int, FrameType | None], Any]


class Drain:
    def __init__(self, runner: GenerationRunner, seconds: float) -> None:
        self._runner = runner
        self._seconds = seconds
        self._previous: _Handler | int | None = None
        self._installed = False
        self._signalled = False
        self._finished = anyio.Event()
        self._running = False

    def install(self, group: TaskGroup) -> None:
        """Take SIGTERM (when in the main thread); the drain runs in `group`."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        loop = asyncio.get_running_loop()

        def on_sigterm() -> None:
            if self._signalled:
                self._pass_on()  # a second SIGTERM: stop waiting
                return
            self._signalled = True
            self._runner.accepting = False  # at once, before the drain task runs
            signalled.set()

        async def drain_on_signal() -> None:
            await signalled.wait()
            logger.warning(
                "SIGTERM: draining (new generations refused, running ones have %.0f s)",
                self._seconds,
            )
            await self.run()
            self._pass_on()

        signalled = asyncio.Event()
        group.start_soon(drain_on_signal)
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        self._previous = previous
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        self._installed = False

    async def run(self) -> None:
        """Drain once: with the full wait after SIGTERM, at once otherwise (the server is
        stopping for another reason, or the signal's drain finished already)."""
        if self._running:
            await self._finished.wait()
            return
        self._running = True
        try:
            await self._runner.drain(self._seconds if self._signalled else 0)
        finally:
            self._finished.set()

    def _pass_on(self) -> None:
        previous = self._previous
        if callable(previous):
            previous(signal.SIGTERM, None)
        else:
            self.uninstall()
            signal.raise_signal(signal.SIGTERM)
