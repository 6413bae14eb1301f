"""`SQLiteStore`: the session store in one SQLite file, durable across restarts of a single
bridge process (the default when REDIS_URL is unset).

* The event loop never touches the file: writes run on one writer thread (one connection,
  one transaction per store call, so writes are serialised and each call is atomic), reads
  on a reader thread with its own connection (WAL: readers never wait for the writer).
* Durability: WAL with `synchronous=NORMAL` (default) or `FULL`. A committed append is in
  the OS when the call returns, so it survives the process being killed (SIGKILL, OOM);
  NORMAL may lose the last commits on an OS crash or power loss, FULL does not.
* Readers tail a log without polling the file: the producer is in this process, so after
  each commit the writer thread wakes the log's waiting readers through the event loop
  (`call_soon_threadsafe`), and they read the new entries from SQLite.
* One process per file (`ProcessLock`). Leases left in the file by an earlier process are
  dropped at start, so `open_generations()` lists its unfinished generations at once.
* Retention: the same TTLs as the other stores; expired rows are ignored immediately and
  deleted by a sweep that runs with a write at most once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import orjson

from bridge.errors import StoreError
from bridge.store.base import (
    Append,
    ChatState,
    ChatSummary,
    Claim,
    GenerationInfo,
    JSONDict,
    LogEntry,
    LogListener,
    LogRead,
    Outcome,
)
from bridge.store.memory_live import MemoryLiveMixin
from bridge.store.sqlite import steering
from bridge.store.sqlite.db import Reader, Synchronous, Writer, connect
from bridge.store.sqlite.file_lock import ProcessLock
from bridge.store.sqlite.rows import OpenGeneration
from bridge.store.sqlite.tail import TailCache

logger = logging.getLogger("bridge.store.sqlite.store")

DATABASE_FILE = "bridge.sqlite3"

_T = TypeVar("_T")
_Key = tuple[str, str]  # (chat_id, generation_id)

_SWEEP_INTERVAL_SECONDS = 60.0


@dataclass
class _Signal:
    """Wakes the tasks waiting on one log (or one stop flag)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0

    def fire(self) -> None:
        # Waiters hold the event they saw before reading; a fresh one for the next change.
        fired, self.event = self.event, asyncio.Event()
        fired.set()


