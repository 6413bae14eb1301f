"""Store micro-benchmark: G generations appending N chunks each in batches of B, with R
followers tailing each log, on the memory store and on SQLite (in one process, no HTTP).

    python -m bench.store_bench [--generations 20] [--chunks 5000] [--batch 8]
                                [--readers 1] [--stores memory,sqlite,sqlite-full]
                                [--grouped]

`--grouped`: one writer appends every generation's next batch with one `append_many`
call (one transaction) per round, as a process-wide writer does; the memory store, which
has no such call, appends them one by one.

Prints per store: append calls per second, chunks per second, and the process's CPU seconds
(all threads: the SQLite worker threads included) per 100k chunks appended and delivered to
every follower.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

import orjson

from bridge.store.base import Append as AppendBatch
from bridge.store.base import GenerationInfo, Outcome, SessionStore
from bridge.store.memory import MemoryStore
from bridge.store.sqlite.db import Synchronous
from bridge.store.sqlite.store import SQLiteStore


def _chunk(i: int) -> bytes:
    return orjson.dumps({"type": "text-delta", "id": "t0", "delta": f"token {i} "})


async def _produce(store: SessionStore, info: GenerationInfo, chunks: int, batch: int) -> int:
    offset, calls = 1, 0
    while offset <= chunks:
        size = min(batch, chunks - offset + 1)
        await store.append(
            info.chat_id, info.generation_id, offset, [_chunk(i) for i in range(size)]
        )
        offset += size
        calls += 1
        await asyncio.sleep(0)  # let followers run between batches, as a real producer does
    await store.end_generation(info.chat_id, info.generation_id, offset, Outcome.FINISHED, None)
    return calls


async def _produce_grouped(
    store: SessionStore, infos: list[GenerationInfo], chunks: int, batch: int
) -> int:
    offset, calls = 1, 0
    while offset <= chunks:
        size = min(batch, chunks - offset + 1)
        data = [_chunk(i) for i in range(size)]
        batches = [AppendBatch(i.chat_id, i.generation_id, offset, data, 1) for i in infos]
        if isinstance(store, SQLiteStore):
            if any(await store.append_many(batches)):
                raise SystemExit("append_many refused a batch")
        else:
            for item in batches:
                await store.append(item.chat_id, item.generation_id, offset, data)
        offset += size
        calls += len(batches)
        await asyncio.sleep(0)
    for info in infos:
        await store.end_generation(info.chat_id, info.generation_id, offset, Outcome.FINISHED, None)
    return calls


async def _follow(store: SessionStore, info: GenerationInfo) -> int:
    after, seen = -1, 0
    while True:
        read = await store.read(info.chat_id, info.generation_id, after, limit=512, wait=5)
        seen += len(read.entries)
        if read.entries:
            after = read.entries[-1].offset
        if read.ended:
            return seen


async def _run(store: SessionStore, args: argparse.Namespace) -> tuple[float, float, int]:
    await store.start()
    try:
        infos = [
            GenerationInfo(secrets.token_urlsafe(16), f"chat-{n}", "msg", time.time())
            for n in range(args.generations)
        ]
        for info in infos:
            await store.begin_generation(info, b'{"type":"start"}', [])
        wall, cpu = time.perf_counter(), time.process_time()
        async with asyncio.TaskGroup() as group:
            followers = [
                group.create_task(_follow(store, info))
                for info in infos
                for _ in range(args.readers)
            ]
            if args.grouped:
                producers = [
                    group.create_task(_produce_grouped(store, infos, args.chunks, args.batch))
                ]
            else:
                producers = [
                    group.create_task(_produce(store, info, args.chunks, args.batch))
                    for info in infos
                ]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        expected = args.chunks + 1  # with the start chunk
        if any(task.result() != expected for task in followers):
            raise SystemExit("a follower missed chunks")
        return wall, cpu, sum(task.result() for task in producers)
    finally:
        await store.close()


def _make(kind: str, directory: Path) -> SessionStore:
    if kind == "memory":
        return MemoryStore()
    synchronous: Synchronous = "FULL" if kind == "sqlite-full" else "NORMAL"
    store: SessionStore = SQLiteStore(  # type: ignore[assignment]
        directory / f"{kind}.sqlite3", synchronous=synchronous
    )
    return store


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.store_bench", description=__doc__)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=5000, help="per generation")
    parser.add_argument("--batch", type=int, default=8, help="chunks per append call")
    parser.add_argument("--readers", type=int, default=1, help="followers per generation")
    parser.add_argument("--stores", default="memory,sqlite,sqlite-full")
    parser.add_argument("--grouped", action="store_true", help="one append_many per round")
    args = parser.parse_args()
    total = args.generations * args.chunks
    print(
        f"{args.generations} generations x {args.chunks} chunks, batches of {args.batch}, "
        f"{args.readers} follower(s) each: {total} chunks"
        + (", grouped appends" if args.grouped else "")
    )
    print(f"{'store':<12} {'appends/s':>10} {'chunks/s':>10} {'CPU s/100k':>11} {'wall s':>7}")
    with tempfile.TemporaryDirectory() as directory:
        for kind in args.stores.split(","):
            wall, cpu, calls = asyncio.run(_run(_make(kind, Path(directory)), args))
            print(
                f"{kind:<12} {calls / wall:>10.0f} {total / wall:>10.0f} "
                f"{cpu * 100_000 / total:>11.2f} {wall:>7.2f}"
            )


if __name__ == "__main__":
    main()
