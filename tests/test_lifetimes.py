"""Generation lifetimes, in-process against real stores (fault-injecting where it says so):
the embedder's lifecycle hooks, the bounded end and drain, failure containment in the
process-wide reader and writer, the start path when a later step fails, and takeover's
retries."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from bridge.chat.conversation import plan_turn
from bridge.chat.operations import start_generation
from bridge.generation.hooks import (
    CancelReason,
    GenerationContext,
    GenerationEnd,
    GenerationHooks,
)
from bridge.generation.plan import GenerationPlan
from bridge.generation.runner import GenerationRunner
from bridge.providers import base as ev
from bridge.providers.base import ModelRequest
from bridge.services import Services
from bridge.store.base import GenerationInfo, Outcome
from bridge.store.memory import MemoryStore
from tests.test_survival import USER, log_of, make_services, request, serving, wait_for_entries


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
        plan = GenerationPlan(
            info=info,
            turn=plan_turn(request("hook-error", "hi"), []),
            provider=_FailingProvider(),  # type: ignore[arg-type]
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
