"""Prometheus metrics, one registry per application (several apps in one process, as in
tests or an embedding host, never share counters).

Names follow Prometheus conventions: `bridge_` prefix, base units (seconds, bytes),
`_total` counters. Labels are bounded sets (outcome, transport, operation, kind): never a
chat id or a user.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.generations_running = Gauge(
            "bridge_generations_running", "Generations producing in this process", registry=r
        )
        self.generations = Counter(
            "bridge_generations", "Generations ended, by outcome", ["outcome"], registry=r
        )
        self.chunks = Counter("bridge_chunks", "Chunks written to generation logs", registry=r)
        self.tokens = Counter(
            "bridge_tokens", "Model tokens reported by providers", ["kind"], registry=r
        )
        self.time_to_first_token = Histogram(
            "bridge_time_to_first_token_seconds",
            "From a generation's start to its first content chunk",
            buckets=(*_LATENCY_BUCKETS, 30, 60),
            registry=r,
        )
        self.generation_duration = Histogram(
            "bridge_generation_duration_seconds",
            "From a generation's start to its end",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.readers = Gauge(
            "bridge_readers_live",
            "Readers following a log, by transport",
            ["transport"],
            registry=r,
        )
        self.resumes = Counter(
            "bridge_resumes",
            "Resumed reads of a generation, by transport",
            ["transport"],
            registry=r,
        )
        self.resume_first_byte = Histogram(
            "bridge_resume_first_byte_seconds",
            "From a resume request to its first chunk",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.store_latency = Histogram(
            "bridge_store_operation_seconds",
            "Session store operations",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "bridge_store_errors", "Session store operations that failed", ["operation"], registry=r
        )
        self.provider_errors = Counter(
            "bridge_provider_errors", "Provider failures, by kind", ["kind"], registry=r
        )
        self.limits_hit = Counter(
            "bridge_limits_hit", "Requests refused by a limit", ["limit"], registry=r
        )
        self.takeovers = Counter(
            "bridge_takeovers", "Generations this process took over from another", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
