"""What the benchmark's phases measured, per server (plain data, no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.workload import ResumeResult


@dataclass
class Phase:
    """What one load phase measured on one server."""

    chats: int = 0
    complete: int = 0
    errors: list[str] = field(default_factory=list)
    chunks: int = 0
    server_cpu: float = 0.0
    redis_cpu: float = 0.0
    redis_reads: float = 0.0
    redis_commands: float = 0.0
    ttft: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    resumes: list[ResumeResult] = field(default_factory=list)
    resumes_complete: int = 0
    wall: float = 0.0
    bench_cpu: float = 0.0  # the benchmark's client and fake upstream, for context

    def per_100k(self, cpu: float) -> float:
        return cpu / self.chunks * 100_000 if self.chunks else math.nan


@dataclass
class Idle:
    asked: int = 0
    opened: int = 0
    open_at_measure: int = 0
    open_after_silence: int = 0
    rss_delta: float = math.nan
    redis_clients: float = math.nan
    redis_memory_delta: float = math.nan
    error: str = ""


@dataclass
class Memory:
    """The long-lived server's resident memory over the load matrix (bytes)."""

    baseline: float = math.nan  # after the warm-up, the server idle
    peak: float = math.nan  # VmHWM at the end of the load matrix
    after_load: float = math.nan  # `after_seconds` after the last load phase ended
    after_seconds: float = 0.0
