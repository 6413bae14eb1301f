"""The Redis store's one pub/sub subscription per process, and the waiters it wakes.

It carries three channels: stops (`{prefix}:stop`, naming the stop key), log changes
(`{prefix}:logs`, one notice line per log that got entries) and steering/feed pushes
(`{prefix}:steer`, naming the stream). The process-wide reader hub (bridge/log/hub.py),
waiting reads, stop waits and steering/feed waits all learn of changes here and fetch them
with range reads, so no connection ever blocks on a quiet log and the number of connections
does not grow with readers. Plain PUBLISH (not the sharded kind) reaches every node of a
cluster, so one subscription per process works there too, where a multi-key XREAD would be
refused (CROSSSLOT).

A waiter re-checks its key or stream only while subscribed, after clearing its event: a
change published later wakes it, one published earlier is already stored. Every
(re)subscription wakes every waiter to re-check, so a change published while nobody
listened is still found.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from bridge.store.base import LogListener
from bridge.store.redis.connection import Connection
from bridge.store.redis.keys import Keys, parse_notice

logger = logging.getLogger(__name__)

_RECONNECT_MAX_SECONDS = 5.0


class StopWaiter:
    """One `wait_for_stop`: its event, and whether a published stop named its key."""

    __slots__ = ("event", "stopped")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.stopped = False


class Subscription:
    """The subscription's task (started on first use, re-established with backoff, health
    checked) and the registries of everyone it wakes."""

    def __init__(self, connection: Connection, keys: Keys) -> None:
        self._connection = connection
        self._keys = keys
        self._stop_waiters: dict[bytes, set[StopWaiter]] = {}
        self._log_waiters: dict[tuple[str, str], set[asyncio.Event]] = {}
        self._stream_waiters: dict[bytes, set[asyncio.Event]] = {}
        self._log_listeners: set[LogListener] = set()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = False
        """All three channels are subscribed: a waiter's re-check now cannot miss a change."""
        self.closed = False

    # --- registration ------------------------------------------------------------------

    @contextmanager
    def stop_waiter(self, stop_key: str) -> Iterator[StopWaiter]:
        waiter = StopWaiter()
        with self._registered(self._stop_waiters, stop_key.encode(), waiter):
            yield waiter

    @contextmanager
    def log_waiter(self, chat_id: str, generation_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        with self._registered(self._log_waiters, (chat_id, generation_id), event):
            yield event

    @contextmanager
    def stream_waiter(self, stream_key: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        with self._registered(self._stream_waiters, stream_key.encode(), event):
            yield event

    @contextmanager
    def log_listener(self, listener: LogListener) -> Iterator[None]:
        self._log_listeners.add(listener)
        self._ensure_started()
        try:
            yield
        finally:
            self._log_listeners.discard(listener)

    @contextmanager
    def _registered(self, registry: dict[Any, set[Any]], key: Any, waiter: Any) -> Iterator[None]:
        group = registry.setdefault(key, set())
        group.add(waiter)
        self._ensure_started()
        try:
            yield
        finally:
            group.discard(waiter)
            if not group and registry.get(key) is group:
                del registry[key]

    def _ensure_started(self) -> None:
        if self._task is None and not self.closed:
            self._task = asyncio.create_task(self._listen(), name="redis-listener")

    async def close(self) -> None:
        """Stop listening and wake every waiter (each sees `closed` and returns)."""
        self.closed = True
        self._wake_stop_waiters(None)
        _wake(self._log_waiters.values())
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None
        _wake(self._stream_waiters.values())

    # --- the subscription --------------------------------------------------------------

    async def _listen(self) -> None:
        delay = 0.1
        keys = self._keys
        channels = (keys.stop_channel, keys.log_channel, keys.steer_channel)
        log_channel, steer_channel = channels[1].encode(), channels[2].encode()
        while not self.closed:
            client = self._connection.subscriber()
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(*channels)
                    subscriptions = 0
                    async for message in self._messages(pubsub):
                        kind = message["type"]
                        if kind == "subscribe":
                            subscriptions += 1
                            if subscriptions == len(channels):
                                self.subscribed = True
                                delay = 0.1
                                self._resubscribed()
                        elif kind == "message":
                            channel = message["channel"]
                            if channel == log_channel:
                                self._log_changed(message["data"])
                            elif channel == steer_channel:
                                _wake([self._stream_waiters.get(bytes(message["data"]), set())])
                            else:
                                self._wake_stop_waiters(message["data"])
            except Exception:
                logger.warning("Redis listener lost its subscription", exc_info=True)
            finally:
                self.subscribed = False
                await client.aclose()
            # Backoff between reconnection attempts, not a polling loop: changes made in the
            # meantime are found when the waiters re-check on resubscription.
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)

    async def _messages(self, pubsub: Any) -> AsyncIterator[dict[str, Any]]:
        """The subscription's messages. A subscription that stays silent is PINGed every
        health-check interval, and dropped (to be re-established) when not even the PONG
        came back: a connection a NAT silently forgot would otherwise lose every
        notification from then on."""
        interval = self._connection.options.health_check_interval or 15.0
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=interval)
            if message is not None:
                heard = loop.time()
                yield message
                continue
            if loop.time() - heard > 2 * interval:
                raise ConnectionError("the Redis subscription went silent")
            await pubsub.ping()

    # --- waking ------------------------------------------------------------------------

    def _resubscribed(self) -> None:
        """Everyone re-checks: a change published while nobody listened is still found."""
        self._wake_stop_waiters(None)
        _wake(self._log_waiters.values())
        for listener in list(self._log_listeners):
            listener.resync()
        _wake(self._stream_waiters.values())

    def _log_changed(self, data: bytes) -> None:
        for line in data.split(b"\n"):  # a batch of appends publishes one line per log
            notice = parse_notice(line)
            if notice is None:
                continue
            chat_id, generation_id, offset = notice
            for event in self._log_waiters.get((chat_id, generation_id), ()):
                event.set()
            for listener in self._log_listeners:
                listener.log_changed(chat_id, generation_id, offset)

    def _wake_stop_waiters(self, stop_key: bytes | None) -> None:
        """Wake the waiters of one stop key (a stop was published) or, with None, all of
        them so they re-check their keys (resubscribed, or closing)."""
        if stop_key is None:
            for waiters in self._stop_waiters.values():
                for waiter in waiters:
                    waiter.event.set()
            return
        for waiter in self._stop_waiters.get(stop_key, ()):
            waiter.stopped = True
            waiter.event.set()


def _wake(groups: Iterable[Iterable[asyncio.Event]]) -> None:
    for group in groups:
        for event in group:
            event.set()
