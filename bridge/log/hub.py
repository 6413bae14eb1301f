"""The process-wide reader of generation logs: one tail per followed log, fanned out to
every local reader of that log.

    store's log-change notifications (one subscription per process) --\
    this process's writer: acknowledged entries, from memory ---------- > Tail --> readers
    heartbeat probes (one per log per heartbeat, shared by its readers) /

A tail learns that its log moved either from the local writer (the entries themselves,
no store read at all) or from a notification (then ONE range read, shared by all its
readers). Each reader has a bounded queue. A reader whose queue is full (a client that
stopped reading) is detached: its queue is dropped and it catches up with range reads at
its own pace (`bridge/log/reader.py`), so it never blocks the others and never grows the
process's memory. Readers check offsets themselves (skip what they hold, catch up over a
gap), so the queues are a fast path, never the source of truth: the log is.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from bridge.errors import StoreError
from bridge.store.base import LogEntry, Outcome, SessionStore

logger = logging.getLogger("bridge.hub")

RESUBSCRIBE_FIRST_PAUSE = 0.5
RESUBSCRIBE_MAX_PAUSE = 10.0
"""Back-off between attempts to subscribe again after the subscription failed."""

_Key = tuple[str, str]
Fetch = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class EndOfLog:
    """The end marker, at `offset` (one past the last chunk)."""

    offset: int
    outcome: Outcome


class Detached:
    """The reader fell behind and its queue was dropped: catch up with range reads."""


DETACHED = Detached()
QueueItem = list[LogEntry] | EndOfLog


class HandedOver(Exception):
    """Raised to a reader when its process handed its generations over (drain): the
    transport ends the response WITHOUT its end-of-stream mark (no `[DONE]`, no `end`
    frame), so the client knows the answer is not complete and resumes elsewhere."""


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Subscription:
    """One reader's view of a tail: a bounded queue of what the tail learned."""

    def __init__(self, tail: Tail, limit: int) -> None:
        self.tail = tail
        self._limit = limit
        self._items: deque[QueueItem] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self.detached = False
        self.position = -1
        """The offset the reader holds (the tail reads from the lowest while it does not
        know its own position yet)."""

    def push(self, item: QueueItem) -> None:
        if self.detached:
            return
        size = len(item) if isinstance(item, list) else 1
        if self._size + size > self._limit:
            self.detached = True
            self._items.clear()
            self._size = 0
        else:
            self._items.append(item)
            self._size += size
        self.wake()

    def detach(self) -> None:
        """Drop the queue: the reader catches up with range reads."""
        self.detached = True
        self._items.clear()
        self._size = 0
        self.wake()

    def wake(self) -> None:
        if self._waiter is not None:
            _wake(self._waiter)

    def reattach(self) -> None:
        """Join live fan-out again (before the range read that catches up, so nothing
        pushed after that read can be missed)."""
        self.detached = False
        self._items.clear()
        self._size = 0

    async def next(self, patience: float) -> QueueItem | Detached | None:
        """The next item; DETACHED when the queue overflowed; None after `patience` s.
        Raises HandedOver once the process handed its generations over."""
        if not self._items and not self.detached:
            self.tail.hub.check_handed_over()
            # A future and one timer rather than a timeout scope: this wait happens once
            # per chunk per reader, and the scope's bookkeeping was a visible share of
            # the process's CPU at paced rates.
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(patience, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            self.tail.hub.check_handed_over()
            if not self._items and not self.detached:
                return None
        if self.detached:
            return DETACHED
        item = self._items.popleft()
        self._size -= len(item) if isinstance(item, list) else 1
        return item


class Tail:
    """A followed log: its readers and how far the hub has fanned it out."""

    def __init__(self, hub: LogHub, chat_id: str, generation_id: str) -> None:
        self.hub = hub
        self.chat_id = chat_id
        self.generation_id = generation_id
        self.subscriptions: set[Subscription] = set()
        self.after: int | None = None
        """The last offset fanned out (None: not known yet, no reader caught up)."""
        self.ended = False
        self._fetch_lock = asyncio.Lock()
        self._fetch_wanted = False
        self._probe_lock = asyncio.Lock()
        self._probed_at = -1e18
        self._alive = True
        self.recover_lock = asyncio.Lock()

    def reached(self, offset: int) -> None:
        """A reader caught up to `offset` with its own range reads."""
        if self.after is None or offset > self.after:
            self.after = offset

    def fan_out(self, item: QueueItem) -> None:
        if isinstance(item, EndOfLog):
            self.ended = True
            self.after = max(self.after or -1, item.offset - 1)
        elif item:
            self.after = item[-1].offset
        for subscription in list(self.subscriptions):
            subscription.push(item)

    def want_fetch(self) -> None:
        if self._fetch_wanted or self.ended:
            return
        self._fetch_wanted = True
        self.hub.spawn(self._fetch_contained)

    async def _fetch_contained(self) -> None:
        """The shared read, in the hub's group. An unexpected failure (a store outage is a
        StoreError, handled in `fetch`) is this log's alone: logged, and its readers are
        detached to catch up with their own range reads; the hub and every other log, and
        the generations of the process, go on."""
        try:
            await self.fetch()
        except Exception:
            self._fetch_wanted = False
            logger.exception(
                "reading log %s failed; its readers catch up on their own", self.generation_id
            )
            for subscription in list(self.subscriptions):
                subscription.detach()

    async def fetch(self) -> None:
        """Read what follows `after` once, for every reader of the log."""
        async with self._fetch_lock:
            self._fetch_wanted = False
            while not self.ended and self.subscriptions:
                start = self.after
                if start is None:
                    start = min(s.position for s in self.subscriptions)
                try:
                    read = await self.hub.store.read(
                        self.chat_id, self.generation_id, start, limit=self.hub.batch
                    )
                except StoreError:
                    # Readers' heartbeat probes will try again; each reader also
                    # catches up on its own when it notices a gap.
                    logger.warning("could not read log %s", self.generation_id, exc_info=True)
                    return
                if read.entries:
                    self.fan_out(read.entries)
                if read.ended and read.outcome is not None:
                    last = read.entries[-1].offset if read.entries else start
                    self.fan_out(EndOfLog(last + 1, read.outcome))
                if len(read.entries) < self.hub.batch:
                    return

    async def probe(self, interval: float) -> bool:
        """Whether the producer is alive, after reading anything a lost notification
        left behind; one probe per `interval` for all readers of the log."""
        async with self._probe_lock:
            loop = asyncio.get_running_loop()
            if loop.time() - self._probed_at < interval:
                return self._alive
            await self.fetch()
            try:
                self._alive = self.ended or await self.hub.store.producer_alive(
                    self.chat_id, self.generation_id
                )
            except StoreError:
                # Cannot tell: a store hiccup must not end every stream of the process,
                # nor hand a live producer's generation over. Ask again next heartbeat.
                logger.warning("could not probe %s", self.generation_id, exc_info=True)
                return True
            self._probed_at = loop.time()
            return self._alive


class LogHub:
    """Process-wide: every log any reader of this process follows, tailed once.

    `run()` is one task owned by the application's lifespan; it holds the store's
    notification subscription and the task group of the shared range reads."""

    def __init__(self, store: SessionStore, *, queue_entries: int = 4096, batch: int = 512):
        self.store = store
        self.queue_entries = queue_entries
        self.batch = batch
        self._tails: dict[_Key, Tail] = {}
        self._local: set[_Key] = set()
        """Logs whose producer runs in this process: their entries come from the writer,
        their notifications are ignored."""
        self._group: anyio.abc.TaskGroup | None = None
        self._started = asyncio.Event()
        self._handed_over = False

    def hand_over(self) -> None:
        """Draining handed this process's generations over: every reader ends (raising
        HandedOver) so its client resumes on another process."""
        self._handed_over = True
        for tail in list(self._tails.values()):
            for subscription in list(tail.subscriptions):
                subscription.wake()

    def check_handed_over(self) -> None:
        if self._handed_over:
            raise HandedOver

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            self._group = group
            self._started.set()
            try:
                await self._watch()
            finally:
                self._group = None
                group.cancel_scope.cancel()

    async def _watch(self) -> None:
        """The store's log-change notifications for as long as the store is open. A failure
        of the subscription itself is logged and the watch begins again after a pause that
        doubles up to a limit: meanwhile every reader still catches up on its own (its
        quiet-heartbeat probe reads what a lost notification would have told it), so one
        broken subscription never ends the lifespan and every generation of the process."""
        pause = RESUBSCRIBE_FIRST_PAUSE
        while True:
            try:
                await self.store.watch_logs(self)
                return
            except Exception:
                logger.exception(
                    "the log-change subscription failed: subscribing again in %.1f s", pause
                )
            await anyio.sleep(pause)  # a back-off, not a wait for anything
            pause = min(pause * 2, RESUBSCRIBE_MAX_PAUSE)

    async def started(self) -> None:
        await self._started.wait()

    def spawn(self, fetch: Fetch) -> None:
        if self._group is not None:
            self._group.start_soon(fetch)

    @property
    def followed(self) -> int:
        """How many logs are followed now (for metrics and tests)."""
        return len(self._tails)

    @contextmanager
    def subscribe(self, chat_id: str, generation_id: str) -> Iterator[Subscription]:
        key = (chat_id, generation_id)
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tails[key] = Tail(self, chat_id, generation_id)
        subscription = Subscription(tail, self.queue_entries)
        tail.subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            tail.subscriptions.discard(subscription)
            if not tail.subscriptions and self._tails.get(key) is tail:
                del self._tails[key]

    # --- from the local writer: acknowledged by the store, fanned out from memory ------------

    def producing(self, chat_id: str, generation_id: str, local: bool) -> None:
        """The local writer opened (True) or let go of (False) this log."""
        if local:
            self._local.add((chat_id, generation_id))
        else:
            self._local.discard((chat_id, generation_id))

    def published(self, chat_id: str, generation_id: str, entries: list[LogEntry]) -> None:
        tail = self._tails.get((chat_id, generation_id))
        if tail is None or not entries or tail.ended:
            return
        if tail.after is None or entries[0].offset == tail.after + 1:
            tail.fan_out(entries)
        elif entries[-1].offset > tail.after:
            tail.want_fetch()  # a gap: read it once for everyone

    def ended(self, chat_id: str, generation_id: str, offset: int, outcome: Outcome) -> None:
        tail = self._tails.get((chat_id, generation_id))
        if tail is None or tail.ended:
            return
        if tail.after is None or offset == tail.after + 1:
            tail.fan_out(EndOfLog(offset, outcome))
        else:
            tail.want_fetch()

    # --- LogListener: changes made by any process ---------------------------------------------

    def log_changed(self, chat_id: str, generation_id: str, offset: int) -> None:
        key = (chat_id, generation_id)
        tail = self._tails.get(key)
        if tail is None or tail.ended or (tail.after is not None and offset <= tail.after):
            return  # not followed here, or fanned out already
        if key in self._local:
            return  # the local writer hands these entries over itself
        tail.want_fetch()

    def resync(self) -> None:
        for tail in list(self._tails.values()):
            tail.want_fetch()
