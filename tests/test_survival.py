"""The runner, takeover and the history revision, in-process, against real stores behind a
wrapper that injects faults (tests/faulty_store.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pytest

from bridge.access.identity import TokenAuth
from bridge.access.limits import Limits
from bridge.chat.operations import start_generation
from bridge.chat.takeover import recover, sweep
from bridge.errors import Draining, StaleRevision, StoreError
from bridge.generation.plan import Generation, GenerationPlan
from bridge.generation.runner import GenerationRunner
from bridge.generation.tool_phase import TOOL_INTERRUPTED_TEXT
from bridge.log.closing import closing_chunks
from bridge.log.hub import LogHub
from bridge.log.writer import LogWriter
from bridge.providers import base as ev
from bridge.providers.base import ModelRequest
from bridge.providers.registry import ProviderRegistry
from bridge.services import Services
from bridge.store.base import GenerationInfo, Outcome, SessionStore
from bridge.store.memory import MemoryStore
from bridge.tools import load_tools
from protocol.assembler import MessageAssembler
from protocol.chunks import parse_chunk
from protocol.messages import ChatRequest, TextUIPart, UIMessage
from tests.bridge_server import chat_body, make_settings
from tests.faulty_store import FaultyStore
from tests.support.clock import Clock

USER = "anonymous"


def make_services(store: Any, **overrides: Any) -> Services:
    settings = make_settings(
        bridge_tools="bridge.tools.examples",
        bridge_lease_seconds=1,
        bridge_demo_token_delay_ms=overrides.pop("delay_ms", 2),
        **overrides,
    )
    hub = LogHub(store, queue_entries=settings.bridge_reader_queue_chunks)
    writer = LogWriter(
        store,
        hub,
        flush_interval=settings.bridge_flush_ms / 1000,
        lease_renew_interval=settings.bridge_lease_seconds / 3,
        retry_seconds=0.3,
    )
    return Services(
        settings=settings,
        store=store,
        store_kind="memory",
        registry=ProviderRegistry.from_settings(settings),
        runner=GenerationRunner(store, settings, writer, can_hand_over=True),
        auth=TokenAuth([]),
        tools=load_tools(settings.bridge_tools),
        limits=Limits(settings),
        hub=hub,
        writer=writer,
    )


@asynccontextmanager
async def serving(services: Services) -> AsyncIterator[Services]:
    async with anyio.create_task_group() as group:
        group.start_soon(services.hub.run)
        group.start_soon(services.writer.run)
        await group.start(services.runner.serve)
        try:
            yield services
        finally:
            await services.runner.drain(0)
            group.cancel_scope.cancel()


def request(chat_id: str, text: str, **extra: Any) -> ChatRequest:
    return ChatRequest.model_validate(chat_body(chat_id, text, **extra))


async def log_of(store: SessionStore, chat_id: str, generation_id: str) -> tuple[list[Any], Any]:
    """The whole log once it ended: (entries, outcome)."""
    entries: list[Any] = []
    after = -1
    while True:
        read = await store.read(chat_id, generation_id, after, limit=1000, wait=5)
        entries.extend(read.entries)
        if read.entries:
            after = read.entries[-1].offset
        if read.ended:
            return entries, read.outcome


async def wait_for_entries(store: SessionStore, chat_id: str, generation_id: str, n: int) -> None:
    after = -1
    count = 0
    while count < n:
        read = await store.read(chat_id, generation_id, after, limit=1000, wait=5)
        count += len(read.entries)
        if read.entries:
            after = read.entries[-1].offset
        assert not read.ended


def folded_text(entries: list[Any]) -> str:
    assembler = MessageAssembler()
    for entry in entries:
        assembler.apply(parse_chunk(entry.data))
    return "".join(p.text for p in assembler.message.parts if isinstance(p, TextUIPart))


def types_of(entries: list[Any]) -> list[str]:
    return [str(orjson.loads(entry.data)["type"]) for entry in entries]


async def reference_answer(services: Services, text: str) -> str:
    generation = await start_generation(services, request(f"ref-{time.time_ns()}", text), USER)
    await generation.done.wait()
    entries, _ = await log_of(
        services.store, generation.plan.info.chat_id, generation.generation_id
    )
    return folded_text(entries)


def assert_offsets(entries: list[Any]) -> None:
    assert [e.offset for e in entries] == list(range(len(entries)))


# --- the closing chunks ------------------------------------------------------------------


def test_closing_chunks_error_closes_the_open_step_and_finishes() -> None:
    chunks = closing_chunks(error_text="boom", step_open=True, metadata={"model": "m"})
    assert [c.type for c in chunks] == ["error", "finish-step", "finish"]
    assert [c.type for c in closing_chunks(error_text="x", step_open=False)] == ["error", "finish"]
    assert [c.type for c in closing_chunks(abort_reason="stopped", step_open=True)] == ["abort"]
    with pytest.raises(ValueError, match="exactly one"):
        closing_chunks(step_open=False)


# --- the runner against store faults -------------------------------------------------------


async def test_runner_retries_an_append_whose_reply_was_lost() -> None:
    store = FaultyStore(MemoryStore())
    store.fail("append_many", after=True)  # applied, but the reply never came
    async with serving(make_services(store)) as services:
        expected = await reference_answer(services, "hello")
        store.fail("append_many", after=True)
        generation = await start_generation(services, request("lost-reply", "hello"), USER)
        await generation.done.wait()
        entries, outcome = await log_of(store, "lost-reply", generation.generation_id)
    assert outcome is Outcome.FINISHED
    assert_offsets(entries)
    assert folded_text(entries) == expected


async def test_runner_writer_failure_ends_the_generation_and_its_flusher() -> None:
    store = FaultyStore(MemoryStore())
    async with serving(make_services(store, delay_ms=5)) as services:
        generation = await start_generation(services, request("broken", "a long one"), USER)
        await wait_for_entries(store, "broken", generation.generation_id, 5)
        store.fail("append_many", times=-1)
        store.fail("renew_lease", times=-1)
        with anyio.fail_after(10):
            await generation.done.wait()
        assert services.runner.running == 0
        # The flusher belonged to the generation's task group: nothing writes any more.
        appends = store.calls.get("append_many", 0)
        await asyncio.sleep(0)
        assert store.calls.get("append_many", 0) == appends
        chat = await store.get_chat("broken")
    assert chat is not None and chat.active_generation_id == generation.generation_id


async def test_runner_stop_watch_retries_store_errors() -> None:
    store = FaultyStore(MemoryStore())
    store.fail("wait_for_stop", times=2)
    async with serving(make_services(store, delay_ms=20)) as services:
        generation = await start_generation(services, request("stop-retry", "a long one"), USER)
        await wait_for_entries(store, "stop-retry", generation.generation_id, 3)
        await store.request_stop("stop-retry", generation.generation_id)
        with anyio.fail_after(15):
            await generation.done.wait()
        entries, outcome = await log_of(store, "stop-retry", generation.generation_id)
    assert store.calls["wait_for_stop"] >= 3
    assert outcome is Outcome.ABORTED
    assert types_of(entries)[-1] == "abort"


class _BrokenProvider:
    name = "broken"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ev.ProviderEvent]:
        yield ev.StreamOpened()
        yield ev.TextStart(id="t")
        yield ev.TextDelta(id="t", delta="half ")
        raise RuntimeError("a bug")

    async def aclose(self) -> None:
        return None


async def test_runner_internal_error_closes_with_error_finish_step_finish() -> None:
    store = MemoryStore()
    services = make_services(store)
    async with serving(services):
        info = GenerationInfo("gen-broken-provider-0000000000", "bug", "m1", time.time())
        from bridge.chat.conversation import plan_turn

        plan = GenerationPlan(
            info=info,
            turn=plan_turn(request("bug", "hi"), []),
            provider=_BrokenProvider(),  # type: ignore[arg-type]
            model="x",
            model_id="broken:x",
        )
        generation: Generation = await services.runner.start(plan)
        await generation.done.wait()
        entries, outcome = await log_of(store, "bug", info.generation_id)
        assert not await store.producer_alive("bug", info.generation_id)
    assert outcome is Outcome.ERROR
    assert types_of(entries)[-3:] == ["error", "finish-step", "finish"]


# --- takeover ------------------------------------------------------------------------------


async def _kill_producer(
    store: FaultyStore,
    clock: Clock,
    generation: Generation,
    *,
    when: Callable[[str, tuple[Any, ...]], bool] | None = None,
) -> None:
    """Cut the producer off the store (every append fails), let it stop, bring the store
    back and let its lease lapse: what a killed process leaves behind."""
    if when is not None:
        tripped = asyncio.Event()

        def observe(name: str, args: tuple[Any, ...]) -> None:
            if not tripped.is_set() and when(name, args):
                store.fail("append_many", times=-1)
                store.fail("renew_lease", times=-1)
                tripped.set()

        store.observer = observe
        await asyncio.wait_for(tripped.wait(), 15)
    else:
        store.fail("append_many", times=-1)
        store.fail("renew_lease", times=-1)
    with anyio.fail_after(10):
        await generation.done.wait()
    store.faults.clear()
    store.observer = None
    clock.offset += 5  # past the lease


async def test_takeover_reruns_the_interrupted_step_after_reset_step() -> None:
    clock = Clock()
    store = FaultyStore(MemoryStore(clock=clock, lease_seconds=1))
    async with serving(make_services(store, delay_ms=3)) as services:
        expected = await reference_answer(services, "a long one")
        generation = await start_generation(services, request("taken", "a long one"), USER)
        generation_id = generation.generation_id
        await wait_for_entries(store, "taken", generation_id, 20)
        await _kill_producer(store, clock, generation)
        before, _ = await store.read("taken", generation_id, -1, limit=10_000), None
        await recover(services, "taken", generation_id)
        await recover(services, "taken", generation_id)  # a second claim loses: harmless
        entries, outcome = await log_of(store, "taken", generation_id)
        history = await store.load_messages("taken")
    assert outcome is Outcome.FINISHED
    assert_offsets(entries)
    resumed = types_of(entries[len(before.entries) :])
    # The takeover is announced (transient `data-recovering` chunks: taken over, resumed),
    # then the cut step restarts before anything else.
    assert resumed[0] == "data-recovering"
    assert next(kind for kind in resumed if kind != "data-recovering") == "reset-step"
    assert folded_text(entries) == expected
    stored = UIMessage.model_validate(history[-1])
    assert "".join(p.text for p in stored.parts if isinstance(p, TextUIPart)) == expected


async def test_takeover_never_runs_a_started_tool_twice() -> None:
    clock = Clock()
    store = FaultyStore(MemoryStore(clock=clock, lease_seconds=1))
    async with serving(make_services(store)) as services:
        generation = await start_generation(
            services, request("tool-once", "What is the weather in Paris?"), USER
        )
        generation_id = generation.generation_id

        def marker_acknowledged(name: str, args: tuple[Any, ...]) -> bool:
            return name == "append_many" and any(
                b"data-tool-run" in chunk for append in args[0] for chunk in append.chunks
            )

        await _kill_producer(store, clock, generation, when=marker_acknowledged)
        await recover(services, "tool-once", generation_id)
        entries, outcome = await log_of(store, "tool-once", generation_id)
    chunks = [orjson.loads(entry.data) for entry in entries]
    results = [c for c in chunks if str(c["type"]).startswith("tool-output-")]
    assert outcome is Outcome.FINISHED
    assert_offsets(entries)
    assert len(results) == 1
    assert results[0]["type"] == "tool-output-error"
    assert results[0]["errorText"] == TOOL_INTERRUPTED_TEXT
    assert chunks[-1]["type"] == "finish"


async def test_takeover_of_a_stopped_generation_ends_it_with_abort() -> None:
    clock = Clock()
    store = FaultyStore(MemoryStore(clock=clock, lease_seconds=1))
    async with serving(make_services(store, delay_ms=5)) as services:
        generation = await start_generation(services, request("stopped", "a long one"), USER)
        await wait_for_entries(store, "stopped", generation.generation_id, 5)
        await _kill_producer(store, clock, generation)
        await store.request_stop("stopped", generation.generation_id)
        await recover(services, "stopped", generation.generation_id)
        entries, outcome = await log_of(store, "stopped", generation.generation_id)
    assert outcome is Outcome.ABORTED
    assert types_of(entries)[-1] == "abort"


# --- the history revision -----------------------------------------------------------------


async def test_revision_a_message_planned_before_another_answer_ended_is_refused() -> None:
    store = FaultyStore(MemoryStore())
    async with serving(make_services(store, delay_ms=5)) as services:
        first = await start_generation(services, request("rev", "a long one"), USER)
        await first.done.wait()

        async def another_turn_meanwhile() -> None:
            other = await start_generation(services, request("rev", "meanwhile"), USER)
            await other.done.wait()

        # `{id, message}`: the chat's revision is read, then another turn begins and ends
        # while the history is read, then the new generation would begin on the history
        # read before that turn. (A request that finds an answer running is refused at once,
        # before the history is read: 409.)
        store.before("load_messages", another_turn_meanwhile)
        body = {"id": "rev", "message": chat_body("rev", "next")["messages"][0]}
        with pytest.raises(StaleRevision):
            await start_generation(services, ChatRequest.model_validate(body), USER)
        history = await store.load_messages("rev")
    assert history[-1]["role"] == "assistant"  # the ended answer was not overwritten


async def test_revision_two_approval_answers_run_the_tool_once() -> None:
    store = FaultyStore(MemoryStore())
    async with serving(make_services(store)) as services:
        asked = await start_generation(services, request("approve", "please delete a.txt"), USER)
        await asked.done.wait()
        history = await store.load_messages("approve")
        assistant = history[-1]
        for part in assistant["parts"]:
            if part.get("state") == "approval-requested":
                part["state"] = "approval-responded"
                part["approval"] = {**part["approval"], "approved": True}
        answer = ChatRequest.model_validate(
            {"id": "approve", "messages": history, "trigger": "submit-message"}
        )
        started: list[Generation] = []

        async def the_other_answer_runs_first() -> None:
            other = await start_generation(services, answer, USER)
            started.append(other)
            await other.done.wait()

        store.before("begin_generation", the_other_answer_runs_first)
        with pytest.raises(StaleRevision):
            await start_generation(services, answer, USER)
        entries, _ = await log_of(store, "approve", started[0].generation_id)
    runs = [c for c in types_of(entries) if c == "data-tool-run"]
    assert len(runs) == 1


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_store_begin_refuses_a_stale_revision(kind: str, request: Any) -> None:
    store: SessionStore
    if kind == "redis":
        redis_server = request.getfixturevalue("redis_server")
        from bridge.store.redis.store import RedisStore

        store = RedisStore(redis_server.url, key_prefix=f"rev{time.time_ns()}")
    else:
        store = MemoryStore()
    await store.start()
    try:
        assert await store.get_chat("c") is None
        info = GenerationInfo("g1-aaaaaaaaaaaaaaaaaaaaaaaa", "c", "m1", time.time())
        epoch = await store.begin_generation(info, b"{}", [], expected_revision=0, plan=b"p")
        assert epoch == 1
        chat = await store.get_chat("c")
        assert chat is not None and chat.revision == 1
        await store.end_generation("c", info.generation_id, 1, Outcome.FINISHED, [], epoch=1)
        chat = await store.get_chat("c")
        assert chat is not None and chat.revision == 2
        later = GenerationInfo("g2-aaaaaaaaaaaaaaaaaaaaaaaa", "c", "m2", time.time())
        with pytest.raises(StaleRevision):
            await store.begin_generation(later, b"{}", [], expected_revision=1)
        assert await store.begin_generation(later, b"{}", [], expected_revision=2) == 1
        # claim: refused while the lease is held; the stop flag and plan travel with it.
        assert await store.claim_generation("c", later.generation_id) is None
        await store.release_lease("c", later.generation_id, epoch=7)  # not the holder
        assert await store.claim_generation("c", later.generation_id) is None
        await store.release_lease("c", later.generation_id, epoch=1)
        assert not await store.stop_requested("c", later.generation_id)
        await store.request_stop("c", later.generation_id)
        assert await store.stop_requested("c", later.generation_id)
        claims = await asyncio.gather(
            *(store.claim_generation("c", later.generation_id) for _ in range(5))
        )
        won = [claim for claim in claims if claim is not None]
        assert len(won) == 1
        assert won[0].epoch == 2 and won[0].next_offset == 1 and won[0].stop_requested
        assert await store.orphaned_generations() == []
    finally:
        await store.close()


async def test_store_error_in_claim_leaves_the_generation_alone() -> None:
    clock = Clock()
    store = FaultyStore(MemoryStore(clock=clock, lease_seconds=1))
    async with serving(make_services(store, delay_ms=5)) as services:
        generation = await start_generation(services, request("claim-err", "a long one"), USER)
        await wait_for_entries(store, "claim-err", generation.generation_id, 5)
        await _kill_producer(store, clock, generation)
        assert await store.orphaned_generations() == [("claim-err", generation.generation_id)]
        store.fail("claim_generation", error=StoreError)
        await recover(services, "claim-err", generation.generation_id)  # logged, no raise
        chat = await store.get_chat("claim-err")
        assert chat is not None and chat.active_generation_id == generation.generation_id
        await recover(services, "claim-err", generation.generation_id)
        _, outcome = await log_of(store, "claim-err", generation.generation_id)
    assert outcome is Outcome.FINISHED


# --- drain and the sweep -------------------------------------------------------------------


async def test_drain_hands_over_a_running_generation_to_a_claimer() -> None:
    store = MemoryStore()
    services = make_services(store, delay_ms=10)
    async with serving(services):
        generation = await start_generation(services, request("handed", "a long one"), USER)
        await wait_for_entries(store, "handed", generation.generation_id, 5)
        await services.runner.drain(0)
        assert generation.done.is_set()
        assert not services.runner.accepting
        with pytest.raises(Draining):
            await start_generation(services, request("late", "hi"), USER)
        read = await store.read("handed", generation.generation_id, -1, limit=10_000)
        claim = await store.claim_generation("handed", generation.generation_id)
    assert not read.ended  # no end marker: the log waits for its next producer
    assert claim is not None and claim.epoch == 2 and claim.next_offset == len(read.entries)


async def test_drain_without_anyone_to_take_over_ends_with_abort() -> None:
    store = MemoryStore()
    services = make_services(store, delay_ms=10)
    services.runner = GenerationRunner(
        store, services.settings, services.writer, can_hand_over=False
    )
    async with serving(services):
        generation = await start_generation(services, request("aborted", "a long one"), USER)
        await wait_for_entries(store, "aborted", generation.generation_id, 5)
        await services.runner.drain(0)
        entries, outcome = await log_of(store, "aborted", generation.generation_id)
    assert outcome is Outcome.ABORTED
    assert orjson.loads(entries[-1].data) == {"type": "abort", "reason": "server shutting down"}


async def test_sweep_takes_over_an_orphan_nobody_reads() -> None:
    clock = Clock()
    store = FaultyStore(MemoryStore(clock=clock, lease_seconds=1))
    services = make_services(store, delay_ms=3)
    async with serving(services), anyio.create_task_group() as group:
        generation = await start_generation(services, request("orphan", "hello"), USER)
        await wait_for_entries(store, "orphan", generation.generation_id, 3)
        await _kill_producer(store, clock, generation)
        group.start_soon(sweep, services, 0.05)
        _, outcome = await log_of(store, "orphan", generation.generation_id)
        group.cancel_scope.cancel()
    assert outcome is Outcome.FINISHED
