"""The SQLite store's database work: plain synchronous functions over one connection, run
on the store's worker threads (never on the event loop).

`Writer` holds the only writing connection; every method is one `BEGIN IMMEDIATE`
transaction, so each store operation is atomic and writes are serialised by the single
writer thread. `Reader` holds a second connection for reads: in WAL mode they never wait
for the writer and always see the last committed state.

Times are Unix seconds passed in by the caller (tests drive a fake clock); rows past their
`expires_at` are treated as absent at once and deleted by `Writer.sweep`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bridge.errors import (
    ChatBusy,
    Fenced,
    GenerationNotFound,
    OffsetConflict,
    StaleRevision,
    StoreError,
)
from bridge.store.base import Append, ChatState, Claim, GenerationInfo, Outcome
from bridge.store.sqlite.rows import OpenGeneration

Synchronous = Literal["NORMAL", "FULL"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    chat_id TEXT PRIMARY KEY,
    owner TEXT,
    active_generation TEXT,
    last_generation TEXT,
    last_ended_at REAL,
    revision INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS histories (
    chat_id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS owned_chats (
    owner TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    title TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (owner, chat_id)
);
CREATE INDEX IF NOT EXISTS owned_chats_by_update ON owned_chats (owner, updated_at);
CREATE TABLE IF NOT EXISTS logs (
    log_id INTEGER PRIMARY KEY,
    chat_id TEXT NOT NULL,
    generation_id TEXT NOT NULL,
    next_offset INTEGER NOT NULL,
    outcome TEXT,
    expires_at REAL NOT NULL,
    epoch INTEGER NOT NULL,
    lease_epoch INTEGER,
    lease_expires_at REAL,
    lease_holder TEXT,
    plan BLOB NOT NULL,
    UNIQUE (chat_id, generation_id)
);
CREATE INDEX IF NOT EXISTS logs_open ON logs (generation_id) WHERE outcome IS NULL;
CREATE TABLE IF NOT EXISTS entries (
    log_id INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (log_id, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stops (
    chat_id TEXT NOT NULL,
    generation_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (chat_id, generation_id)
);
"""


def connect(path: Path, *, synchronous: Synchronous, readonly: bool) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; every method says BEGIN itself.
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    if readonly:
        conn.execute("PRAGMA query_only = ON")
        return conn
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"{path}: WAL journal mode unavailable (got {mode})")
    # NORMAL in WAL mode: a commit is in the OS once `COMMIT` returns, so it survives the
    # process being killed; only an OS crash or power loss may lose the last commits. FULL
    # also fsyncs the WAL on every commit (survives power loss, costs a disk flush each).
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.executescript(SCHEMA)
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    if conn.in_transaction:
        # Inside a batch of operations (`Writer.append_many`): a savepoint, so a refused
        # operation leaves no trace while the others commit together.
        conn.execute("SAVEPOINT operation")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO operation")
            conn.execute("RELEASE operation")
            raise
        conn.execute("RELEASE operation")
        return
    conn.execute(begin)
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass(frozen=True, slots=True)
class _OpenLog:
    log_id: int
    next_offset: int


