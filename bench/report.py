"""The benchmark's table (every figure by row, bridge / reference ratios) and which of the
targets hold."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.fanout import Fanout
from bench.results import Idle, Memory, Phase
from bench.workload import median, percentile

NAMES = ("bridge", "reference")
MS = 1000.0
MB = 1e6


@dataclass(frozen=True)
class Point:
    """One point of the load matrix: C chats at `rate` tok/s (0: unpaced)."""

    chats: int
    rate: float

    @property
    def label(self) -> str:
        return f"C={self.chats} " + (f"@{self.rate:g}" if self.rate else "unpaced")


def fanout_label(count: int, processes: int) -> str:
    return f"fan-out N={count:,}, {processes} process{'es' if processes > 1 else ''}"


def _over(phases: list[Phase], value: Callable[[Phase], float]) -> float:
    return median([value(phase) for phase in phases])


def _point_rows(point: Point, phases: list[Phase]) -> dict[str, float]:
    label = point.label
    rows = {
        f"{label}: CPU-s/100k chunks (server+Redis)": _over(
            phases, lambda p: p.per_100k(p.server_cpu + p.redis_cpu)
        ),
        f"{label}:   of which Redis": _over(phases, lambda p: p.per_100k(p.redis_cpu)),
        f"{label}: time to first token p50 ms": _over(
            phases, lambda p: percentile(p.ttft, 0.5) * MS
        ),
        f"{label}: time to first token p99 ms": _over(
            phases, lambda p: percentile(p.ttft, 0.99) * MS
        ),
    }
    if point.rate:
        rows[f"{label}: lateness p99 ms"] = _over(phases, lambda p: percentile(p.late, 0.99) * MS)
    rows[f"{label}: answers complete (%)"] = _over(
        phases, lambda p: 100.0 * p.complete / p.chats if p.chats else math.nan
    )
    return rows


def rows_of(
    points: list[Point], fanouts: list[tuple[int, int]], idle_readers: int, result: dict[str, Any]
) -> dict[str, float]:
    """Every figure of one server, by row label (NaN when not measured)."""
    nan = math.nan
    rows: dict[str, float] = {}
    for point in points:
        rows |= _point_rows(point, result["points"].get(point, []))
    middle = points[len(points) // 2] if points else None
    paced = [p for p in points if p.rate]
    reference_point = paced[len(paced) // 2] if paced else middle
    if reference_point is not None:
        phases = result["points"].get(reference_point, [])
        label = reference_point.label
        rows[f"{label}: bench client+upstream CPU-s/100k"] = _over(
            phases, lambda p: p.per_100k(p.bench_cpu)
        )
        rows[f"{label}: Redis round trips/chunk"] = _over(
            phases, lambda p: p.redis_reads / p.chunks if p.chunks else nan
        )
        rows[f"{label}: Redis commands/chunk"] = _over(
            phases, lambda p: p.redis_commands / p.chunks if p.chunks else nan
        )
    resume: Phase | None = result.get("resume")
    ttfb = [
        item.first_byte
        for item in (resume.resumes if resume else [])
        if not math.isnan(item.first_byte)
    ]
    under = f"under C={resume.chats}" if resume else "under load"
    rows[f"resume TTFB p50 ms, {under}"] = percentile(ttfb, 0.5) * MS
    rows[f"resume TTFB p99 ms, {under}"] = percentile(ttfb, 0.99) * MS
    rows["resumes complete, byte-exact (%)"] = (
        100.0 * resume.resumes_complete / resume.chats if resume and resume.chats else nan
    )
    memory: Memory = result.get("memory") or Memory()
    rows["RSS MB, warmed up (baseline)"] = memory.baseline / MB
    rows["peak RSS MB over the load matrix"] = memory.peak / MB
    rows[f"RSS MB {memory.after_seconds:g} s after the load"] = memory.after_load / MB
    rows["  after-load / baseline"] = (
        memory.after_load / memory.baseline if memory.baseline else nan
    )
    fan: dict[tuple[int, int], Fanout] = result.get("fanout", {})
    for count, processes in fanouts:
        phase = fan.get((count, processes))
        label = fanout_label(count, processes)
        rows[f"{label}: delivery p50 ms"] = percentile(phase.latency, 0.5) * MS if phase else nan
        rows[f"{label}: delivery p99 ms"] = percentile(phase.latency, 0.99) * MS if phase else nan
        rows[f"{label}: CPU-ms/1k delivered chunks"] = (
            phase.cpu / phase.delivered * 1e6 if phase and phase.delivered else nan
        )
        rows[f"{label}: RSS KB per reader"] = phase.rss_per_reader / 1e3 if phase else nan
        rows[f"{label}: readers byte-exact (%)"] = (
            100.0 * phase.exact / phase.readers if phase and phase.readers else nan
        )
    idle: Idle | None = result.get("idle")
    rows[f"server RSS MB per 1,000 idle readers (N={idle_readers})"] = (
        idle.rss_delta * 1000 / MB if idle else nan
    )
    rows["idle readers opened"] = float(idle.opened) if idle else nan
    rows["  still open after the silence"] = float(idle.open_after_silence) if idle else nan
    rows["server's Redis connections with the idle readers"] = idle.redis_clients if idle else nan
    return rows


def _format(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def print_table(
    header: str, rows: dict[str, dict[str, float]], results: dict[str, dict[str, Any]]
) -> None:
    labels = list(next(iter(rows.values())))
    width = max(len(label) for label in labels) + 2
    print(f"\n{header}; machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    both = set(NAMES) <= set(rows)
    line = f"{'':{width}}" + "".join(f"{name:>12}" for name in rows)
    print(line + (f"{'bridge/ref':>12}" if both else ""))
    for label in labels:
        line = f"{label:{width}}" + "".join(f"{_format(rows[n][label]):>12}" for n in rows)
        if both:
            bridge, reference = rows["bridge"][label], rows["reference"][label]
            ratio = bridge / reference if reference and not math.isnan(reference) else math.nan
            line += f"{_format(ratio):>12}"
        print(line)
    for name, result in results.items():
        problems = list(result["failures"])
        if result.get("log_errors"):
            problems.append(
                f"{result['log_errors']} lines mentioning an error in its log {result['log']}"
            )
        for point, phases in result["points"].items():
            for phase in phases:
                problems += [f"{point.label}: {error}" for error in phase.errors]
        resume = result.get("resume")
        if resume is not None:
            problems += [f"resume phase: {error}" for error in resume.errors]
            problems += [f"resume: {item.error}" for item in resume.resumes if item.error]
        for key, fan in result.get("fanout", {}).items():
            problems += [f"{fanout_label(*key)}: {error}" for error in fan.errors]
        idle = result.get("idle")
        if idle is not None and idle.error:
            problems.append(f"idle: {idle.error}")
        if problems:
            counts: dict[str, int] = {}
            for problem in problems:
                counts[problem] = counts.get(problem, 0) + 1
            print(f"\n{name}: {len(problems)} failures")
            for problem, times in sorted(counts.items(), key=lambda item: -item[1])[:8]:
                print(f"  {times:5d} x {problem}")


# ------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Verdict:
    target: str
    holds: bool | None  # None: not measured
    detail: str


def _no_worse(rows: dict[str, dict[str, float]], label: str) -> Verdict:
    bridge, reference = rows["bridge"].get(label, math.nan), rows["reference"].get(label, math.nan)
    detail = f"{_format(bridge)} vs {_format(reference)}"
    if math.isnan(bridge) or math.isnan(reference):
        return Verdict(f"{label}: no worse than the reference", None, detail)
    return Verdict(f"{label}: no worse than the reference", bridge <= reference, detail)


def _ratio_at_most(rows: dict[str, dict[str, float]], label: str, limit: float) -> Verdict:
    bridge, reference = rows["bridge"].get(label, math.nan), rows["reference"].get(label, math.nan)
    ratio = bridge / reference if reference else math.nan
    target = f"{label}: at most {limit:g}x the reference's"
    if math.isnan(ratio):
        return Verdict(target, None, "not measured")
    return Verdict(target, ratio <= limit, f"{_format(ratio)}x")


def _bound(target: str, value: float, holds: Callable[[float], bool], unit: str = "") -> Verdict:
    if math.isnan(value):
        return Verdict(target, None, "not measured")
    return Verdict(target, holds(value), f"{_format(value)}{unit}")


def verdicts(
    rows: dict[str, dict[str, float]],
    points: list[Point],
    fanouts: list[tuple[int, int]],
    middle_chats: int,
    heavy: Point | None,
) -> list[Verdict]:
    """The issue's targets, each with the figures that decide it."""
    if not set(NAMES) <= set(rows):
        return []
    bridge = rows["bridge"]
    found: list[Verdict] = []
    for point in points:
        for what in ("time to first token p50 ms", "time to first token p99 ms"):
            found.append(_no_worse(rows, f"{point.label}: {what}"))
        if point.rate:
            found.append(_no_worse(rows, f"{point.label}: lateness p99 ms"))
    for label in bridge:
        if label.startswith("resume TTFB"):
            found.append(_no_worse(rows, label))
    found.append(_no_worse(rows, "peak RSS MB over the load matrix"))
    after = next((label for label in bridge if label.endswith("after the load")), "")
    found.append(
        _bound(
            f"bridge {after} within 20% of its baseline",
            bridge.get("  after-load / baseline", math.nan),
            lambda value: value <= 1.2,
            "x baseline",
        )
    )
    for point in points:
        cpu = f"{point.label}: CPU-s/100k chunks (server+Redis)"
        if point.chats == middle_chats:
            found.append(_ratio_at_most(rows, cpu, 0.35 if point.rate else 0.25))
        elif point.chats == 1 and point.rate:
            found.append(_ratio_at_most(rows, cpu, 1.0))
    if fanouts:
        largest = max(count for count, _ in fanouts)
        for count, processes in fanouts:
            if count != largest:
                continue
            label = fanout_label(count, processes)
            found.append(
                _bound(
                    f"{label}: delivery p99 at most 50 ms",
                    bridge.get(f"{label}: delivery p99 ms", math.nan),
                    lambda value: value <= 50,
                    " ms",
                )
            )
            found.append(_ratio_at_most(rows, f"{label}: CPU-ms/1k delivered chunks", 1.0))
            found.append(
                _bound(
                    f"{label}: every reader byte-exact",
                    bridge.get(f"{label}: readers byte-exact (%)", math.nan),
                    lambda value: value == 100,
                    "%",
                )
            )
    if heavy is not None:
        found.append(
            _bound(
                f"{heavy.label}: every answer complete",
                bridge.get(f"{heavy.label}: answers complete (%)", math.nan),
                lambda value: value == 100,
                "%",
            )
        )
    ttfb99 = next((label for label in bridge if label.startswith("resume TTFB p99")), "")
    found.append(
        _bound(
            f"{ttfb99} under 50 ms",
            bridge.get(ttfb99, math.nan),
            lambda value: value < 50,
            " ms",
        )
    )
    return found


def print_verdicts(found: list[Verdict]) -> None:
    if not found:
        return
    held = sum(1 for verdict in found if verdict.holds)
    print(f"\ntargets: {held} of {len(found)} hold")
    for verdict in found:
        mark = {True: "holds", False: "MISSED", None: "n/a"}[verdict.holds]
        print(f"  {mark:>6}  {verdict.target.strip()}  ({verdict.detail})")
