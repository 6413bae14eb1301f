"""Generation lifetimes, in-process against real stores (fault-injecting where it says so):
the embedder's lifecycle hooks, the bounded end and drain, failure containment in the
process-wide reader and writer, the start path when a later step fails, and takeover's
retries."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import httpx
import orjson
import pytest
from fastapi import FastAPI

from bridge.app import Bridge, create_app
from bridge.chat.admission import start_admitted
from bridge.chat.conversation import plan_turn
from bridge.chat.operations import start_generation
from bridge.chat.takeover import recover
from bridge.errors import StoreError
from bridge.generation.hooks import (
    CancelReason,
    GenerationContext,
    GenerationEnd,
    GenerationHooks,
)
from bridge.generation.plan import GenerationPlan, Turn
from bridge.generation.runner import GenerationRunner
from bridge.log.reader import follow
from bridge.providers import base as ev
from bridge.providers.base import ModelRequest
from bridge.providers.registry import ProviderRegistry
from bridge.services import Services
from bridge.store.base import Append, GenerationInfo, Outcome
from bridge.store.memory import MemoryStore
from bridge.tools import ToolBox, tool
from bridge.tools.execute import run_tool
from protocol.chunks import StartChunk, TextDeltaChunk, encode_chunk
from tests.bridge_server import chat_body, make_settings
from tests.fakes.server import LiveServer
from tests.faulty_store import FaultyStore
from tests.support.clock import Clock
from tests.support.waiting import until
from tests.test_survival import (
    USER,
    _kill_producer,
    log_of,
    make_services,
    request,
    serving,
    wait_for_entries,
)


@dataclass
class Recorder(GenerationHooks):
    """Every hook call, in order."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def before(self, generation: GenerationContext) -> None:
        self.calls.append(("before", generation.chat_id))

    async def on_error(self, generation: GenerationContext, error: BaseException) -> None:
        self.calls.append(("on_error", str(error)))

    async def on_cancel(self, generation: GenerationContext, reason: CancelReason) -> None:
        self.calls.append(("on_cancel", reason))

    async def after(self, generation: GenerationContext, end: GenerationEnd) -> None:
        self.calls.append(("after", end.outcome))


def with_runner(services: Services, **options: Any) -> Services:
    """The services with a runner built with `options` (hooks, on_finish, can_hand_over)."""
    options.setdefault("can_hand_over", True)
    services.runner = GenerationRunner(
        services.store, services.settings, services.writer, **options
    )
    return services


class _FailingProvider:
    name = "failing"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ev.ProviderEvent]:
        yield ev.StreamOpened()
        yield ev.TextStart(id="t")
        yield ev.TextDelta(id="t", delta="half ")
        raise RuntimeError("a bug in the provider")

    async def aclose(self) -> None:
        return None


async def test_hooks_before_and_after_a_finished_generation() -> None:
    hooks = Recorder()
    finished: list[str] = []

    async def on_finish(chat_id: str, message: Any, usage: Any, user: str | None) -> None:
        finished.append(chat_id)
        hooks.calls.append(("on_finish", chat_id))

    services = with_runner(make_services(MemoryStore()), hooks=hooks, on_finish=on_finish)
    async with serving(services):
        generation = await start_generation(services, request("hooked", "hello"), USER)
        await generation.done.wait()
        _, outcome = await log_of(services.store, "hooked", generation.generation_id)
    assert outcome is Outcome.FINISHED
    assert hooks.calls == [
        ("before", "hooked"),
        ("on_finish", "hooked"),
        ("after", "finished"),
    ]


async def test_hooks_on_error_gets_the_failure_of_the_answer() -> None:
    hooks = Recorder()
    store = MemoryStore()
    services = with_runner(make_services(store), hooks=hooks)
    async with serving(services):
        info = GenerationInfo("gen-hooks-error-000000000000", "hook-error", "m1", time.time())
        turn = plan_turn(request("hook-error", "hi"), [])
        assert isinstance(turn, Turn)
        plan = GenerationPlan(
            info=info,
            turn=turn,
            provider=_FailingProvider(),
            model="x",
            model_id="failing:x",
        )
        generation = await services.runner.start(plan)
        await generation.done.wait()
    assert hooks.calls == [
        ("before", "hook-error"),
        ("on_error", "a bug in the provider"),
        ("after", "error"),
    ]


