"""Side-by-side load benchmark: the bridge (Redis store) and a Node reference server (the
AI SDK's resumable-streams recipe: streamText + toUIMessageStreamResponse with
consumeSseStream into resumable-stream), in one run, on the same redis-server, against the
same fake OpenAI upstream (Chat Completions, bench/fake_server.py), with the same workload.

    python -m bench [--quick] [--chats 50] [--tokens 500] [--rate 50] [--heavy-chats 200]
                    [--idle-readers 1000] [--repeats 3] [--json results.json]

Prints one table: bridge, reference, bridge / reference for
  - server + Redis CPU-seconds per 100k delivered chunks (C chats unpaced; C at RATE tok/s);
  - answers complete (byte-exact) and lateness p99 at HEAVY chats x RATE tok/s;
  - time to first token p50/p99; resume time to first byte p50/p99 under C chats;
  - Redis round trips (socket reads) and commands per delivered chunk at C x RATE tok/s;
  - server RSS per 1,000 idle readers of a paused generation (the upstream stalls).
Lateness: a token's arrival at the client minus the time the upstream's pacing made it due.
CPU and latency rows are medians over --repeats; the others come from one run each.
A chunk is one UI message stream event read by the chat's POST (`[DONE]` not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench import servers
from bench.fake_server import answer_tokens, run_loop
from bench.http_client import StreamedResponse, get_json_bytes
from bench.workload import (
    ChatResult,
    ResumeResult,
    median,
    open_idle_reader,
    percentile,
    run_chat,
    run_resume,
    token_ends,
)
from bench.workload import lateness as lateness_of
from tests.redis_server import RedisServer

NAMES = ("bridge", "reference")


@dataclass
class Sizes:
    chats: int
    tokens: int
    rate: float
    heavy_chats: int
    idle_readers: int
    repeats: int
    idle_silence: float = 8.0  # seconds the paused generation stays silent
    stall_after: int = 5

    def timeout(self, rate: float, chats: int) -> float:
        """Per-request limit: generous next to the answer's paced duration."""
        paced = self.tokens / rate if rate > 0 else 0.0
        return 60.0 + 4 * paced + chats * 0.2


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


