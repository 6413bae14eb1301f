"""An injected clock: Unix time that a test moves forward, so a lease, a retention period
or a TTL lapses without the test waiting for it."""

from __future__ import annotations

import time


class Clock:
    """Real Unix time plus an offset the test raises (parts that read the real clock and
    parts given this one stay in order)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
