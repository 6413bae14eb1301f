"""Side-by-side load benchmark: the bridge (Redis store) and a Node reference server (the
AI SDK's resumable-streams recipe: streamText + toUIMessageStreamResponse with
consumeSseStream into resumable-stream), in one run, on the same redis-server, against the
same fake OpenAI upstream (Chat Completions, bench/fake_server.py), with the same workload.

    python -m bench [--quick] [--chats 50] [--tokens 500] [--rate 50] [--heavy-chats 200]
                    [--fanout 100,1000] [--idle-readers 1000] [--repeats 3]
                    [--after-load 60] [--json results.json]

Prints one table: bridge, reference, bridge / reference, and which targets hold:
  - every point of the load matrix (C = 1, --chats, --heavy-chats; unpaced and at RATE
    tok/s): server + Redis CPU-seconds per 100k delivered chunks, time to first token
    p50/p99, lateness p99 (paced), answers complete (byte-exact);
  - resume time to first byte p50/p99 under --chats chats at RATE;
  - Redis round trips (socket reads) and commands per delivered chunk at C x RATE tok/s;
  - the long-lived server's RSS: warmed up, peak over the load matrix, --after-load s
    after it;
  - fan-out: one chat at RATE tok/s followed live by N readers on one process and spread
    over two (bench/fanout.py): delivery latency p50/p99, CPU per delivered chunk, RSS per
    reader, readers byte-exact;
  - server RSS per 1,000 idle readers of a paused generation (the upstream stalls).
Lateness: a token's arrival at the client minus the time the upstream's pacing made it due.
CPU and latency rows of the matrix are medians over --repeats; the others come from one
run each. A chunk is one UI message stream event read by the chat's POST (`[DONE]` not
counted).
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
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import orjson

from bench import servers
from bench.fake_server import answer_tokens, run_loop
from bench.fanout import Fanout, attach_all, measure_readers
from bench.http_client import StreamedResponse, get_json_bytes
from bench.report import NAMES, Point, print_table, print_verdicts, rows_of, verdicts
from bench.results import Idle, Memory, Phase
from bench.workload import (
    ChatResult,
    ResumeResult,
    open_idle_reader,
    run_chat,
    run_resume,
    token_ends,
)
from bench.workload import lateness as lateness_of
from tests.support.redis import RedisServer


@dataclass
class Sizes:
    chats: int
    tokens: int
    rate: float
    heavy_chats: int
    idle_readers: int
    repeats: int
    fanout: tuple[int, ...] = (100, 1000)
    after_load: float = 60.0  # seconds after the load matrix before RSS is read again
    idle_silence: float = 8.0  # seconds the paused generation stays silent
    stall_after: int = 5

    def timeout(self, rate: float, chats: int) -> float:
        """Per-request limit: generous next to the answer's paced duration."""
        paced = self.tokens / rate if rate > 0 else 0.0
        return 60.0 + 4 * paced + chats * 0.2

    def points(self) -> list[Point]:
        counts = sorted({1, self.chats, self.heavy_chats})
        return [Point(count, rate) for count in counts for rate in (0.0, self.rate)]