async def test_hooks_on_cancel_says_stop_and_handover() -> None:
    hooks = Recorder()
    store = MemoryStore()
    services = with_runner(make_services(store, delay_ms=10), hooks=hooks)
    async with serving(services):
        stopped = await start_generation(services, request("hook-stop", "a long one"), USER)
        await wait_for_entries(store, "hook-stop", stopped.generation_id, 3)
        await store.request_stop("hook-stop", stopped.generation_id)
        with anyio.fail_after(10):
            await stopped.done.wait()
        assert hooks.calls[-2:] == [("on_cancel", "stop"), ("after", "aborted")]
        handed = await start_generation(services, request("hook-drain", "a long one"), USER)
        await wait_for_entries(store, "hook-drain", handed.generation_id, 3)
        await services.runner.drain(0)
    assert hooks.calls[-2:] == [("on_cancel", "handover"), ("after", None)]


async def test_hooks_failure_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(GenerationHooks):
        async def before(self, generation: GenerationContext) -> None:
            raise RuntimeError("before broke")

        async def after(self, generation: GenerationContext, end: GenerationEnd) -> None:
            raise RuntimeError("after broke")

    services = with_runner(make_services(MemoryStore()), hooks=Broken())
    async with serving(services):
        generation = await start_generation(services, request("hook-broken", "hello"), USER)
        await generation.done.wait()
        _, outcome = await log_of(services.store, "hook-broken", generation.generation_id)
    assert outcome is Outcome.FINISHED
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hook ")]
    assert failed == [
        f"hook before failed for generation {generation.generation_id}",
        f"hook after failed for generation {generation.generation_id}",
    ]


# --- the end and drain are bounded ---------------------------------------------------------


