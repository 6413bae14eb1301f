"""One process per SQLite file: an exclusive `flock` on `<database>.lock`, held for the
store's life.

The SQLite store wakes its readers in memory when its own writer commits, and treats every
lease found in the file at start-up as belonging to a dead process; both are only true when
no other process writes the same file. The kernel drops the lock when its holder dies,
however it dies (SIGKILL included), so a crashed bridge never leaves the file locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from bridge.errors import StoreError


class DatabaseInUse(StoreError):
    """Another process holds the SQLite file."""


class ProcessLock:
    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `DatabaseInUse` naming the holder's process id."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DatabaseInUse(
                f"the SQLite session store {self.database} is in use by another process "
                f"(pid {holder}); one bridge process per SQLite file: stop that process, give "
                "this one its own BRIDGE_DATA_DIR, or set REDIS_URL to share sessions between "
                "processes"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing the descriptor drops the lock; the file stays (removing it would race
            # with a process that opened it and is about to lock it).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)