class SQLiteStore(MemoryLiveMixin):
    """`SessionStore` in the SQLite file `path`. Steering queues and records are in the file
    (`steering.py`: a queued message outlives a restart); the chat's generation feed, which
    only live tails read, is kept in memory (one process per file). `clock` gives Unix time
    (tests fake it)."""

    def __init__(
        self,
        path: Path | str,
        *,
        log_ttl_seconds: float = 86400,
        history_ttl_seconds: float = 30 * 86400,
        lease_seconds: float = 15,
        synchronous: Synchronous = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._log_ttl = log_ttl_seconds
        self._history_ttl = history_ttl_seconds
        self._lease_ttl = lease_seconds
        self._synchronous: Synchronous = synchronous
        self._clock = clock
        self._lock = ProcessLock(self.path)
        self._write_thread: ThreadPoolExecutor | None = None
        self._read_thread: ThreadPoolExecutor | None = None
        self._writer: Writer | None = None
        self._reader: Reader | None = None
        self._log_signals: dict[_Key, _Signal] = {}
        self._tails = TailCache()
        self._stop_signals: dict[_Key, _Signal] = {}
        self._steer_signals: dict[_Key, _Signal] = {}
        self._listeners: set[LogListener] = set()
        self._closed_event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_sweep = 0.0
        self._closed = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
            self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
            write_conn = await self._on(
                self._write_thread,
                connect,
                self.path,
                synchronous=self._synchronous,
                readonly=False,
            )
            await self._on(self._write_thread, steering.create_tables, write_conn)
            self._writer = Writer(
                write_conn,
                log_ttl=self._log_ttl,
                history_ttl=self._history_ttl,
                lease_ttl=self._lease_ttl,
                holder=uuid.uuid4().hex,
            )
            read_conn = await self._on(
                self._read_thread, connect, self.path, synchronous=self._synchronous, readonly=True
            )
            self._reader = Reader(read_conn)
            dropped = await self._write(self._writer.drop_foreign_leases)
            if dropped:
                logger.info(
                    "SQLite store: %d generation(s) left running by a stopped process", dropped
                )
            await self._maybe_sweep()
        except BaseException:
            await self._shutdown()
            raise
        self._closed = False

    async def ping(self) -> None:
        await self._read(self._db_reader.ping)

    async def close(self) -> None:
        self._closed = True
        self._closed_event.set()
        self._tails.clear()
        for signal in self._log_signals.values():
            signal.fire()
        for signal in [*self._stop_signals.values(), *self._steer_signals.values()]:
            signal.fire()
        await self._shutdown()

    # --- chats -------------------------------------------------------------------------

    async def get_chat(self, chat_id: str) -> ChatState | None:
        return await self._read(self._db_reader.get_chat, chat_id, self._clock())

    async def claim_chat(self, chat_id: str, owner: str) -> str:
        await self._maybe_sweep()
        return await self._write(self._db_writer.claim_chat, chat_id, owner, self._clock())

    async def record_chat(self, owner: str, chat_id: str, title: str, updated_at: float) -> None:
        await self._write(self._db_writer.record_chat, owner, chat_id, title, updated_at)

    async def list_chats(self, owner: str, limit: int = 50) -> list[ChatSummary]:
        rows = await self._read(self._db_reader.list_chats, owner, limit, self._clock())
        return [ChatSummary(*row) for row in rows]

    async def load_messages(self, chat_id: str) -> list[JSONDict]:
        data = await self._read(self._db_reader.load_messages, chat_id, self._clock())
        if data is None:
            return []
        messages: list[JSONDict] = orjson.loads(data)
        return messages

    async def history_size(self, chat_id: str) -> int:
        return await self._read(self._db_reader.history_size, chat_id, self._clock())

    async def save_messages(self, chat_id: str, messages: Sequence[JSONDict]) -> None:
        await self._maybe_sweep()
        history = orjson.dumps(list(messages))
        await self._write(self._db_writer.save_messages, chat_id, history, self._clock())

    async def delete_chat(self, chat_id: str) -> None:
        writer = self._db_writer

        def write() -> None:
            for generation_id in writer.delete_chat(chat_id):
                self._after_commit(self._deleted, (chat_id, generation_id))

        await self._write(write)
        self._tails.drop_chat(chat_id)
        self._drop_live(chat_id)  # the feed is kept in memory

    # --- generations -------------------------------------------------------------------

    async def begin_generation(
        self,
        info: GenerationInfo,
        start_chunk: bytes,
        messages: Sequence[JSONDict],
        *,
        expected_revision: int | None = None,
        plan: bytes = b"",
    ) -> int:
        """As in the contract; also refuses with StaleRevision when `expected_revision` is
        given and the chat's revision differs, stores `plan` for a take-over, and returns
        the generation's first epoch (1)."""
        await self._maybe_sweep()
        key = (info.chat_id, info.generation_id)
        history = orjson.dumps(list(messages))
        writer = self._db_writer

        def write() -> int:
            epoch = writer.begin(info, start_chunk, history, expected_revision, plan, now)
            self._after_commit(self._tails.begun, key, start_chunk, now + self._log_ttl)
            return epoch

        now = self._clock()
        return await self._write(write)

    async def append(
        self,
        chat_id: str,
        generation_id: str,
        first_offset: int,
        chunks: Sequence[bytes],
        *,
        epoch: int | None = None,
    ) -> None:
        """As in the contract; with `epoch`, refused with Fenced unless the lease is alive
        and holds that epoch, and a retry of a batch already written counts as done."""
        key = (chat_id, generation_id)
        writer = self._db_writer

        def write() -> bool:
            written = writer.append(chat_id, generation_id, first_offset, chunks, epoch, now)
            if written:
                self._after_commit(
                    self._appended, key, first_offset, list(chunks), now + self._log_ttl
                )
            return written

        now = self._clock()
        await self._write(write)

    async def append_many(self, batches: Sequence[Append]) -> list[StoreError | None]:
        """Each batch as `append` (with its epoch) would, all in one transaction: one commit
        for many generations. Per batch, in order: None when done, or the error that refused
        it (Fenced, OffsetConflict, GenerationNotFound; nothing of it was written)."""
        writer = self._db_writer

        def write() -> list[StoreError | bool]:
            results = writer.append_many(batches, now)
            for batch, result in zip(batches, results, strict=True):
                if result is True:
                    self._after_commit(
                        self._appended,
                        (batch.chat_id, batch.generation_id),
                        batch.first_offset,
                        list(batch.chunks),
                        now + self._log_ttl,
                    )
            return results

        now = self._clock()
        results = await self._write(write)
        return [result if isinstance(result, StoreError) else None for result in results]

    async def end_generation(
        self,
        chat_id: str,
        generation_id: str,
        offset: int,
        outcome: Outcome,
        messages: Sequence[JSONDict] | None,
        *,
        epoch: int | None = None,
    ) -> None:
        """As in the contract; `epoch` is checked like `append`'s, and the chat's revision
        is raised."""
        key = (chat_id, generation_id)
        writer = self._db_writer
        history = None if messages is None else orjson.dumps(list(messages))

        def write() -> None:
            writer.end(chat_id, generation_id, offset, outcome, history, epoch, now)
            self._after_commit(self._ended, key, offset)

        now = self._clock()
        await self._write(write)

    async def read(
        self,
        chat_id: str,
        generation_id: str,
        after: int,
        *,
        limit: int = 1000,
        wait: float = 0.0,
        live: bool = False,
    ) -> LogRead:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        key = (chat_id, generation_id)
        start = max(after + 1, 0)
        if wait <= 0:
            return await self._read_once(key, start, limit)
        return await self._until(
            self._log_signals,
            key,
            wait,
            lambda: self._read_once(key, start, limit),
            lambda result: bool(result.entries or result.ended),
            LogRead([], False),
        )

    async def producer_alive(self, chat_id: str, generation_id: str) -> bool:
        return await self._read(self._db_reader.lease_alive, chat_id, generation_id, self._clock())

    async def renew_lease(
        self, chat_id: str, generation_id: str, *, epoch: int | None = None
    ) -> bool:
        """Extend a live lease (with `epoch`: only if it holds that epoch). False when the
        lease has lapsed or moved on: the producer is fenced and must stop."""
        return await self._write(
            self._db_writer.renew, chat_id, generation_id, epoch, self._clock()
        )

    # --- take-over ---------------------------------------------------------------------

    async def claim_generation(self, chat_id: str, generation_id: str) -> Claim | None:
        """Take the lease of an open log whose lease is absent, under a new epoch (fencing
        the previous producer). None when the lease is held or the log ended or expired."""
        return await self._write(self._db_writer.claim, chat_id, generation_id, self._clock())

    async def release_lease(self, chat_id: str, generation_id: str, *, epoch: int) -> None:
        """Drop the lease if it still holds `epoch`, so a take-over may start at once."""
        await self._write(self._db_writer.release, chat_id, generation_id, epoch)

    async def watch_logs(self, listener: LogListener) -> None:
        """Every commit tells `listener` (one process per file: the changes are all ours)."""
        self._listeners.add(listener)
        try:
            await self._closed_event.wait()
        finally:
            self._listeners.discard(listener)

    async def orphaned_generations(self) -> list[tuple[str, str]]:
        return [(g.chat_id, g.generation_id) for g in await self.open_generations()]

    async def open_generations(self) -> list[OpenGeneration]:
        """Open logs whose producer holds no lease: after a restart, every generation the
        previous process was running (their leases are dropped at start)."""
        return await self._read(self._db_reader.open_generations, self._clock())

    # --- stop ----------------------------------------------------------------------------

    async def request_stop(self, chat_id: str, generation_id: str) -> None:
        await self._maybe_sweep()
        key = (chat_id, generation_id)
        writer = self._db_writer

        def write() -> None:
            writer.request_stop(chat_id, generation_id, now)
            self._after_commit(_fire, self._stop_signals, key)

        now = self._clock()
        await self._write(write)

    async def stop_requested(self, chat_id: str, generation_id: str) -> bool:
        return await self._read(
            self._db_reader.stop_requested, chat_id, generation_id, self._clock()
        )

    async def wait_for_stop(self, chat_id: str, generation_id: str) -> None:
        key = (chat_id, generation_id)
        signal = self._stop_signals.setdefault(key, _Signal())
        signal.waiters += 1
        try:
            changed = signal.event
            if self._closed or await self.stop_requested(chat_id, generation_id):
                return
            await changed.wait()
        finally:
            signal.waiters -= 1
            if signal.waiters == 0 and self._stop_signals.get(key) is signal:
                del self._stop_signals[key]

    # --- steering queues and records (in the file) -------------------------------------

    async def push_steering(self, chat_id: str, generation_id: str, message: bytes) -> int | None:
        key = (chat_id, generation_id)
        conn = self._db_writer.conn

        def write() -> int | None:
            position = steering.push(conn, chat_id, generation_id, message, now, self._log_ttl)
            if position is not None:
                self._after_commit(_fire, self._steer_signals, key)
            return position

        now = self._clock()
        return await self._write(write)

    async def read_steering(
        self, chat_id: str, generation_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        key = (chat_id, generation_id)
        if wait <= 0:
            return await self._read_steering_once(key, after)
        empty: list[tuple[int, bytes]] = []
        return await self._until(
            self._steer_signals,
            key,
            wait,
            lambda: self._read_steering_once(key, after),
            bool,
            empty,
        )

    async def close_steering(self, chat_id: str, generation_id: str) -> None:
        conn = self._db_writer.conn
        now = self._clock()
        await self._write(steering.close, conn, chat_id, generation_id, now, self._log_ttl)

    async def put_steering_record(
        self, chat_id: str, steering_id: str, record: bytes, *, only_if_absent: bool = False
    ) -> bytes | None:
        conn = self._db_writer.conn
        now = self._clock()
        return await self._write(
            steering.put_record,
            conn,
            chat_id,
            steering_id,
            record,
            only_if_absent,
            now,
            self._log_ttl,
        )

    async def steering_record(self, chat_id: str, steering_id: str) -> bytes | None:
        conn = self._db_reader.conn
        return await self._read(steering.record, conn, chat_id, steering_id, self._clock())

    async def _read_steering_once(self, key: _Key, after: int) -> list[tuple[int, bytes]]:
        conn = self._db_reader.conn
        return await self._read(steering.read, conn, *key, after, self._clock())

    # --- internals -----------------------------------------------------------------------

    async def _until(
        self,
        signals: dict[_Key, _Signal],
        key: _Key,
        wait: float,
        attempt: Callable[[], Awaitable[_T]],
        ready: Callable[[_T], bool],
        empty: _T,
    ) -> _T:
        """`attempt()` until `ready` (or `wait` seconds passed: `empty`), woken by the key's
        signal after each commit that changed it; never a polling loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        signal = signals.setdefault(key, _Signal())
        signal.waiters += 1
        try:
            while True:
                # Taken before reading: a commit after our read fires this very event.
                changed = signal.event
                result = await attempt()
                remaining = deadline - loop.time()
                if ready(result) or remaining <= 0 or self._closed:
                    return result
                try:
                    async with asyncio.timeout(remaining):
                        await changed.wait()
                except TimeoutError:
                    return empty
                if self._closed:
                    return empty
        finally:
            signal.waiters -= 1
            if signal.waiters == 0 and signals.get(key) is signal:
                del signals[key]

    @property
    def _db_writer(self) -> Writer:
        if self._writer is None or self._closed:
            raise StoreError("the SQLite session store is closed")
        return self._writer

    @property
    def _db_reader(self) -> Reader:
        if self._reader is None or self._closed:
            raise StoreError("the SQLite session store is closed")
        return self._reader

    async def _read_once(self, key: _Key, start: int, limit: int) -> LogRead:
        cached = self._tails.read(key, start, limit, self._clock())
        if cached is not None:  # the log is open and tailed in memory
            return LogRead(cached, False)
        part = await self._read(self._db_reader.read, *key, start, limit, self._clock())
        entries = [LogEntry(offset, bytes(data)) for offset, data in part.entries]
        ended = part.outcome is not None and start + len(entries) >= part.next_offset
        return LogRead(entries, ended, part.outcome if ended else None)

    def _after_commit(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback` on the event loop; called on the writer thread right after a commit,
        so changes reach the loop in commit order, and a caller cancelled meanwhile cannot
        leave readers asleep."""
        assert self._loop is not None
        # A write still running when the application's loop has closed: nobody is left to
        # wake, and the write itself is committed.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _appended(
        self, key: _Key, first_offset: int, chunks: list[bytes], expires_at: float
    ) -> None:
        self._tails.appended(key, first_offset, chunks, expires_at)
        _fire(self._log_signals, key)
        self._tell_listeners(key, first_offset + len(chunks) - 1)

    def _ended(self, key: _Key, end_offset: int) -> None:
        self._tails.ended(key)
        _fire(self._log_signals, key)
        self._tell_listeners(key, end_offset)

    def _deleted(self, key: _Key) -> None:
        """A log removed with its chat: cached tails go, waiting readers and stops wake."""
        self._tails.drop_chat(key[0])
        _fire(self._log_signals, key)
        _fire(self._stop_signals, key)
        _fire(self._steer_signals, key)

    def _tell_listeners(self, key: _Key, offset: int) -> None:
        for listener in list(self._listeners):
            listener.log_changed(key[0], key[1], offset)

    async def _write(self, fn: Callable[..., _T], *args: object) -> _T:
        if self._write_thread is None:
            raise StoreError("the SQLite session store is not started")
        return await self._on(self._write_thread, fn, *args)

    async def _read(self, fn: Callable[..., _T], *args: object) -> _T:
        if self._read_thread is None:
            raise StoreError("the SQLite session store is not started")
        return await self._on(self._read_thread, fn, *args)

    async def _on(
        self, thread: ThreadPoolExecutor, fn: Callable[..., _T], *args: object, **kwargs: object
    ) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(thread, functools.partial(fn, *args, **kwargs))
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite session store {self.path}: {exc}") from exc
        except RuntimeError as exc:  # the thread was shut down by close()
            raise StoreError("the SQLite session store is closed") from exc

    async def _maybe_sweep(self) -> None:
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL_SECONDS
        self._tails.drop_expired(now)
        await self._write(self._db_writer.sweep, now)
        await self._write(steering.sweep, self._db_writer.conn, now)

    async def _shutdown(self) -> None:
        for thread, db in ((self._write_thread, self._writer), (self._read_thread, self._reader)):
            if thread is None:
                continue
            if db is not None:
                try:
                    await self._on(thread, db.close)
                except StoreError:
                    logger.exception("closing the SQLite session store")
            thread.shutdown(wait=False)
        self._write_thread = self._read_thread = None
        self._writer = None
        self._reader = None
        self._lock.release()


def _fire(signals: dict[_Key, _Signal], key: _Key) -> None:
    signal = signals.get(key)
    if signal is not None:
        signal.fire()