def _records(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_end_with_an_on_finish_that_never_returns_does_not_hold_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entered = anyio.Event()

    async def on_finish(chat_id: str, message: Any, usage: Any, user: str | None) -> None:
        entered.set()
        await anyio.sleep_forever()

    store = MemoryStore()
    bridge = Bridge(
        make_settings(bridge_end_timeout_seconds=0.5, bridge_demo_token_delay_ms=0),
        store=store,
        on_finish=on_finish,
    )
    app = FastAPI()
    with anyio.fail_after(30):  # a hang fails here
        async with bridge.lifespan(app):
            services: Services = app.state.services
            generation = await start_generation(services, request("hung-finish", "hello"), USER)
            await entered.wait()
        # The lifespan's exit (drain, then the group) came back with on_finish still hung.
    assert generation.done.is_set()
    read = await store.read("hung-finish", generation.generation_id, -1, limit=1000)
    assert read.ended and read.outcome is Outcome.FINISHED  # the log was closed before
    assert _records(caplog, "after its log was closed")


async def test_end_whose_store_end_hangs_is_abandoned_and_the_lease_lapses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    store = FaultyStore(MemoryStore(clock=clock, lease_seconds=1))
    services = make_services(store, bridge_end_timeout_seconds=0.5)
    async with serving(services):
        store.before("end_generation", anyio.sleep_forever)
        generation = await start_generation(services, request("hung-end", "hello"), USER)
        with anyio.fail_after(30):
            await generation.done.wait()
        read = await store.read("hung-end", generation.generation_id, -1, limit=1000)
        assert not read.ended  # the end marker never got written
        assert services.writer.open_logs == 0  # nothing renews its lease any more
        clock.offset += 5  # past the lease: another process may take it over
        assert await store.orphaned_generations() == [("hung-end", generation.generation_id)]
        await recover(services, "hung-end", generation.generation_id)
        _, outcome = await log_of(store, "hung-end", generation.generation_id)
    assert outcome is Outcome.FINISHED
    assert _records(caplog, "abandoned with its log open")


async def test_drain_with_a_hanging_hand_over_comes_back() -> None:
    clock = Clock()
    store = FaultyStore(MemoryStore(clock=clock, lease_seconds=1))
    services = make_services(store, delay_ms=10, bridge_end_timeout_seconds=0.5)
    async with serving(services):
        generation = await start_generation(services, request("hung-drain", "a long one"), USER)
        await wait_for_entries(store, "hung-drain", generation.generation_id, 5)
        store.before("release_lease", anyio.sleep_forever)
        with anyio.fail_after(30):
            await services.runner.drain(0)
            await generation.done.wait()
        assert services.writer.open_logs == 0
        clock.offset += 5
        assert await store.orphaned_generations() == [("hung-drain", generation.generation_id)]


# --- failure containment in the lifespan group ---------------------------------------------


@dataclass
class PoisonedAppends(FaultyStore):
    """A round trip that carries an append of `poisoned` raises an unexpected error (a bug,
    not an outage): what one bad log does to a writer shared by every generation."""

    poisoned: str = ""

    async def append_many(self, appends: Sequence[Append]) -> list[StoreError | None]:
        if any(append.chat_id == self.poisoned for append in appends):
            raise RuntimeError("an unexpected failure")
        result: list[StoreError | None] = await self.inner.append_many(appends)
        return result


async def test_writer_failure_of_one_log_stays_with_that_generation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = PoisonedAppends(MemoryStore(), poisoned="poisoned")
    services = make_services(store, delay_ms=5)
    async with serving(services):
        healthy = await start_generation(services, request("healthy", "a long one"), USER)
        poisoned = await start_generation(services, request("poisoned", "a long one"), USER)
        with anyio.fail_after(30):
            await poisoned.done.wait()
            await healthy.done.wait()
        # The poisoned log's generation stopped (its lease lapses; takeover decides) ...
        read = await store.read("poisoned", poisoned.generation_id, -1, limit=1000)
        assert not read.ended
        # ... every other generation of the process went on, and the writer still serves.
        _, outcome = await log_of(store, "healthy", healthy.generation_id)
        assert outcome is Outcome.FINISHED
        later = await start_generation(services, request("later", "hello"), USER)
        await later.done.wait()
        _, later_outcome = await log_of(store, "later", later.generation_id)
    assert later_outcome is Outcome.FINISHED
    assert _records(caplog, "failed unexpectedly; one by one")


async def test_hub_read_failure_of_one_log_detaches_its_readers_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FaultyStore(MemoryStore())
    services = make_services(store, delay_ms=5)
    async with serving(services):
        running = await start_generation(services, request("running", "a long one"), USER)
        # A log written by another process (no local producer): the hub reads it for its
        # readers when the store says it moved.
        info = GenerationInfo("gen-foreign-000000000000000000", "foreign", "m1", time.time())
        epoch = await store.begin_generation(
            info, encode_chunk(StartChunk(message_id="m1")), [], plan=b"{}"
        )

        async def append(offset: int, text: str) -> None:
            chunk = encode_chunk(TextDeltaChunk(id="t", delta=text))
            await store.append("foreign", info.generation_id, offset, [chunk], epoch=epoch)

        await append(1, "one ")
        received: list[int] = []
        reader = follow(services.hub, "foreign", info.generation_id, -1, heartbeat=30)
        with anyio.fail_after(30):
            async for batch in reader:
                assert batch is not None
                received.extend(entry.offset for entry in batch)
                if received[-1] == 1:
                    break
            store.fail("read", error=RuntimeError)  # the hub's shared read of this log
            await append(2, "two ")
            async for batch in reader:
                assert batch is not None
                received.extend(entry.offset for entry in batch)
                if received[-1] == 2:
                    break
            await reader.aclose()
            await running.done.wait()
        _, outcome = await log_of(store, "running", running.generation_id)
    assert received == [0, 1, 2]  # the detached reader caught up with its own read
    assert outcome is Outcome.FINISHED  # the process's generations were not cancelled
    assert _records(caplog, "its readers catch up on their own")


async def test_hub_subscription_failure_is_contained_and_subscribed_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FaultyStore(MemoryStore())
    store.fail("watch_logs", error=RuntimeError)  # the subscription breaks at once
    services = make_services(store, delay_ms=5)
    async with serving(services):
        running = await start_generation(services, request("running", "a long one"), USER)
        await until(lambda: store.calls.get("watch_logs", 0) >= 2, 30, "a second subscription")
        # A log written by another process reaches its reader through the new subscription.
        info = GenerationInfo("gen-foreign-000000000000000001", "foreign", "m1", time.time())
        epoch = await store.begin_generation(
            info, encode_chunk(StartChunk(message_id="m1")), [], plan=b"{}"
        )
        reader = follow(services.hub, "foreign", info.generation_id, -1, heartbeat=30)
        received: list[int] = []
        with anyio.fail_after(30):
            async for batch in reader:
                assert batch is not None
                received.extend(entry.offset for entry in batch)
                if received[-1] == 0:
                    chunk = encode_chunk(TextDeltaChunk(id="t", delta="one"))
                    await store.append("foreign", info.generation_id, 1, [chunk], epoch=epoch)
                if received[-1] == 1:
                    break
            await reader.aclose()
            await running.done.wait()
        _, outcome = await log_of(store, "running", running.generation_id)
    assert received == [0, 1]
    assert outcome is Outcome.FINISHED  # the process's generations were not cancelled
    assert _records(caplog, "the log-change subscription failed")


# --- sync tools on their own threads -------------------------------------------------------


class _Blocker:
    """Sync tools that block until released, counting the threads inside them."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.changed = threading.Condition()
        self.inside = 0
        self.most = 0
        self.entered = 0

    def block(self) -> str:
        with self.changed:
            self.inside += 1
            self.entered += 1
            self.most = max(self.most, self.inside)
            self.changed.notify_all()
        try:
            self.release.wait()
            return "released"
        finally:
            with self.changed:
                self.inside -= 1
                self.changed.notify_all()

    def wait_inside(self, count: int, timeout: float = 20) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.inside == count, timeout), self.inside


BLOCKER = _Blocker()


@tool
def block() -> str:
    """Block until the test releases it."""
    return BLOCKER.block()


def _blocking_host(threads: int) -> FastAPI:
    bridge = Bridge(
        make_settings(bridge_tool_threads=threads, bridge_demo_token_delay_ms=0),
        store=MemoryStore(),
        tools=ToolBox([block]),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A host whose sync routes share a small thread pool (anyio's default: 40).
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        async with bridge.lifespan(app):
            yield

    app = FastAPI(lifespan=lifespan)
    bridge.install(app)

    @app.get("/host-sync")
    def host_sync() -> dict[str, bool]:  # run in the shared thread pool
        return {"ok": True}

    return app


@pytest.fixture
def blocking_host() -> Iterator[LiveServer]:
    global BLOCKER
    BLOCKER = _Blocker()
    server = LiveServer(_blocking_host(threads=2))
    server.start()
    yield server
    BLOCKER.release.set()
    server.stop()


def test_tool_threads_blocked_sync_tools_do_not_starve_request_handling(
    blocking_host: LiveServer,
) -> None:
    base = blocking_host.url
    client = httpx.Client(base_url=base, timeout=20)
    with ThreadPoolExecutor(3) as pool:
        answers = [
            pool.submit(client.post, "/api/chat", json=chat_body(f"blocked-{n}", "use block"))
            for n in range(3)
        ]
        BLOCKER.wait_inside(2)  # both tool threads taken; the third call waits for one
        # Request handling, the host's sync routes included, goes on meanwhile.
        assert client.get("/healthz").status_code == 200
        host = client.get("/host-sync")
        assert host.status_code == 200 and host.json() == {"ok": True}
        assert BLOCKER.inside == 2
        BLOCKER.release.set()
        results = [answer.result() for answer in answers]
    assert [result.status_code for result in results] == [200, 200, 200]
    assert BLOCKER.most == 2 and BLOCKER.entered == 3
    for result in results:
        assert b"tool-output-available" in result.content


async def test_tool_threads_a_timed_out_sync_tool_keeps_its_slot_until_it_returns() -> None:
    blocker = _Blocker()
    blocking = tool(name="blocking")(blocker.block)
    threads = anyio.CapacityLimiter(1)
    chunks: list[Any] = []

    async def call(call_id: str, time_limit: float = 0.2) -> bool:
        return await run_tool(
            blocking,
            call_id,
            {},
            emit=chunks.append,
            time_limit=time_limit,
            expose_errors=True,
            threads=threads,
        )

    assert not await call("c1")  # timed out; its thread still blocks, holding the slot
    assert blocker.inside == 1 and threads.borrowed_tokens == 1
    assert not await call("c2")  # timed out waiting for a thread: never started
    assert blocker.entered == 1
    blocker.release.set()
    # The next call gets the slot once the abandoned thread returned and gave it back.
    assert await call("c3", time_limit=20)
    assert threads.borrowed_tokens == 0
    assert blocker.entered == 2 and blocker.most == 1
    texts = [orjson.loads(c.model_dump_json(by_alias=True)).get("errorText") for c in chunks]
    assert texts[:2] == ["The tool blocking timed out after 0.2 s."] * 2


# --- the start path ------------------------------------------------------------------------


def test_start_record_chat_failure_still_serves_the_started_generation() -> None:
    store = FaultyStore(MemoryStore())
    server = LiveServer(create_app(make_settings(), store=store))
    server.start()
    try:
        store.fail("record_chat")  # after begin_generation succeeded
        answer = httpx.post(f"{server.url}/api/chat", json=chat_body("unlisted", "hi"), timeout=20)
        assert answer.status_code == 200
        assert b'"type":"finish"' in answer.content
        history = httpx.get(f"{server.url}/api/chat/unlisted/messages", timeout=20)
        assert history.status_code == 200
        assert [m["role"] for m in history.json()["messages"]] == ["user", "assistant"]
    finally:
        server.stop()


async def test_start_slot_is_held_for_the_generation_when_a_later_step_fails() -> None:
    store = FaultyStore(MemoryStore())
    services = make_services(store, delay_ms=10, bridge_max_generations_per_user=1)
    async with serving(services):
        store.fail("record_chat")
        generation = await start_admitted(services, request("slot", "a long one"), USER)
        assert not generation.done.is_set()
        assert services.limits.generations.running() == 1  # the slot is the generation's
        await generation.done.wait()
        assert services.limits.generations.running() == 0


class _HeldProvider:
    """A model that accepts the request only when the test lets it."""

    name = "held"

    def __init__(self) -> None:
        self.called = anyio.Event()
        self.accept = anyio.Event()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ev.ProviderEvent]:
        self.called.set()
        await self.accept.wait()
        yield ev.StreamOpened()
        yield ev.TextStart(id="t")
        yield ev.TextDelta(id="t", delta="accepted")
        yield ev.TextEnd(id="t")
        yield ev.StepFinished(finish_reason="stop", usage=ev.Usage())

    async def aclose(self) -> None:
        return None


async def test_start_slot_is_held_when_the_request_goes_away_after_the_begin() -> None:
    held = _HeldProvider()
    services = make_services(MemoryStore())
    services.registry = ProviderRegistry.from_settings(services.settings, {"held": held})
    async with serving(services):
        async with anyio.create_task_group() as group:
            body = request("gone", "hi", model="held:x")
            group.start_soon(start_admitted, services, body, USER)
            await held.called.wait()  # begun: the request waits for the model to accept
            group.cancel_scope.cancel()  # the client went away
        assert services.runner.running == 1
        assert services.limits.generations.running() == 1  # still the generation's
        held.accept.set()
        with anyio.fail_after(30):
            await services.runner.drain(30)  # returns once the generation ended on its own
        assert services.limits.generations.running() == 0
        chat = await services.store.get_chat("gone")
        assert chat is not None and chat.last_generation_id is not None
        _, outcome = await log_of(services.store, "gone", chat.last_generation_id)
    assert outcome is Outcome.FINISHED


# --- takeover ------------------------------------------------------------------------------


async def test_takeover_retries_a_transient_store_error_loading_history() -> None:
    clock = Clock()
    store = FaultyStore(MemoryStore(clock=clock, lease_seconds=1))
    async with serving(make_services(store, delay_ms=3)) as services:
        generation = await start_generation(services, request("blip", "a long one"), USER)
        await wait_for_entries(store, "blip", generation.generation_id, 10)
        await _kill_producer(store, clock, generation)
        store.fail("load_messages", times=2)
        store.fail("read", times=1)
        calls = store.calls.get("load_messages", 0)
        await recover(services, "blip", generation.generation_id)
        _, outcome = await log_of(store, "blip", generation.generation_id)
    assert store.calls["load_messages"] - calls >= 3  # two failures, then the history
    assert outcome is Outcome.FINISHED  # went on; not closed for a blip