class Run:
    def __init__(
        self,
        sizes: Sizes,
        fake: servers.Server,
        probe: servers.RedisProbe,
        targets: dict[str, servers.Server],
        redis_url: str = "",
        node: str = "",
    ) -> None:
        self.sizes = sizes
        self.redis_url = redis_url
        self.node = node
        self.extras: dict[str, servers.Server] = {}
        """A second process of each server (fan-out spread over two), started on demand."""
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
        pids = [target.pid for target in [*self.targets.values(), *self.extras.values()]]
        pids.append(self.probe.pid)
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

    def second(self, name: str) -> servers.Server:
        """A second process of `name` on the same Redis and upstream (started once)."""
        if name not in self.extras:
            if name == "bridge":
                extra = servers.start_bridge(self.fake.port, self.redis_url, {}, "bridge 2")
            else:
                extra = servers.start_reference(
                    self.node, self.fake.port, self.redis_url, "reference 2"
                )
            self.extras[name] = extra
        return self.extras[name]

    async def fanout(self, name: str, count: int, processes: int) -> Fanout:
        """One chat at RATE tok/s followed live by `count` readers spread over
        `processes` processes of the server (the chat's producer on the first)."""
        primary = self.targets[name]
        group = [primary] + ([self.second(name)] if processes > 1 else [])
        phase = Fanout(readers=count, processes=processes)
        await self.quiesce()
        rate = self.sizes.rate
        await self._fake_get(f"/bench/rate/{rate:g}")
        tag = self._next(f"{name}-fan-stall")
        limit = self.sizes.timeout(rate, count)
        began = asyncio.Event()
        producer = asyncio.create_task(run_chat(primary.port, tag, tag, limit, began))
        tasks: list[asyncio.Task[None]] = []
        released = False
        try:
            try:
                async with asyncio.timeout(30):
                    await began.wait()
            except TimeoutError:
                phase.errors.append("the chat never started")
                return phase
            await asyncio.sleep(0.5)  # memory measurement, not synchronisation
            rss_before = sum(servers.rss_bytes(server.pid) for server in group)
            ports = [server.port for server in group]
            readers, tasks, phase.attach_seconds = await attach_all(ports, tag, count, limit)
            phase.attached = sum(1 for reader in readers if reader.pieces)
            await asyncio.sleep(1.0)  # memory measurement, not synchronisation
            rss_after = sum(servers.rss_bytes(server.pid) for server in group)
            if phase.attached:
                phase.rss_per_reader = (rss_after - rss_before) / phase.attached
            pids = [server.pid for server in group]
            cpu_before = sum(servers.cpu_seconds(pid) for pid in pids)
            redis_before = self.probe.counters()["cpu"]
            released_at = time.monotonic()
            await self._fake_get("/bench/release")
            released = True
            await asyncio.gather(*tasks)
            chat = await producer
            phase.cpu = sum(servers.cpu_seconds(pid) for pid in pids) - cpu_before
            phase.cpu += self.probe.counters()["cpu"] - redis_before
            if not self._complete(chat):
                phase.errors.append(
                    f"producer: {chat.error or _mismatch(chat.text, self.expected)}"
                )
            starts: dict[str, float] = orjson.loads(await self._fake_get("/bench/starts"))
            if tag not in starts:
                phase.errors.append("the upstream never saw the chat")
                return phase
            measure_readers(
                readers,
                self.expected,
                self.ends,
                starts[tag],
                rate,
                released_at,
                self.sizes.stall_after,
                phase,
            )
        finally:
            if not released:
                await self._fake_get("/bench/release")
            for task in tasks:
                task.cancel()
            if not producer.done():
                producer.cancel()
        return phase

    async def memory(self, name: str) -> float:
        return float(servers.rss_bytes(self.targets[name].pid))

    def stop_extras(self) -> None:
        for extra in self.extras.values():
            extra.stop()
        self.extras.clear()


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
        name: {"points": {}, "fanout": {}, "failures": [], "memory": Memory()} for name in names
    }
    for name in names:  # warm-up of every path measured: imports, JIT, connection pools
        await _guard(f"{name} warm-up", results[name]["failures"], run.load(name, 5, 0))
        await _guard(
            f"{name} warm-up",
            results[name]["failures"],
            run.load(name, 5, sizes.rate * 4, resumes=True),
        )
    await run.quiesce()
    for name in names:
        results[name]["memory"].baseline = await run.memory(name)
    # The load matrix; the servers' order alternates between repeats.
    for repeat in range(sizes.repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for point in sizes.points():
            for name in order:
                print(f"  {name}: {point.label} (repeat {repeat + 1})", flush=True)
                phase = await _guard(
                    f"{name} {point.label}",
                    results[name]["failures"],
                    run.load(name, point.chats, point.rate),
                )
                if phase is not None:
                    results[name]["points"].setdefault(point, []).append(phase)
    for name in names:
        print(f"  {name}: C={sizes.chats} @{sizes.rate:g} with resumes", flush=True)
        results[name]["resume"] = await _guard(
            f"{name} resume",
            results[name]["failures"],
            run.load(name, sizes.chats, sizes.rate, resumes=True),
        )
    # Memory: the peak over the matrix, then what the idle server holds a while after.
    for name in names:
        results[name]["memory"].peak = float(servers.peak_rss_bytes(run.targets[name].pid))
    print(f"  both idle for {sizes.after_load:g} s (memory after the load)", flush=True)
    await asyncio.sleep(sizes.after_load)  # the measured delay itself, not synchronisation
    for name in names:
        memory = results[name]["memory"]
        memory.after_load = await run.memory(name)
        memory.after_seconds = sizes.after_load
    try:
        for processes in (1, 2):
            for count in sizes.fanout:
                for name in names:
                    print(f"  {name}: fan-out to {count} readers on {processes}", flush=True)
                    fan = await _guard(
                        f"{name} fan-out {count}x{processes}",
                        results[name]["failures"],
                        run.fanout(name, count, processes),
                    )
                    if fan is not None:
                        results[name]["fanout"][(count, processes)] = fan
    finally:
        run.stop_extras()
    # Last, and the reference first: a server cutting thousands of readers may stay busy
    # (logging) long after, which must not be billed to the other server's phases.
    for name in sorted(names, key=lambda item: item != "reference"):
        print(f"  {name}: {sizes.idle_readers} idle readers", flush=True)
        results[name]["idle"] = await _guard(
            f"{name} idle", results[name]["failures"], run.idle_readers(name, sizes.idle_readers)
        )
    if run.busy_starts:
        for name in names:
            results[name]["failures"].append(
                f"{run.busy_starts} phases began with a server still busy after 120 s"
            )
    return results


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
    parser.add_argument("--repeats", type=int, help="repeats of the load matrix (default 3)")
    parser.add_argument(
        "--fanout", help="readers of the fan-out chat, comma-separated (default 100,1000)"
    )
    parser.add_argument(
        "--after-load",
        type=float,
        help="seconds idle after the load before RSS is read again (default 60; quick 10)",
    )
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
        fanout=tuple(int(n) for n in (args.fanout or "100,1000").split(",") if n),
        after_load=args.after_load if args.after_load is not None else (10 if quick else 60),
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
        run = Run(sizes, fake, probe, targets, redis_server.url, node)
        results = run_loop(measure(run, sizes, names))
        for name, target in targets.items():
            results[name]["log"] = str(target.log.relative_to(servers.ROOT))
            results[name]["log_errors"] = target.error_lines()
        probe.close()
    finally:
        for server in reversed(started):
            server.stop()
        redis_server.close()
    points = sizes.points()
    fanouts = [(count, processes) for processes in (1, 2) for count in sizes.fanout]
    rows = {
        name: rows_of(points, fanouts, sizes.idle_readers, result)
        for name, result in results.items()
    }
    print_table(
        f"{sizes.tokens}-token answers, fake upstream Chat Completions; repeats: "
        f"{sizes.repeats}; load average before the run {load_before:.1f}",
        rows,
        results,
    )
    heavy = Point(sizes.heavy_chats, sizes.rate)
    found = verdicts(rows, points, fanouts, sizes.chats, heavy)
    print_verdicts(found)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {
                    "sizes": sizes.__dict__,
                    "rows": rows,
                    "targets": [verdict.__dict__ for verdict in found],
                },
                file,
                indent=2,
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