class Writer:
    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        log_ttl: float,
        history_ttl: float,
        lease_ttl: float,
        holder: str,
    ) -> None:
        self.conn = conn
        self.log_ttl = log_ttl
        self.history_ttl = history_ttl
        self.lease_ttl = lease_ttl
        self.holder = holder
        """Names this store instance in the leases it takes."""

    def close(self) -> None:
        self.conn.close()

    # --- chats -------------------------------------------------------------------------

    def claim_chat(self, chat_id: str, owner: str, now: float) -> str:
        with _transaction(self.conn):
            self._touch_chat(chat_id, now)
            self.conn.execute(
                "UPDATE chats SET owner = ? WHERE chat_id = ? AND owner IS NULL", (owner, chat_id)
            )
            row = self.conn.execute(
                "SELECT owner FROM chats WHERE chat_id = ?", (chat_id,)
            ).fetchone()
        recorded: str = row[0]
        return recorded

    def record_chat(self, owner: str, chat_id: str, title: str, updated_at: float) -> None:
        with _transaction(self.conn):
            self.conn.execute(
                "INSERT INTO owned_chats (owner, chat_id, title, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (owner, chat_id) DO UPDATE"
                " SET title = excluded.title, updated_at = excluded.updated_at",
                (owner, chat_id, title, updated_at),
            )

    def save_messages(self, chat_id: str, history: bytes, now: float) -> None:
        with _transaction(self.conn):
            self._save_history(chat_id, history, now)

    # --- generations -------------------------------------------------------------------

    def begin(
        self,
        info: GenerationInfo,
        start_chunk: bytes,
        history: bytes,
        expected_revision: int | None,
        plan: bytes,
        now: float,
    ) -> int:
        chat_id, generation_id = info.chat_id, info.generation_id
        with _transaction(self.conn):
            chat = self.conn.execute(
                "SELECT active_generation, revision FROM chats"
                " WHERE chat_id = ? AND expires_at > ?",
                (chat_id, now),
            ).fetchone()
            if (
                chat is not None
                and chat[0] is not None
                and self._lease_alive(chat_id, chat[0], now)
            ):
                raise ChatBusy(chat[0])
            revision = chat[1] if chat is not None else 0
            if expected_revision is not None and expected_revision != revision:
                raise StaleRevision(expected_revision, revision)
            existing = self.conn.execute(
                "SELECT log_id, expires_at FROM logs WHERE chat_id = ? AND generation_id = ?",
                (chat_id, generation_id),
            ).fetchone()
            if existing is not None:
                if existing[1] > now:
                    raise OffsetConflict(f"generation {generation_id} already has a log")
                self._delete_log(existing[0])
            self._touch_chat(chat_id, now)
            self.conn.execute(
                "UPDATE chats SET active_generation = ?, last_generation = ?,"
                " last_ended_at = NULL, revision = revision + 1 WHERE chat_id = ?",
                (generation_id, generation_id, chat_id),
            )
            self._save_history(chat_id, history, now)
            cursor = self.conn.execute(
                "INSERT INTO logs (chat_id, generation_id, next_offset, expires_at, epoch,"
                " lease_epoch, lease_expires_at, lease_holder, plan)"
                " VALUES (?, ?, 1, ?, 1, 1, ?, ?, ?)",
                (
                    chat_id,
                    generation_id,
                    now + self.log_ttl,
                    now + self.lease_ttl,
                    self.holder,
                    plan,
                ),
            )
            self.conn.execute(
                "INSERT INTO entries (log_id, pos, data) VALUES (?, 0, ?)",
                (cursor.lastrowid, start_chunk),
            )
        return 1

    def append(
        self,
        chat_id: str,
        generation_id: str,
        first_offset: int,
        chunks: Sequence[bytes],
        epoch: int | None,
        now: float,
    ) -> bool:
        """Returns whether entries were written (readers should be woken)."""
        with _transaction(self.conn):
            log = self._open_log(chat_id, generation_id, epoch, now)
            if (
                epoch is not None
                and chunks
                and first_offset >= 0
                and log.next_offset == first_offset + len(chunks)
            ):
                return False  # a retry of a batch that was written (its reply got lost)
            if first_offset != log.next_offset:
                raise OffsetConflict(
                    f"offset {first_offset} is not the next offset {log.next_offset}"
                )
            self.conn.executemany(
                "INSERT INTO entries (log_id, pos, data) VALUES (?, ?, ?)",
                [(log.log_id, first_offset + i, data) for i, data in enumerate(chunks)],
            )
            self.conn.execute(
                "UPDATE logs SET next_offset = ?, expires_at = ?,"
                " lease_expires_at = CASE WHEN lease_expires_at > ? THEN ?"
                " ELSE lease_expires_at END"
                " WHERE log_id = ?",
                (
                    first_offset + len(chunks),
                    now + self.log_ttl,
                    now,
                    now + self.lease_ttl,
                    log.log_id,
                ),
            )
        return bool(chunks)

    def append_many(self, batches: Sequence[Append], now: float) -> list[StoreError | bool]:
        """Every batch as `append` would, in one transaction (one commit for all). Per batch:
        whether entries were written, or the error that refused it (nothing written)."""
        results: list[StoreError | bool] = []
        with _transaction(self.conn):
            for batch in batches:
                try:
                    written = self.append(
                        batch.chat_id,
                        batch.generation_id,
                        batch.first_offset,
                        batch.chunks,
                        batch.epoch,
                        now,
                    )
                except StoreError as exc:
                    results.append(exc)
                else:
                    results.append(written)
        return results

    def end(
        self,
        chat_id: str,
        generation_id: str,
        offset: int,
        outcome: Outcome,
        history: bytes | None,
        epoch: int | None,
        now: float,
    ) -> None:
        with _transaction(self.conn):
            ended = self.conn.execute(
                "SELECT next_offset, epoch FROM logs WHERE chat_id = ? AND generation_id = ?"
                " AND outcome IS NOT NULL AND expires_at > ?",
                (chat_id, generation_id, now),
            ).fetchone()
            if ended is not None and epoch is not None and tuple(ended) == (offset, epoch):
                return  # a retry of an end whose reply was lost: written already
            log = self._open_log(chat_id, generation_id, epoch, now)
            if offset != log.next_offset:
                raise OffsetConflict(f"offset {offset} is not the next offset {log.next_offset}")
            chat = self.conn.execute(
                "SELECT last_generation FROM chats WHERE chat_id = ? AND expires_at > ?",
                (chat_id, now),
            ).fetchone()
            # A newer generation (begun after this one was taken for dead) owns the history.
            if history is not None and (chat is None or chat[0] in (None, generation_id)):
                self._save_history(chat_id, history, now)
            self.conn.execute(
                "UPDATE logs SET outcome = ?, expires_at = ?, lease_epoch = NULL,"
                " lease_expires_at = NULL, lease_holder = NULL WHERE log_id = ?",
                (outcome.value, now + self.log_ttl, log.log_id),
            )
            if chat is not None:
                # The end time describes `last`: only this generation's own end may set it.
                self.conn.execute(
                    "UPDATE chats SET expires_at = ?, revision = revision + 1,"
                    " active_generation = CASE WHEN active_generation = ? THEN NULL"
                    " ELSE active_generation END,"
                    " last_ended_at = CASE WHEN last_generation = ? THEN ?"
                    " ELSE last_ended_at END"
                    " WHERE chat_id = ?",
                    (now + self.history_ttl, generation_id, generation_id, now, chat_id),
                )

    def renew(self, chat_id: str, generation_id: str, epoch: int | None, now: float) -> bool:
        # A lapsed lease stays lapsed: another process may already have acted on it.
        with _transaction(self.conn):
            cursor = self.conn.execute(
                "UPDATE logs SET lease_expires_at = ?"
                " WHERE chat_id = ? AND generation_id = ? AND lease_expires_at > ?"
                " AND (? IS NULL OR lease_epoch = ?)",
                (now + self.lease_ttl, chat_id, generation_id, now, epoch, epoch),
            )
        return cursor.rowcount > 0

    def claim(self, chat_id: str, generation_id: str, now: float) -> Claim | None:
        with _transaction(self.conn):
            row = self.conn.execute(
                "SELECT log_id, next_offset, epoch, plan FROM logs"
                " WHERE chat_id = ? AND generation_id = ? AND expires_at > ?"
                " AND outcome IS NULL AND NOT coalesce(lease_expires_at > ?, 0)",
                (chat_id, generation_id, now, now),
            ).fetchone()
            if row is None:
                return None
            log_id, next_offset, epoch, plan = row
            self.conn.execute(
                "UPDATE logs SET epoch = ?, lease_epoch = ?, lease_expires_at = ?,"
                " lease_holder = ? WHERE log_id = ?",
                (epoch + 1, epoch + 1, now + self.lease_ttl, self.holder, log_id),
            )
            stopped = self._stop_requested(chat_id, generation_id, now)
        return Claim(epoch + 1, bytes(plan), next_offset, stopped)

    def release(self, chat_id: str, generation_id: str, epoch: int) -> None:
        with _transaction(self.conn):
            self.conn.execute(
                "UPDATE logs SET lease_epoch = NULL, lease_expires_at = NULL,"
                " lease_holder = NULL"
                " WHERE chat_id = ? AND generation_id = ? AND lease_epoch = ?",
                (chat_id, generation_id, epoch),
            )

    def request_stop(self, chat_id: str, generation_id: str, now: float) -> None:
        with _transaction(self.conn):
            self.conn.execute(
                "INSERT INTO stops (chat_id, generation_id, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (chat_id, generation_id) DO UPDATE"
                " SET expires_at = excluded.expires_at",
                (chat_id, generation_id, now + self.log_ttl),
            )

    def delete_chat(self, chat_id: str) -> list[str]:
        """Remove every row of the chat (the steering tables' too) in one transaction;
        returns the generation ids whose logs were removed."""
        conn = self.conn
        with _transaction(conn):
            generations = [
                str(row[0])
                for row in conn.execute(
                    "SELECT generation_id FROM logs WHERE chat_id = ?", (chat_id,)
                )
            ]
            conn.execute(
                "DELETE FROM entries WHERE log_id IN (SELECT log_id FROM logs WHERE chat_id = ?)",
                (chat_id,),
            )
            conn.execute(
                "DELETE FROM owned_chats WHERE chat_id = ? AND owner ="
                " (SELECT owner FROM chats WHERE chat_id = ?)",
                (chat_id, chat_id),
            )
            for table in (
                "logs",
                "chats",
                "histories",
                "stops",
                "steering",
                "steering_closed",
                "steering_records",
            ):
                conn.execute(f"DELETE FROM {table} WHERE chat_id = ?", (chat_id,))
        return generations

    # --- start-up and retention ----------------------------------------------------------

    def drop_foreign_leases(self) -> int:
        """Lapse every lease taken by an earlier store on this file. Only one process opens
        the file (see file_lock), so their holders are dead: their logs can be taken over
        now rather than when the lease would have timed out."""
        with _transaction(self.conn):
            cursor = self.conn.execute(
                "UPDATE logs SET lease_epoch = NULL, lease_expires_at = NULL,"
                " lease_holder = NULL"
                " WHERE lease_epoch IS NOT NULL AND lease_holder IS NOT ?",
                (self.holder,),
            )
        return cursor.rowcount

    def sweep(self, now: float) -> None:
        with _transaction(self.conn):
            self.conn.execute(
                "DELETE FROM entries WHERE log_id IN"
                " (SELECT log_id FROM logs WHERE expires_at <= ?)",
                (now,),
            )
            self.conn.execute("DELETE FROM logs WHERE expires_at <= ?", (now,))
            self.conn.execute("DELETE FROM chats WHERE expires_at <= ?", (now,))
            self.conn.execute("DELETE FROM histories WHERE expires_at <= ?", (now,))
            self.conn.execute("DELETE FROM stops WHERE expires_at <= ?", (now,))
            self.conn.execute(
                "DELETE FROM owned_chats WHERE chat_id NOT IN (SELECT chat_id FROM chats)"
            )

    # --- internals -----------------------------------------------------------------------

    def _touch_chat(self, chat_id: str, now: float) -> None:
        self.conn.execute("DELETE FROM chats WHERE chat_id = ? AND expires_at <= ?", (chat_id, now))
        self.conn.execute(
            "INSERT INTO chats (chat_id, expires_at) VALUES (?, ?)"
            " ON CONFLICT (chat_id) DO UPDATE SET expires_at = excluded.expires_at",
            (chat_id, now + self.history_ttl),
        )

    def _save_history(self, chat_id: str, history: bytes, now: float) -> None:
        self.conn.execute(
            "INSERT INTO histories (chat_id, data, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (chat_id) DO UPDATE"
            " SET data = excluded.data, expires_at = excluded.expires_at",
            (chat_id, history, now + self.history_ttl),
        )

    def _delete_log(self, log_id: int) -> None:
        self.conn.execute("DELETE FROM entries WHERE log_id = ?", (log_id,))
        self.conn.execute("DELETE FROM logs WHERE log_id = ?", (log_id,))

    def _lease_alive(self, chat_id: str, generation_id: str, now: float) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM logs WHERE chat_id = ? AND generation_id = ? AND lease_expires_at > ?",
            (chat_id, generation_id, now),
        ).fetchone()
        return row is not None

    def _stop_requested(self, chat_id: str, generation_id: str, now: float) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM stops WHERE chat_id = ? AND generation_id = ? AND expires_at > ?",
            (chat_id, generation_id, now),
        ).fetchone()
        return row is not None

    def _open_log(
        self, chat_id: str, generation_id: str, epoch: int | None, now: float
    ) -> _OpenLog:
        """The log a producer may write, checked: it exists, it is open, and (when the
        writer names its epoch) the lease is alive and holds that epoch."""
        row = self.conn.execute(
            "SELECT log_id, next_offset, outcome, lease_epoch, lease_expires_at FROM logs"
            " WHERE chat_id = ? AND generation_id = ? AND expires_at > ?",
            (chat_id, generation_id, now),
        ).fetchone()
        if row is None:
            raise GenerationNotFound(generation_id)
        log_id, next_offset, outcome, lease_epoch, lease_expires_at = row
        if outcome is not None:
            raise OffsetConflict(f"generation {generation_id} has ended")
        if epoch is not None and (
            lease_epoch != epoch or lease_expires_at is None or lease_expires_at <= now
        ):
            raise Fenced(f"generation {generation_id}: epoch {epoch} no longer holds the lease")
        return _OpenLog(log_id, next_offset)


