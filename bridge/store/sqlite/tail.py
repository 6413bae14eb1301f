"""The SQLite store's tail cache: the newest entries of each open log this process writes,
as committed, so followers of a running generation read them from memory instead of
hopping to the reader thread and SQLite on every wake-up.

The writer thread posts each change to the event loop right after its commit, in commit
order, so a tail is always a committed, gap-free run of a log's entries. Anything it does
not cover (older entries, a log written before a restart, an ended log) is read from
SQLite. All methods run on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.store.base import LogEntry

_Key = tuple[str, str]  # (chat_id, generation_id)

TAIL_ENTRIES = 1024
"""Entries kept per log (a follower further behind reads from SQLite)."""


@dataclass
class _Tail:
    base: int
    """Offset of entries[0]."""
    entries: list[bytes]
    expires_at: float

    @property
    def next_offset(self) -> int:
        return self.base + len(self.entries)


class TailCache:
    def __init__(self) -> None:
        self._tails: dict[_Key, _Tail] = {}

    def begun(self, key: _Key, start_chunk: bytes, expires_at: float) -> None:
        self._tails[key] = _Tail(0, [start_chunk], expires_at)

    def appended(
        self, key: _Key, first_offset: int, chunks: list[bytes], expires_at: float
    ) -> None:
        tail = self._tails.get(key)
        if tail is None or tail.next_offset != first_offset:
            # First append this store sees (a log begun before a restart, or taken over):
            # the tail starts here.
            self._tails[key] = _Tail(first_offset, list(chunks), expires_at)
            return
        tail.entries += chunks
        tail.expires_at = expires_at
        if len(tail.entries) >= 2 * TAIL_ENTRIES:  # trim now and then, not on every append
            dropped = len(tail.entries) - TAIL_ENTRIES
            del tail.entries[:dropped]
            tail.base += dropped

    def ended(self, key: _Key) -> None:
        # Readers learn the outcome from SQLite (once); an ended log is no longer tailed.
        self._tails.pop(key, None)

    def read(self, key: _Key, start: int, limit: int, now: float) -> list[LogEntry] | None:
        """Entries from `start` (at most `limit`), or None when the cache cannot answer: the
        caller then reads SQLite (which also knows whether the log still exists)."""
        tail = self._tails.get(key)
        if tail is None:
            return None
        if tail.expires_at <= now:
            del self._tails[key]
            return None
        if start < tail.base:
            return None
        index = start - tail.base
        return [
            LogEntry(start + i, data) for i, data in enumerate(tail.entries[index : index + limit])
        ]

    def drop_expired(self, now: float) -> None:
        for key in [k for k, tail in self._tails.items() if tail.expires_at <= now]:
            del self._tails[key]

    def drop_chat(self, chat_id: str) -> None:
        for key in [k for k in self._tails if k[0] == chat_id]:
            del self._tails[key]

    def clear(self) -> None:
        self._tails.clear()
