"""Giving memory back to the system once a load has passed.

Under load the process allocates and frees a lot of short-lived memory (request bodies,
JSON buffers of the writer's batches, network reads). Python's small-object allocator
returns its emptied arenas, but the larger blocks come from glibc's `malloc`, which keeps
the pages it freed inside its heaps: measured on a bridge through 200 unpaced chats at
once, RSS went from 140 MB to 596 MB and stayed there idle, with the live Python objects
back to their warmed-up count; `malloc_trim(0)` brought it to 168 MB. So when the load
falls, the process trims: `watch()` checks every `_CHECK_SECONDS` and trims when RSS has
grown by `_GROWTH_BYTES` since the last trim and the generations running here fell to a
quarter of their peak since then (or none): a load that ends, not a load that goes on,
where the trimmed pages would only be taken again.

The trim runs in a worker thread (it walks the heaps: tens of milliseconds for a large
one), so the event loop keeps serving; with another C library than glibc there is no
`malloc_trim` and `watch()` returns at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable
from functools import cache

import anyio
import anyio.to_thread

logger = logging.getLogger("bridge.memory")

_CHECK_SECONDS = 5.0
"""How often the watch looks at the load and RSS (one /proc read)."""
_GROWTH_BYTES = 32 * 1024 * 1024
"""RSS growth since the last trim that makes one worth its walk of the heaps."""
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None on another C library (musl, macOS)."""
    try:
        # glibc's soname first: `find_library` runs `ldconfig` in a subprocess.
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        name = ctypes.util.find_library("c")
        if name is None:
            return None
        try:
            libc = ctypes.CDLL(name)
        except OSError:
            return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    function: Callable[[int], int] = trim
    return function


def can_trim() -> bool:
    return _malloc_trim() is not None


def trim() -> bool:
    """Hand the allocator's free pages back to the system (blocking); whether it could."""
    function = _malloc_trim()
    if function is None:
        return False
    function(0)
    return True


def rss_bytes() -> int:
    """This process's resident memory (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class AfterLoad:
    """The decision of `watch()`, apart from its clock: fed the running generations and
    RSS at each check, says when to trim."""

    def __init__(self, rss: int, growth: int = _GROWTH_BYTES) -> None:
        self.growth = growth
        self.trimmed_at = rss
        """RSS right after the last trim (at start: the process's RSS then)."""
        self.peak = 0
        """The most generations running at one check since the last trim."""

    def due(self, running: int, rss: int) -> bool:
        self.peak = max(self.peak, running)
        return rss - self.trimmed_at >= self.growth and running * 4 <= self.peak

    def trimmed(self, running: int, rss: int) -> None:
        self.trimmed_at = rss
        self.peak = running


async def watch(running: Callable[[], int], check_seconds: float = _CHECK_SECONDS) -> None:
    """Trim after each load, for as long as the process runs (a lifespan task)."""
    if not can_trim():
        return
    state = AfterLoad(rss_bytes())
    while True:
        await anyio.sleep(check_seconds)
        count = running()
        if state.due(count, rss_bytes()):
            before = rss_bytes()
            await anyio.to_thread.run_sync(trim)
            after = rss_bytes()
            state.trimmed(count, after)
            logger.info("memory trimmed after load: RSS %d -> %d MB", before >> 20, after >> 20)
