"""The SQLite store's steering queues and steering records: the same contract as the memory
and Redis stores (`push_steering`, `read_steering`, `close_steering`, the records), kept in
the file, so a message queued for an answer (steering, or the next turn of the busy policy)
outlives a restart and the answer taken over after it still delivers it or starts its turn.

Plain synchronous functions over a connection, run on the store's writer or reader thread.
A queue is one row per message, numbered 1, 2, 3, ... per generation; a queue's `closed`
mark refuses later pushes. Rows live as long as the logs (`log_ttl`, renewed by each push);
a closed queue and its mark are kept `CLOSED_QUEUE_SECONDS`, as in the other stores.
"""

from __future__ import annotations

import sqlite3

from bridge.store.memory_live import CLOSED_QUEUE_SECONDS
from bridge.store.sqlite.db import _transaction as transaction

STEERING_SCHEMA = """
CREATE TABLE IF NOT EXISTS steering (
    chat_id TEXT NOT NULL,
    generation_id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    data BLOB NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (chat_id, generation_id, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steering_closed (
    chat_id TEXT NOT NULL,
    generation_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (chat_id, generation_id)
);
CREATE TABLE IF NOT EXISTS steering_records (
    chat_id TEXT NOT NULL,
    steering_id TEXT NOT NULL,
    data BLOB NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (chat_id, steering_id)
);
"""


def push(
    conn: sqlite3.Connection,
    chat_id: str,
    generation_id: str,
    message: bytes,
    now: float,
    ttl: float,
) -> int | None:
    """Append; the message's position, or None when the queue is closed."""
    key = (chat_id, generation_id)
    with transaction(conn):
        closed = conn.execute(
            "SELECT 1 FROM steering_closed WHERE chat_id = ? AND generation_id = ?"
            " AND expires_at > ?",
            (*key, now),
        ).fetchone()
        if closed is not None:
            return None
        # Expired rows of an earlier queue with this key never count.
        conn.execute(
            "DELETE FROM steering WHERE chat_id = ? AND generation_id = ? AND expires_at <= ?",
            (*key, now),
        )
        row = conn.execute(
            "SELECT COALESCE(MAX(pos), 0) FROM steering WHERE chat_id = ? AND generation_id = ?",
            key,
        ).fetchone()
        position = int(row[0]) + 1
        conn.execute(
            "INSERT INTO steering (chat_id, generation_id, pos, data, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (*key, position, message, now + ttl),
        )
        conn.execute(  # the queue lives as long as its latest message
            "UPDATE steering SET expires_at = ? WHERE chat_id = ? AND generation_id = ?",
            (now + ttl, *key),
        )
    return position


def close(
    conn: sqlite3.Connection, chat_id: str, generation_id: str, now: float, ttl: float
) -> None:
    until = now + min(CLOSED_QUEUE_SECONDS, ttl)
    with transaction(conn):
        conn.execute(
            "INSERT INTO steering_closed (chat_id, generation_id, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (chat_id, generation_id) DO NOTHING",
            (chat_id, generation_id, until),
        )
        conn.execute(
            "UPDATE steering SET expires_at = MIN(expires_at, ?)"
            " WHERE chat_id = ? AND generation_id = ?",
            (until, chat_id, generation_id),
        )


def put_record(
    conn: sqlite3.Connection,
    chat_id: str,
    steering_id: str,
    record: bytes,
    only_if_absent: bool,
    now: float,
    ttl: float,
) -> bytes | None:
    """As the contract's `put_steering_record`: the kept record when `only_if_absent` found
    one, else None (stored)."""
    with transaction(conn):
        if only_if_absent:
            row = conn.execute(
                "SELECT data FROM steering_records WHERE chat_id = ? AND steering_id = ?"
                " AND expires_at > ?",
                (chat_id, steering_id, now),
            ).fetchone()
            if row is not None:
                return bytes(row[0])
        conn.execute(
            "INSERT INTO steering_records (chat_id, steering_id, data, expires_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (chat_id, steering_id) DO UPDATE"
            " SET data = excluded.data, expires_at = excluded.expires_at",
            (chat_id, steering_id, record, now + ttl),
        )
    return None


def read(
    conn: sqlite3.Connection, chat_id: str, generation_id: str, after: int, now: float
) -> list[tuple[int, bytes]]:
    rows = conn.execute(
        "SELECT pos, data FROM steering WHERE chat_id = ? AND generation_id = ? AND pos > ?"
        " AND expires_at > ? ORDER BY pos",
        (chat_id, generation_id, after, now),
    ).fetchall()
    return [(int(pos), bytes(data)) for pos, data in rows]


def record(conn: sqlite3.Connection, chat_id: str, steering_id: str, now: float) -> bytes | None:
    row = conn.execute(
        "SELECT data FROM steering_records WHERE chat_id = ? AND steering_id = ?"
        " AND expires_at > ?",
        (chat_id, steering_id, now),
    ).fetchone()
    return None if row is None else bytes(row[0])


def create_tables(conn: sqlite3.Connection) -> None:
    conn.executescript(STEERING_SCHEMA)


def sweep(conn: sqlite3.Connection, now: float) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM steering WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM steering_closed WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM steering_records WHERE expires_at <= ?", (now,))
