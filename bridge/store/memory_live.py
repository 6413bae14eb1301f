"""The live-session parts of `MemoryStore`: per-generation steering queues and per-chat
generation feeds, kept apart from the log so they can evolve on their own.

Both are append-only sequences numbered from 1, read with a cursor (never consumed), so a
reader that is cancelled mid-read loses nothing. Waiting readers sleep on an event that is
replaced at every append (the log's pattern), never in a polling loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.store.base import FEED_MAX_RECORDS

_SWEEP_SECONDS = 60.0
CLOSED_QUEUE_SECONDS = 300.0
"""How long a closed steering queue (and its refusal) is kept."""


@dataclass
class _Sequence:
    expires_at: float
    items: list[bytes] = field(default_factory=list)
    closed: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    """Items trimmed from the front (positions stay those of the whole sequence)."""

    def push(self, item: bytes, keep: int = 0) -> int:
        """Append; with `keep`, only the last `keep` items stay."""
        self.items.append(item)
        if keep and len(self.items) > keep:
            trimmed = len(self.items) - keep
            del self.items[:trimmed]
            self.dropped += trimmed
        self.changed.set()
        self.changed = asyncio.Event()
        return self.dropped + len(self.items)

    def after(self, position: int) -> list[tuple[int, bytes]]:
        start = max(position - self.dropped, 0)
        first = self.dropped + start
        return [(first + i + 1, item) for i, item in enumerate(self.items[start:])]


class MemoryLiveMixin:
    """Mixed into `MemoryStore`; uses its clock and TTLs."""

    _clock: Callable[[], float]
    _log_ttl: float
    _history_ttl: float
    _closed: bool

    def _live_sequences(self) -> dict[tuple[str, str, str], _Sequence]:
        # Created on first use so the store's constructor stays as it is; expired entries
        # are dropped at most once a minute, like the store's own sweep.
        sequences: dict[tuple[str, str, str], _Sequence] | None = getattr(
            self, "_live_sequence_map", None
        )
        now = self._clock()
        if sequences is None:
            sequences = {}
            self._live_sequence_map = sequences
            self._live_next_sweep = now + _SWEEP_SECONDS
        elif now >= self._live_next_sweep:
            self._live_next_sweep = now + _SWEEP_SECONDS
            for key in [k for k, s in sequences.items() if s.expires_at <= now]:
                del sequences[key]
        return sequences

    def _live_sequence(self, key: tuple[str, str, str], ttl: float) -> _Sequence:
        sequences = self._live_sequences()
        sequence = sequences.get(key)
        if sequence is not None and sequence.expires_at <= self._clock():
            del sequences[key]
            sequence = None
        if sequence is None:
            sequence = sequences[key] = _Sequence(self._clock() + ttl)
        return sequence

    async def _live_read(
        self, key: tuple[str, str, str], ttl: float, after: int, wait: float
    ) -> list[tuple[int, bytes]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            sequence = self._live_sequence(key, ttl)
            items = sequence.after(after)
            remaining = deadline - loop.time()
            if items or remaining <= 0 or self._closed:
                return items
            try:
                async with asyncio.timeout(remaining):
                    await sequence.changed.wait()
            except TimeoutError:
                return []

    def _drop_live(self, chat_id: str) -> None:
        """Forget the chat's steering queues and records and its feed (a deleted chat);
        readers waiting on them are woken and find nothing."""
        sequences = self._live_sequences()
        for key in [k for k in sequences if k[1] == chat_id]:
            sequences.pop(key).changed.set()

    async def push_steering(self, chat_id: str, generation_id: str, message: bytes) -> int | None:
        sequence = self._live_sequence(("steer", chat_id, generation_id), self._log_ttl)
        if sequence.closed:
            return None
        sequence.expires_at = self._clock() + self._log_ttl
        return sequence.push(message)

    async def read_steering(
        self, chat_id: str, generation_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._live_read(("steer", chat_id, generation_id), self._log_ttl, after, wait)

    async def close_steering(self, chat_id: str, generation_id: str) -> None:
        sequence = self._live_sequence(("steer", chat_id, generation_id), self._log_ttl)
        sequence.closed = True
        # Only the race of a push with the generation's end needs the mark: the steer
        # endpoint refuses ended generations before it pushes.
        sequence.expires_at = min(sequence.expires_at, self._clock() + CLOSED_QUEUE_SECONDS)

    async def put_steering_record(
        self, chat_id: str, steering_id: str, record: bytes, *, only_if_absent: bool = False
    ) -> bytes | None:
        sequence = self._live_sequence(("steer-record", chat_id, steering_id), self._log_ttl)
        if sequence.items and only_if_absent:
            return sequence.items[0]
        sequence.items[:] = [record]
        sequence.expires_at = self._clock() + self._log_ttl
        return None

    async def steering_record(self, chat_id: str, steering_id: str) -> bytes | None:
        key = ("steer-record", chat_id, steering_id)
        sequence = self._live_sequences().get(key)
        if sequence is None or sequence.expires_at <= self._clock() or not sequence.items:
            return None
        return sequence.items[0]

    async def announce_generation(self, chat_id: str, generation_id: str, record: bytes) -> int:
        # Capped, and kept as long as the logs it names (not the history's 30 days).
        sequence = self._live_sequence(("feed", chat_id, ""), self._log_ttl)
        sequence.expires_at = self._clock() + self._log_ttl
        return sequence.push(record, keep=FEED_MAX_RECORDS)

    async def read_generations(
        self, chat_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        return await self._live_read(("feed", chat_id, ""), self._log_ttl, after, wait)
