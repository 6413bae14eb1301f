"""Limits, each a setting with a safe default (README, "Security model").

In memory and per process: with several processes behind a balancer each process counts
on its own (a user's effective limit is the per-process one times the processes it hits).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from bridge.errors import LimitExceeded, PayloadTooLarge
from bridge.settings import Settings

if TYPE_CHECKING:
    from bridge.generation.plan import Generation

# Buckets of users idle this long are dropped (their bucket is full again anyway).
_SWEEP_EVERY = 1024


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per user: `per_minute` requests, refilled evenly over a minute."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._buckets: dict[str, _Bucket] = {}
        self._calls = 0

    def check(self, user: str, cost: float = 1.0) -> None:
        if self._per_minute <= 0:
            return
        now = time.monotonic()
        rate = self._per_minute / 60.0
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = _Bucket(float(self._per_minute), now)
        bucket.tokens = min(float(self._per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        self._calls += 1
        if self._calls % _SWEEP_EVERY == 0:
            self._sweep(now)
        if bucket.tokens < cost:
            raise LimitExceeded(
                f"too many requests: at most {self._per_minute} per minute",
                retry_after=(cost - bucket.tokens) / rate,
            )
        bucket.tokens -= cost

    def _sweep(self, now: float) -> None:
        idle = 60.0
        for user in [u for u, b in self._buckets.items() if now - b.updated > idle]:
            del self._buckets[user]


@dataclass(eq=False, slots=True)
class GenerationSlot:
    """One generation counted against its user and the process, from the reservation
    until the generation's end."""

    generation: Generation | None = None
    released: bool = False

    @property
    def alive(self) -> bool:
        if self.released:
            return False
        return self.generation is None or not self.generation.done.is_set()


@dataclass(slots=True)
class GenerationSlots:
    per_user: int
    total: int
    _by_user: dict[str, list[GenerationSlot]] = field(default_factory=dict)

    def _alive(self, user: str) -> list[GenerationSlot]:
        slots = [slot for slot in self._by_user.get(user, []) if slot.alive]
        if slots:
            self._by_user[user] = slots
        else:
            self._by_user.pop(user, None)
        return slots

    def running(self) -> int:
        return sum(len(self._alive(user)) for user in list(self._by_user))

    @contextmanager
    def reserve(self, user: str) -> Iterator[GenerationSlot]:
        """A slot for a generation about to start; released if it does not start."""
        mine = self._alive(user)
        if self.per_user > 0 and len(mine) >= self.per_user:
            raise LimitExceeded(
                f"you have {len(mine)} generations running (at most {self.per_user}); "
                "wait for one to end",
                retry_after=5,
                code="too_many_generations",
            )
        if self.total > 0 and self.running() >= self.total:
            raise LimitExceeded(
                "the server is running as many generations as it may; try again shortly",
                retry_after=5,
                code="server_busy",
            )
        slot = GenerationSlot()
        self._by_user.setdefault(user, []).append(slot)
        try:
            yield slot
        except BaseException:
            slot.released = True
            raise
        if slot.generation is None:
            slot.released = True


class UserSlots:
    """Things a user holds at once (sockets, readers), counted while held; the per-user
    map only holds users with something open."""

    def __init__(self, per_user: int, what: str, code: str) -> None:
        self._per_user = per_user
        self._what = what
        self._code = code
        self._open: dict[str, int] = {}

    def held(self, user: str) -> int:
        return self._open.get(user, 0)

    @contextmanager
    def hold(self, user: str) -> Iterator[None]:
        count = self._open.get(user, 0)
        if self._per_user > 0 and count >= self._per_user:
            raise LimitExceeded(
                f"too many {self._what} open for this user (at most {self._per_user})",
                retry_after=5,
                code=self._code,
            )
        self._open[user] = count + 1
        try:
            yield
        finally:
            left = self._open.get(user, 1) - 1
            if left > 0:
                self._open[user] = left
            else:
                self._open.pop(user, None)


class Limits:
    def __init__(self, settings: Settings) -> None:
        self.requests = RateLimiter(settings.bridge_rate_limit_per_minute)
        self.generations = GenerationSlots(
            settings.bridge_max_generations_per_user, settings.bridge_max_generations
        )
        self.sockets = UserSlots(
            settings.bridge_max_sockets_per_user, "sockets", "too_many_sockets"
        )
        # Streams, live tails and long-polls: each holds a reader of a log or a feed.
        self.readers = UserSlots(
            settings.bridge_max_readers_per_user, "readers", "too_many_readers"
        )


def check_history_size(history: Sequence[Mapping[str, Any]], settings: Settings) -> None:
    """A turn whose history (its messages dumped, as they are stored) would pass the chat's
    limits is refused (413). The size is that of the history's JSON as stored, the size
    `check_stored_history_size` reads before the next turn parses it."""
    if len(history) > settings.bridge_max_history_messages:
        raise PayloadTooLarge(
            f"the chat's history would have {len(history)} messages "
            f"(at most {settings.bridge_max_history_messages}); start a new chat"
        )
    if len(orjson.dumps(history)) > settings.bridge_max_history_bytes:
        raise PayloadTooLarge(
            f"the chat's history would be larger than {settings.bridge_max_history_bytes} "
            "bytes; start a new chat"
        )


def check_stored_history_size(size: int, settings: Settings) -> None:
    """A stored history larger than the limit (the limit lowered since, or a history grown
    another way) is refused before anything parses it (413): its parse alone would cost the
    event loop time in proportion to it."""
    if size > settings.bridge_max_history_bytes:
        raise PayloadTooLarge(
            f"the chat's history is larger than {settings.bridge_max_history_bytes} bytes; "
            "start a new chat"
        )


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


POLL_COST = 0.1
"""What a long-poll page counts against the request rate: a poller following a fast answer
asks many times a second, each answer a cheap read."""