@dataclass(frozen=True, slots=True)
class LogSlice:
    entries: list[tuple[int, bytes]]
    next_offset: int
    """Chunks in the log (the end marker, when written, sits at this offset)."""
    outcome: Outcome | None


class Reader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    def get_chat(self, chat_id: str, now: float) -> ChatState | None:
        row = self.conn.execute(
            "SELECT owner, active_generation, last_generation, last_ended_at, revision"
            " FROM chats WHERE chat_id = ? AND expires_at > ?",
            (chat_id, now),
        ).fetchone()
        if row is None:
            return None
        return ChatState(chat_id, *row)

    def list_chats(self, owner: str, limit: int, now: float) -> list[tuple[Any, ...]]:
        return self.conn.execute(
            "SELECT o.chat_id, o.title, o.updated_at FROM owned_chats AS o"
            " JOIN chats AS c ON c.chat_id = o.chat_id AND c.expires_at > ?"
            " WHERE o.owner = ? ORDER BY o.updated_at DESC LIMIT ?",
            (now, owner, limit),
        ).fetchall()

    def load_messages(self, chat_id: str, now: float) -> bytes | None:
        row = self.conn.execute(
            "SELECT data FROM histories WHERE chat_id = ? AND expires_at > ?", (chat_id, now)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def history_size(self, chat_id: str, now: float) -> int:
        # length() of a BLOB reads the record's header, not the history itself.
        row = self.conn.execute(
            "SELECT length(data) FROM histories WHERE chat_id = ? AND expires_at > ?",
            (chat_id, now),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def read(
        self, chat_id: str, generation_id: str, start: int, limit: int, now: float
    ) -> LogSlice:
        # One snapshot for the log's state and its entries: they must agree.
        with _transaction(self.conn, "BEGIN"):
            row = self.conn.execute(
                "SELECT log_id, next_offset, outcome FROM logs"
                " WHERE chat_id = ? AND generation_id = ? AND expires_at > ?",
                (chat_id, generation_id, now),
            ).fetchone()
            if row is None:
                raise GenerationNotFound(generation_id)
            log_id, next_offset, outcome = row
            entries: list[tuple[int, bytes]] = []
            if start < next_offset:
                entries = self.conn.execute(
                    "SELECT pos, data FROM entries WHERE log_id = ? AND pos >= ?"
                    " ORDER BY pos LIMIT ?",
                    (log_id, start, limit),
                ).fetchall()
        return LogSlice(entries, next_offset, None if outcome is None else Outcome(outcome))

    def ping(self) -> None:
        self.conn.execute("SELECT 1").fetchone()

    def lease_alive(self, chat_id: str, generation_id: str, now: float) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM logs WHERE chat_id = ? AND generation_id = ? AND lease_expires_at > ?",
            (chat_id, generation_id, now),
        ).fetchone()
        return row is not None

    def stop_requested(self, chat_id: str, generation_id: str, now: float) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM stops WHERE chat_id = ? AND generation_id = ? AND expires_at > ?",
            (chat_id, generation_id, now),
        ).fetchone()
        return row is not None

    def open_generations(self, now: float) -> list[OpenGeneration]:
        rows = self.conn.execute(
            "SELECT chat_id, generation_id, next_offset FROM logs"
            " WHERE outcome IS NULL AND expires_at > ? AND NOT coalesce(lease_expires_at > ?, 0)"
            " ORDER BY log_id",
            (now, now),
        ).fetchall()
        return [OpenGeneration(*row) for row in rows]
