"""What the SQLite store adds to the store contract (tests/test_store_contract.py runs that
against it): data surviving a reopen, one process per file, producer fencing with epochs,
take-over claims, the history revision, open generations after a restart, retention."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from bridge.errors import Fenced, GenerationNotFound, OffsetConflict, StaleRevision
from bridge.store.base import Append as AppendBatch
from bridge.store.base import Claim, LogEntry, LogRead, Outcome
from bridge.store.sqlite.file_lock import DatabaseInUse
from bridge.store.sqlite.rows import OpenGeneration
from bridge.store.sqlite.store import SQLiteStore
from tests.test_store_contract import START, FakeClock, chunk, expected, new_generation

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bridge.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(path: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(path, lease_seconds=10, clock=clock)
    await store.start()
    yield store
    await store.close()


async def reopen(store: SQLiteStore, clock: FakeClock) -> SQLiteStore:
    await store.close()
    again = SQLiteStore(store.path, lease_seconds=10, clock=clock)
    await again.start()
    return again


# --- durability and the process lock ---------------------------------------------------


async def test_sqlite_store_keeps_chats_history_and_logs_across_reopen(
    store: SQLiteStore, clock: FakeClock
) -> None:
    await store.claim_chat("chat-1", "alice")
    await store.record_chat("alice", "chat-1", "Hello", 1000.0)
    info = new_generation()
    await store.begin_generation(info, START, [{"id": "u1"}])
    await store.append(info.chat_id, info.generation_id, 1, [chunk(1), chunk(2)])
    await store.end_generation(
        info.chat_id, info.generation_id, 3, Outcome.FINISHED, [{"id": "u1"}, {"id": "a1"}]
    )

    again = await reopen(store, clock)
    try:
        chat = await again.get_chat("chat-1")
        assert chat is not None
        assert (chat.owner, chat.last_generation_id) == ("alice", info.generation_id)
        assert [c.chat_id for c in await again.list_chats("alice")] == ["chat-1"]
        assert await again.load_messages("chat-1") == [{"id": "u1"}, {"id": "a1"}]
        result = await again.read(info.chat_id, info.generation_id, -1)
        assert result == LogRead(expected(2), ended=True, outcome=Outcome.FINISHED)
    finally:
        await again.close()


async def test_sqlite_store_uses_wal_journal(store: SQLiteStore) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_store_refuses_a_second_store_on_the_same_file(
    store: SQLiteStore, path: Path
) -> None:
    second = SQLiteStore(path)
    with pytest.raises(DatabaseInUse, match="in use by another process"):
        await second.start()
    await second.close()


def _open_in_another_process(path: Path) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import asyncio
        from bridge.store.sqlite.store import SQLiteStore

        async def main():
            store = SQLiteStore({str(path)!r})
            await store.start()
            await store.close()
            print("opened")

        asyncio.run(main())
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_sqlite_store_refuses_another_process_until_closed(
    store: SQLiteStore, clock: FakeClock
) -> None:
    refused = await asyncio.to_thread(_open_in_another_process, store.path)
    assert refused.returncode != 0
    assert "DatabaseInUse" in refused.stderr
    assert "in use by another process" in refused.stderr

    await store.close()
    opened = await asyncio.to_thread(_open_in_another_process, store.path)
    assert (opened.returncode, opened.stdout.strip()) == (0, "opened"), opened.stderr


# --- fencing ---------------------------------------------------------------------------


async def test_sqlite_append_with_the_current_epoch_writes(store: SQLiteStore) -> None:
    info = new_generation()
    epoch = await store.begin_generation(info, START, [])

    await store.append(info.chat_id, info.generation_id, 1, [chunk(1)], epoch=epoch)
    await store.end_generation(
        info.chat_id, info.generation_id, 2, Outcome.FINISHED, None, epoch=epoch
    )

    assert epoch == 1
    result = await store.read(info.chat_id, info.generation_id, -1)
    assert result == LogRead(expected(1), ended=True, outcome=Outcome.FINISHED)


async def test_sqlite_claim_fences_the_previous_producer(
    store: SQLiteStore, clock: FakeClock
) -> None:
    info = new_generation()
    await store.begin_generation(info, START, [], plan=b'{"model":"demo:scripted"}')
    await store.append(info.chat_id, info.generation_id, 1, [chunk(1)], epoch=1)
    assert await store.claim_generation(info.chat_id, info.generation_id) is None  # held

    clock.now += 11  # the producer stalls past its lease
    claim = await store.claim_generation(info.chat_id, info.generation_id)

    assert claim == Claim(
        epoch=2, plan=b'{"model":"demo:scripted"}', next_offset=2, stop_requested=False
    )
    with pytest.raises(Fenced):
        await store.append(info.chat_id, info.generation_id, 2, [chunk(2)], epoch=1)
    with pytest.raises(Fenced):
        await store.end_generation(
            info.chat_id, info.generation_id, 2, Outcome.ERROR, None, epoch=1
        )
    assert not await store.renew_lease(info.chat_id, info.generation_id, epoch=1)
    assert await store.renew_lease(info.chat_id, info.generation_id, epoch=2)
    await store.append(info.chat_id, info.generation_id, 2, [chunk(2)], epoch=2)
    assert (await store.read(info.chat_id, info.generation_id, -1)).entries == expected(2)


async def test_sqlite_write_after_lapsed_lease_is_fenced(
    store: SQLiteStore, clock: FakeClock
) -> None:
    info = new_generation()
    await store.begin_generation(info, START, [])
    clock.now += 11  # nobody claimed yet: the producer must stop all the same

    with pytest.raises(Fenced):
        await store.append(info.chat_id, info.generation_id, 1, [chunk(1)], epoch=1)
    assert not await store.renew_lease(info.chat_id, info.generation_id, epoch=1)
    assert (await store.read(info.chat_id, info.generation_id, -1)).entries == expected(0)


async def test_sqlite_append_retry_of_a_written_batch_counts_as_done(store: SQLiteStore) -> None:
    info = new_generation()
    await store.begin_generation(info, START, [])
    await store.append(info.chat_id, info.generation_id, 1, [chunk(1), chunk(2)], epoch=1)

    await store.append(info.chat_id, info.generation_id, 1, [chunk(1), chunk(2)], epoch=1)
    with pytest.raises(OffsetConflict):  # not a retry: a gap
        await store.append(info.chat_id, info.generation_id, 5, [chunk(5)], epoch=1)

    assert (await store.read(info.chat_id, info.generation_id, -1)).entries == expected(2)


async def test_sqlite_release_lease_lets_a_claim_start_at_once(store: SQLiteStore) -> None:
    info = new_generation()
    await store.begin_generation(info, START, [])
    await store.release_lease(info.chat_id, info.generation_id, epoch=7)  # not its epoch
    assert await store.producer_alive(info.chat_id, info.generation_id)

    await store.release_lease(info.chat_id, info.generation_id, epoch=1)
    await store.request_stop(info.chat_id, info.generation_id)

    assert not await store.producer_alive(info.chat_id, info.generation_id)
    claim = await store.claim_generation(info.chat_id, info.generation_id)
    assert claim == Claim(epoch=2, plan=b"", next_offset=1, stop_requested=True)


async def test_sqlite_claim_of_an_ended_or_unknown_log_is_none(store: SQLiteStore) -> None:
    info = new_generation()
    await store.begin_generation(info, START, [])
    await store.end_generation(info.chat_id, info.generation_id, 1, Outcome.FINISHED, None)

    assert await store.claim_generation(info.chat_id, info.generation_id) is None
    assert await store.claim_generation(info.chat_id, "no-such-generation") is None


async def test_sqlite_stop_requested_reports_the_flag(store: SQLiteStore) -> None:
    info = new_generation()
    await store.begin_generation(info, START, [])
    assert not await store.stop_requested(info.chat_id, info.generation_id)

    await store.request_stop(info.chat_id, info.generation_id)

    assert await store.stop_requested(info.chat_id, info.generation_id)


# --- revision --------------------------------------------------------------------------


async def test_sqlite_revision_rises_with_begin_and_end_and_guards_begin(
    store: SQLiteStore,
) -> None:
    assert await store.get_chat("chat-1") is None
    first = new_generation()
    await store.begin_generation(first, START, [{"id": "u1"}], expected_revision=0)
    chat = await store.get_chat("chat-1")
    assert chat is not None
    assert chat.revision == 1
    await store.end_generation(first.chat_id, first.generation_id, 1, Outcome.FINISHED, None)
    chat = await store.get_chat("chat-1")
    assert chat is not None
    assert chat.revision == 2

    with pytest.raises(StaleRevision) as caught:
        await store.begin_generation(new_generation(), START, [{"id": "x"}], expected_revision=1)

    assert (caught.value.expected, caught.value.current) == (1, 2)
    assert await store.load_messages("chat-1") == [{"id": "u1"}]  # nothing changed
    second = new_generation()
    await store.begin_generation(second, START, [{"id": "u2"}], expected_revision=2)
    chat = await store.get_chat("chat-1")
    assert chat is not None
    assert (chat.revision, chat.active_generation_id) == (3, second.generation_id)


# --- restart -----------------------------------------------------------------------------


async def test_sqlite_open_generations_after_restart_lists_the_running_ones(
    store: SQLiteStore, clock: FakeClock
) -> None:
    running = new_generation("chat-running")
    ended = new_generation("chat-ended")
    await store.begin_generation(running, START, [])
    await store.append(running.chat_id, running.generation_id, 1, [chunk(1)])
    await store.begin_generation(ended, START, [])
    await store.end_generation(ended.chat_id, ended.generation_id, 1, Outcome.FINISHED, None)
    assert await store.open_generations() == []  # the running one still holds its lease

    again = await reopen(store, clock)  # no time passes: the lease is dropped, not expired
    try:
        assert await again.open_generations() == [
            OpenGeneration(running.chat_id, running.generation_id, 2)
        ]
        assert not await again.producer_alive(running.chat_id, running.generation_id)
        claim = await again.claim_generation(running.chat_id, running.generation_id)
        assert claim is not None
        assert claim.epoch == 2
        assert await again.open_generations() == []
    finally:
        await again.close()


async def test_sqlite_reader_blocked_across_a_claim_sees_the_new_producer(
    store: SQLiteStore, clock: FakeClock
) -> None:
    info = new_generation()
    await store.begin_generation(info, START, [])
    reader = asyncio.create_task(store.read(info.chat_id, info.generation_id, 0, wait=10))
    clock.now += 11
    claim = await store.claim_generation(info.chat_id, info.generation_id)
    assert claim is not None

    await store.append(info.chat_id, info.generation_id, 1, [chunk(1)], epoch=claim.epoch)

    assert await asyncio.wait_for(reader, 5) == LogRead([LogEntry(1, chunk(1))], ended=False)


# --- retention ---------------------------------------------------------------------------


async def test_sqlite_sweep_deletes_expired_rows(path: Path, clock: FakeClock) -> None:
    store = SQLiteStore(path, log_ttl_seconds=60, history_ttl_seconds=600, clock=clock)
    await store.start()
    try:
        for n in range(3):
            info = new_generation(f"chat-{n}")
            await store.claim_chat(info.chat_id, "alice")
            await store.record_chat("alice", info.chat_id, "t", 1.0)
            await store.begin_generation(info, START, [{"id": "u"}])
            await store.append(info.chat_id, info.generation_id, 1, [chunk(1)])
            await store.request_stop(info.chat_id, info.generation_id)
            await store.end_generation(info.chat_id, info.generation_id, 2, Outcome.ERROR, None)

        clock.now += 3600
        kept = new_generation("chat-new")
        await store.begin_generation(kept, START, [])  # writes sweep now and then

        with sqlite3.connect(path) as conn:
            counts = {
                table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("chats", "histories", "owned_chats", "logs", "entries", "stops")
            }
        assert counts == {
            "chats": 1,
            "histories": 1,
            "owned_chats": 0,
            "logs": 1,
            "entries": 1,
            "stops": 0,
        }
        with pytest.raises(GenerationNotFound):
            await store.read("chat-0", "whatever", -1)
    finally:
        await store.close()


async def test_sqlite_history_is_stored_as_json(store: SQLiteStore) -> None:
    await store.save_messages("chat-1", [{"id": "u1", "text": "ü"}])

    with sqlite3.connect(store.path) as conn:
        data = conn.execute("SELECT data FROM histories").fetchone()[0]

    assert orjson.loads(data) == [{"id": "u1", "text": "ü"}]


# --- batched appends -----------------------------------------------------------------------


async def test_sqlite_append_many_commits_good_batches_and_reports_refused_ones(
    store: SQLiteStore, clock: FakeClock
) -> None:
    good, conflicting, fenced = (new_generation(f"chat-{n}") for n in range(3))
    for info in (good, conflicting, fenced):
        await store.begin_generation(info, START, [])

    async def follow() -> list[LogEntry]:
        seen: list[LogEntry] = []
        while len(seen) < 3:
            after = seen[-1].offset if seen else 0
            seen += (await store.read(good.chat_id, good.generation_id, after, wait=10)).entries
        return seen

    follower = asyncio.create_task(follow())

    results = await store.append_many(
        [
            AppendBatch(good.chat_id, good.generation_id, 1, [chunk(1), chunk(2)], epoch=1),
            AppendBatch(conflicting.chat_id, conflicting.generation_id, 3, [chunk(3)], epoch=1),
            AppendBatch(fenced.chat_id, fenced.generation_id, 1, [chunk(1)], epoch=2),
            AppendBatch(good.chat_id, good.generation_id, 3, [chunk(3)], epoch=1),
            AppendBatch("chat-x", "no-such-generation", 1, [chunk(1)], epoch=1),
        ]
    )

    assert [type(result) for result in results] == [
        type(None),
        OffsetConflict,
        Fenced,
        type(None),
        GenerationNotFound,
    ]
    assert await asyncio.wait_for(follower, 5) == expected(3)[1:]
    for info in (conflicting, fenced):
        assert (await store.read(info.chat_id, info.generation_id, -1)).entries == expected(0)
    again = await reopen(store, clock)  # committed to the file, not only to the tail cache
    try:
        assert (await again.read(good.chat_id, good.generation_id, -1)).entries == expected(3)
    finally:
        await again.close()