class Run:
    def __init__(
        self,
        sizes: Sizes,
        fake: servers.Server,
        probe: servers.RedisProbe,
        targets: dict[str, servers.Server],
    ) -> None:
        self.sizes = sizes
        self.fake = fake
        self.probe = probe
        self.targets = targets
        tokens = answer_tokens(sizes.tokens)
        self.expected = "".join(tokens)
        self.ends = token_ends(tokens)
        self.sequence = 0
        self.busy_starts = 0  # phases started before the servers were idle (bounded wait)

    async def _fake_get(self, path: str) -> bytes:
        return await get_json_bytes("127.0.0.1", self.fake.port, path)

    def _next(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}-{self.sequence}-{time.monotonic_ns() % 1_000_000_000}"

    def _complete(self, result: ChatResult | ResumeResult) -> bool:
        return not result.error and result.finished and result.text == self.expected

    async def quiesce(self) -> None:
        """Wait (bounded) until no generation of an earlier phase still reads the upstream:
        a server finishing abandoned work would bill its CPU to the next phase."""
        deadline = time.monotonic() + 120
        # Polled: the count lives in another process.
        while int(await self._fake_get("/bench/active")) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        # Then until no server still burns CPU on it (under 5% of a core over 0.5 s).
        pids = [target.pid for target in self.targets.values()] + [self.probe.pid]
        while time.monotonic() < deadline:
            before = sum(servers.cpu_seconds(pid) for pid in pids)
            await asyncio.sleep(0.5)
            if sum(servers.cpu_seconds(pid) for pid in pids) - before < 0.025:
                return
        self.busy_starts += 1

    async def load(self, name: str, chats: int, rate: float, resumes: bool = False) -> Phase:
        """C chats at once (and, with `resumes`, one resume per chat while they run)."""
        server = self.targets[name]
        await self.quiesce()
        await self._fake_get(f"/bench/rate/{rate:g}")
        phase = Phase(chats=chats)
        timeout = self.sizes.timeout(rate, chats)
        run_id = self._next(f"{name}-c{chats}")
        tags = [f"{run_id}-{index}" for index in range(chats)]
        before = self.probe.counters()
        cpu_before = servers.cpu_seconds(server.pid)
        bench_before = servers.cpu_seconds(os.getpid()) + servers.cpu_seconds(self.fake.pid)
        started = time.monotonic()

        began = [asyncio.Event() for _ in tags]

        async def resume_later(index: int) -> ResumeResult:
            # Spread over the answers' paced duration, each once its chat has begun.
            span = self.sizes.tokens / rate if rate > 0 else 1.0
            await asyncio.sleep(span * (0.1 + 0.8 * index / max(1, chats)))
            try:
                async with asyncio.timeout(timeout):
                    await began[index].wait()
            except TimeoutError:
                return ResumeResult(error="its chat never began")
            return await run_resume(server.port, tags[index], timeout)

        chat_tasks = [
            run_chat(server.port, tag, tag, timeout, began[index]) for index, tag in enumerate(tags)
        ]
        resume_tasks = [resume_later(index) for index in range(chats)] if resumes else []
        results = await asyncio.gather(*chat_tasks, *resume_tasks)
        phase.wall = time.monotonic() - started
        phase.server_cpu = servers.cpu_seconds(server.pid) - cpu_before
        phase.bench_cpu = (
            servers.cpu_seconds(os.getpid()) + servers.cpu_seconds(self.fake.pid) - bench_before
        )
        after = self.probe.counters()
        phase.redis_cpu = after["cpu"] - before["cpu"]
        phase.redis_reads = after["reads"] - before["reads"]
        phase.redis_commands = after["commands"] - before["commands"]
        starts: dict[str, float] = orjson.loads(await self._fake_get("/bench/starts"))

        for result in results[:chats]:
            assert isinstance(result, ChatResult)
            phase.chunks += result.chunks
            if self._complete(result):
                phase.complete += 1
            else:
                phase.errors.append(result.error or _mismatch(result.text, self.expected))
            if not math.isnan(result.first_token_at):
                phase.ttft.append(result.first_token_at - result.sent_at)
            if rate > 0 and result.tag in starts:
                phase.late += lateness_of(result.arrivals, self.ends, starts[result.tag], rate)
        for resume in results[chats:]:
            assert isinstance(resume, ResumeResult)
            phase.resumes.append(resume)
            if self._complete(resume):
                phase.resumes_complete += 1
            elif not resume.error:
                resume.error = _mismatch(resume.text, self.expected)
        return phase

    async def idle_readers(self, name: str, count: int) -> Idle:
        """Readers of a paused generation: the upstream stalls after a few tokens, and
        `count` resumes of that chat hold their stream open without reading."""
        server = self.targets[name]
        idle = Idle(asked=count)
        await self.quiesce()
        await self._fake_get(f"/bench/rate/{self.sizes.rate:g}")
        tag = self._next(f"{name}-stall")
        started = asyncio.Event()
        producer = asyncio.create_task(run_chat(server.port, tag, tag, 600, started))
        readers: list[StreamedResponse] = []
        try:
            try:
                async with asyncio.timeout(30):
                    await started.wait()
            except TimeoutError:
                idle.error = "the paused generation never started"
                return idle
            await asyncio.sleep(0.5)  # let the producer's buffers settle before the baseline
            redis_before = self.probe.counters()
            gate = asyncio.Semaphore(200)

            async def one() -> StreamedResponse | None:
                async with gate:
                    return await open_idle_reader(server.port, tag, 60)

            # Memory per reader is measured between the first half of the readers and all
            # of them: a baseline taken before any reader would also count what the server
            # frees or grows meanwhile for other reasons (after the load phases, a Python
            # server hands freed memory back, which made the delta negative).
            first_half = count // 2
            opened = await asyncio.gather(*[one() for _ in range(first_half)])
            await asyncio.sleep(1.0)  # memory measurement, not synchronisation
            rss_half = servers.rss_bytes(server.pid)
            opened += await asyncio.gather(*[one() for _ in range(count - first_half)])
            readers = [reader for reader in opened if reader is not None]
            all_open = time.monotonic()
            idle.opened = len(readers)
            await asyncio.sleep(1.0)  # memory measurement, not synchronisation
            idle.open_at_measure = sum(1 for reader in readers if not reader.reader.at_eof())
            redis_after = self.probe.counters()
            idle.redis_clients = servers.connections_to(server.pid, self.probe.port)
            idle.redis_memory_delta = redis_after["used_memory"] - redis_before["used_memory"]
            second_half = sum(1 for reader in opened[first_half:] if reader is not None)
            if second_half:
                idle.rss_delta = (servers.rss_bytes(server.pid) - rss_half) / second_half
            # Every reader silent long enough to outlast a client library's default timeout.
            await asyncio.sleep(max(0.0, self.sizes.idle_silence - (time.monotonic() - all_open)))
            idle.open_after_silence = sum(1 for reader in readers if not reader.reader.at_eof())
        finally:
            for reader in readers:
                reader.close()
            await self._fake_get("/bench/release")
            try:
                async with asyncio.timeout(self.sizes.timeout(self.sizes.rate, 1)):
                    await producer
            except TimeoutError:
                producer.cancel()
        return idle


def _mismatch(text: str, expected: str) -> str:
    if not text:
        return "no text"
    if expected.startswith(text):
        return f"incomplete: {len(text)}/{len(expected)} chars"
    return "text differs from the expected answer"


async def _guard(label: str, failures: list[str], action: Awaitable[Any]) -> Any:
    try:
        return await action
    except Exception as error:  # one phase failing must not lose the table
        failures.append(f"{label}: {type(error).__name__}: {error}")
        return None


async def measure(run: Run, sizes: Sizes, names: list[str]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {
        name: {"unpaced": [], "paced": [], "failures": []} for name in names
    }
    for name in names:  # warm-up of every path measured: imports, JIT, connection pools
        await _guard(f"{name} warm-up", results[name]["failures"], run.load(name, 5, 0))
        await _guard(
            f"{name} warm-up",
            results[name]["failures"],
            run.load(name, 5, sizes.rate * 4, resumes=True),
        )
    for repeat in range(sizes.repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            failures = results[name]["failures"]
            for key, rate in (("unpaced", 0.0), ("paced", sizes.rate)):
                print(f"  {name}: C={sizes.chats} rate={rate:g} (repeat {repeat + 1})", flush=True)
                phase = await _guard(
                    f"{name} {key}",
                    failures,
                    run.load(name, sizes.chats, rate),
                )
                if phase is not None:
                    results[name][key].append(phase)
    for name in names:
        failures = results[name]["failures"]
        print(f"  {name}: C={sizes.chats} rate={sizes.rate:g} with resumes", flush=True)
        results[name]["resume"] = await _guard(
            f"{name} resume",
            failures,
            run.load(name, sizes.chats, sizes.rate, resumes=True),
        )
        print(f"  {name}: C={sizes.heavy_chats} rate={sizes.rate:g}", flush=True)
        results[name]["heavy"] = await _guard(
            f"{name} heavy", failures, run.load(name, sizes.heavy_chats, sizes.rate)
        )
    # Last, and the reference first: a server cutting thousands of readers may stay busy
    # (logging) long after, which must not be billed to the other server's phases.
    for name in sorted(names, key=lambda item: item != "reference"):
        failures = results[name]["failures"]
        print(f"  {name}: {sizes.idle_readers} idle readers", flush=True)
        results[name]["idle"] = await _guard(
            f"{name} idle", failures, run.idle_readers(name, sizes.idle_readers)
        )
    if run.busy_starts:
        for name in names:
            results[name]["failures"].append(
                f"{run.busy_starts} phases began with a server still busy after 120 s"
            )
    return results


# ------------------------------------------------------------------ the table


def _rows(sizes: Sizes, result: dict[str, Any]) -> dict[str, float]:
    """Every figure of one server, by row label (NaN when not measured)."""
    nan = math.nan
    c, r, h = sizes.chats, f"{sizes.rate:g}", sizes.heavy_chats
    unpaced: list[Phase] = result["unpaced"]
    paced: list[Phase] = result["paced"]
    resume: Phase | None = result.get("resume")
    heavy: Phase | None = result.get("heavy")
    idle: Idle | None = result.get("idle")

    def over(phases: list[Phase], value: Callable[[Phase], float]) -> float:
        return median([value(phase) for phase in phases])

    ms = 1000.0
    resumes = resume.resumes if resume else []
    ttfb = [item.first_byte for item in resumes if not math.isnan(item.first_byte)]
    return {
        f"CPU-s/100k chunks, C={c} unpaced (server+Redis)": over(
            unpaced, lambda p: p.per_100k(p.server_cpu + p.redis_cpu)
        ),
        f"  of which Redis, C={c} unpaced": over(unpaced, lambda p: p.per_100k(p.redis_cpu)),
        f"CPU-s/100k chunks, C={c} @{r} tok/s (server+Redis)": over(
            paced, lambda p: p.per_100k(p.server_cpu + p.redis_cpu)
        ),
        f"  of which Redis, C={c} @{r} tok/s": over(paced, lambda p: p.per_100k(p.redis_cpu)),
        f"  bench client+upstream CPU-s/100k, C={c} @{r}": over(
            paced, lambda p: p.per_100k(p.bench_cpu)
        ),
        f"answers complete, C={c} (all repeats, %)": over(
            unpaced + paced, lambda p: 100.0 * p.complete / p.chats
        ),
        f"time to first token p50 ms, C={c} @{r}": over(
            paced, lambda p: percentile(p.ttft, 0.5) * ms
        ),
        f"time to first token p99 ms, C={c} @{r}": over(
            paced, lambda p: percentile(p.ttft, 0.99) * ms
        ),
        f"lateness p99 ms, C={c} @{r}": over(paced, lambda p: percentile(p.late, 0.99) * ms),
        f"answers complete, C={h} @{r} (of {h})": float(heavy.complete) if heavy else nan,
        f"lateness p99 ms, C={h} @{r}": percentile(heavy.late, 0.99) * ms if heavy else nan,
        f"time to first token p50 ms, C={h} @{r}": (
            percentile(heavy.ttft, 0.5) * ms if heavy else nan
        ),
        f"time to first token p99 ms, C={h} @{r}": (
            percentile(heavy.ttft, 0.99) * ms if heavy else nan
        ),
        f"resume TTFB p50 ms, under C={c} @{r}": percentile(ttfb, 0.5) * ms,
        f"resume TTFB p99 ms, under C={c} @{r}": percentile(ttfb, 0.99) * ms,
        f"resumes complete, byte-exact (of {c})": (
            float(resume.resumes_complete) if resume else nan
        ),
        f"Redis round trips/chunk, C={c} @{r}": over(
            paced, lambda p: p.redis_reads / p.chunks if p.chunks else nan
        ),
        f"Redis commands/chunk, C={c} @{r}": over(
            paced, lambda p: p.redis_commands / p.chunks if p.chunks else nan
        ),
        f"server RSS MB per 1,000 idle readers (N={sizes.idle_readers})": (
            idle.rss_delta * 1000 / 1e6 if idle else nan
        ),
        "idle readers opened": float(idle.opened) if idle else nan,
        "  still open when measured": float(idle.open_at_measure) if idle else nan,
        f"  still open after {sizes.idle_silence:g}+ s of silence": (
            float(idle.open_after_silence) if idle else nan
        ),
        "server's Redis connections with the idle readers": idle.redis_clients if idle else nan,
        "Redis used_memory MB per 1,000 idle readers": (
            idle.redis_memory_delta * 1000 / 1e6 / idle.opened if idle and idle.opened else nan
        ),
    }


def _format(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def print_table(
    sizes: Sizes, results: dict[str, dict[str, Any]], load_before: float
) -> dict[str, dict[str, float]]:
    rows = {name: _rows(sizes, result) for name, result in results.items()}
    labels = list(next(iter(rows.values())))
    width = max(len(label) for label in labels) + 2
    print(
        f"\n{sizes.tokens}-token answers, fake upstream Chat Completions; "
        f"repeats: {sizes.repeats}; machine: {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} (before: {load_before:.1f})"
    )
    header = f"{'':{width}}" + "".join(f"{name:>12}" for name in rows)
    if set(NAMES) <= set(rows):
        header += f"{'bridge/ref':>12}"
    print(header)
    for label in labels:
        line = f"{label:{width}}" + "".join(f"{_format(rows[n][label]):>12}" for n in rows)
        if set(NAMES) <= set(rows):
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
        for key in ("unpaced", "paced"):
            for phase in result[key]:
                problems += [f"{key}: {error}" for error in phase.errors]
        for key in ("resume", "heavy"):
            phase = result.get(key)
            if phase is not None:
                problems += [f"{key}: {error}" for error in phase.errors]
                problems += [f"resume: {item.error}" for item in phase.resumes if item.error]
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
    return rows


# ------------------------------------------------------------------ set-up


def _node_binary() -> str:
    if node := os.environ.get("BENCH_NODE"):
        return node
    script = servers.ROOT / "scripts" / "ensure-bench-deps.sh"
    return subprocess.run(
        ["bash", str(script)], check=True, capture_output=True, text=True
    ).stdout.strip()


def parse_sizes(argv: list[str] | None = None) -> tuple[Sizes, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes")
    parser.add_argument("--chats", type=int, help="C (default 50; quick 10)")
    parser.add_argument("--tokens", type=int, help="tokens per answer (default 500; quick 100)")
    parser.add_argument("--rate", type=float, default=50.0, help="paced tokens per second")
    parser.add_argument("--heavy-chats", type=int, help="overload C (default 200; quick 20)")
    parser.add_argument(
        "--idle-readers", type=int, help="idle readers (default 1000, or 10000; quick 100)"
    )
    parser.add_argument("--repeats", type=int, help="repeats of the CPU phases (default 3)")
    parser.add_argument("--servers", default=",".join(NAMES), help="bridge,reference")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    sizes = Sizes(
        chats=args.chats or (10 if quick else 50),
        tokens=args.tokens or (100 if quick else 500),
        rate=args.rate,
        heavy_chats=args.heavy_chats or (20 if quick else 200),
        idle_readers=args.idle_readers or (100 if quick else 1000),
        repeats=args.repeats or (1 if quick else 3),
    )
    return sizes, args


def main() -> None:
    sizes, args = parse_sizes()
    names = [name for name in args.servers.split(",") if name]
    unknown = set(names) - set(NAMES)
    if unknown or not names:
        raise SystemExit(f"--servers takes bridge and/or reference, not {sorted(unknown)}")
    binary = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
    if not binary:
        raise SystemExit("redis-server not found: run `make bench`")
    node = _node_binary() if "reference" in names else ""

    load_before = os.getloadavg()[0]
    redis_server = RedisServer(binary)
    started: list[servers.Server] = []
    try:
        redis_server.start()
        probe = servers.RedisProbe(redis_server.url)
        fake = servers.start_fake(sizes.tokens, sizes.stall_after)
        started.append(fake)
        targets: dict[str, servers.Server] = {}
        for name in names:
            if name == "bridge":
                targets[name] = servers.start_bridge(fake.port, redis_server.url, {})
            else:
                targets[name] = servers.start_reference(node, fake.port, redis_server.url)
            started.append(targets[name])
        print(f"bench: {sizes}", flush=True)
        results = run_loop(measure(Run(sizes, fake, probe, targets), sizes, names))
        for name, target in targets.items():
            results[name]["log"] = str(target.log.relative_to(servers.ROOT))
            results[name]["log_errors"] = target.error_lines()
        probe.close()
    finally:
        for server in reversed(started):
            server.stop()
        redis_server.close()
    rows = print_table(sizes, results, load_before)
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"sizes": sizes.__dict__, "rows": rows}, file, indent=2)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
