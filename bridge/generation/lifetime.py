"""One generation's lifetime: its log opened, the stop watch and the steering inbox beside
the producer, and its one end (shielded, once). The closing chunks come from
bridge/log/closing.py.

Ends:
* finish: ... `finish-step`, `finish{finishReason}`;
* provider or internal error: `error{errorText}`, `finish-step` if a step is open,
  `finish{finishReason:"error"}`;
* stop (from any process, through the store): the provider call is cancelled, which
  closes its HTTP response, then `abort{reason}`;
* hand-over (drain): the log is flushed and left open, the lease released; another
  process takes over (bridge/chat/takeover.py). With nobody to take over (memory store):
  `abort{reason:"server shutting down"}`;
* the log writer failed (fenced, the store down past its retries): nothing more can be
  written; the producer stops and takeover decides.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from bridge.errors import StoreError
from bridge.generation.emitter import Emitter, Totals
from bridge.generation.hooks import (
    CancelReason,
    GenerationContext,
    GenerationEnd,
    GenerationHooks,
    OnFinish,
)
from bridge.generation.inbox import SteeringFollowUp, SteeringInbox, waits_for_client
from bridge.generation.plan import Generation
from bridge.generation.steps import has_content
from bridge.log.closing import SHUTDOWN_REASON, STOPPED_REASON, closing_chunks
from bridge.log.writer import GenerationLog, LogWriter
from bridge.observe import tracing
from bridge.observe.logs import bound
from bridge.observe.metrics import Metrics
from bridge.settings import Settings
from bridge.store.base import Outcome, SessionStore
from bridge.store.steering_records import NotDeliveredReason
from protocol.assembler import MessageAssembler

# One logger for the whole producer (operators filter on this name).
logger = logging.getLogger("bridge.generation.runner")

Produce = Callable[[Emitter, Totals], Awaitable[Outcome]]
"""The producer of one generation: a new one's steps, or a taken-over one's."""


@dataclass(frozen=True, slots=True)
class LifetimeParts:
    """What every generation's lifetime uses."""

    store: SessionStore
    writer: LogWriter
    settings: Settings
    metrics: Metrics
    hooks: GenerationHooks
    on_finish: OnFinish | None = None


async def run_generation(
    parts: LifetimeParts,
    generation: Generation,
    assembler: MessageAssembler,
    next_offset: int,
    produce: Produce,
    follow_up: SteeringFollowUp | None,
) -> None:
    """The generation's task: its lifetime inside its log context and trace span."""
    info = generation.plan.info
    try:
        with (
            bound(
                chat_id=info.chat_id,
                generation_id=info.generation_id,
                user=generation.plan.user,
            ),
            tracing.generation_span(
                chat_id=info.chat_id,
                generation_id=info.generation_id,
                model_id=generation.plan.model_id,
                links=generation.links,
                takeover=generation.taken_over,
            ),
        ):
            await _lifetime(parts, generation, assembler, next_offset, produce, follow_up)
    except Exception:
        # Never seen so far; logged here, since the runner's group must outlive it.
        logger.exception("generation %s failed outside its end path", info.generation_id)
    finally:
        if not generation.opened.done():
            generation.opened.set_result(None)


def context_of(generation: Generation) -> GenerationContext:
    plan = generation.plan
    return GenerationContext(
        chat_id=plan.info.chat_id,
        generation_id=plan.info.generation_id,
        user=plan.user,
        model_id=plan.model_id,
        taken_over=generation.taken_over,
    )


async def _lifetime(
    parts: LifetimeParts,
    generation: Generation,
    assembler: MessageAssembler,
    next_offset: int,
    produce: Produce,
    follow_up: SteeringFollowUp | None,
) -> None:
    info = generation.plan.info
    writer = parts.writer.open(
        info.chat_id,
        info.generation_id,
        epoch=generation.epoch,
        next_offset=next_offset,
        on_failure=lambda exc: generation.scope.cancel(),
    )
    emit = Emitter(writer, assembler, generation)
    totals = Totals()
    stopped = False
    outcome: Outcome | None = None
    # The steering queue's reader (bridge/generation/inbox.py): messages sent while this runs
    # are delivered at step boundaries; those left at the end start the next turn.
    steering = generation.steering = SteeringInbox(
        parts.store,
        info.chat_id,
        info.generation_id,
        emit,
        wait_seconds=parts.settings.bridge_heartbeat_seconds,
    )
    left: list[Any] = []
    try:
        with generation.scope:
            async with anyio.create_task_group() as inner:

                async def watch_stop() -> None:
                    nonlocal stopped
                    await _watch_stop(parts.store, info.chat_id, info.generation_id)
                    stopped = True
                    generation.scope.cancel()

                inner.start_soon(watch_stop)
                inner.start_soon(steering.watch)
                # Inside the group: a stop cancels a slow hook too.
                await _call_hook("before", parts.hooks.before(context_of(generation)), generation)
                outcome = await produce(emit, totals)
                inner.cancel_scope.cancel()
    finally:
        # Shielded (a stop or a drain cancelled the producer, not its end) and bounded: an
        # end that hangs (the store, the embedder's on_finish) must not hold shutdown.
        end_timeout = parts.settings.bridge_end_timeout_seconds
        with anyio.CancelScope(shield=True) as end_scope:
            end_scope.deadline = anyio.current_time() + end_timeout
            if not generation.handing_over:
                with contextlib.suppress(Exception):
                    left = await steering.close(
                        _not_delivered_reason(outcome, stopped, steering, assembler)
                    )
            await _end(parts, generation, writer, emit, assembler, totals, outcome, stopped)
        if end_scope.cancelled_caught:
            _abandon(parts, generation, writer, end_timeout)
            left = []  # the end did not finish: no next turn from here
    plan = generation.plan
    if left and outcome is not None and outcome is not Outcome.ABORTED and follow_up:
        # This generation is over: it no longer counts against the next turn's limits.
        generation.done.set()
        await follow_up(info, plan.model_id, plan.request_data, left)


def _not_delivered_reason(
    outcome: Outcome | None, stopped: bool, steering: SteeringInbox, assembler: MessageAssembler
) -> NotDeliveredReason:
    """Why the messages still queued at the end were not delivered (the AI SDK's words)."""
    if stopped or outcome is Outcome.ABORTED:
        return "aborted"
    if outcome is not Outcome.FINISHED:
        return "error"
    if steering.stop_condition:
        return "stop-condition"
    if waits_for_client(assembler.message):
        return "waiting-for-tool-results"
    return "finished"


async def _watch_stop(store: SessionStore, chat_id: str, generation_id: str) -> None:
    """Return when a stop was requested; store errors are retried with backoff (a stop
    must not be lost to a blip)."""
    delay = 0.1
    while True:
        try:
            await store.wait_for_stop(chat_id, generation_id)
            return
        except StoreError:
            logger.warning("stop watch of %s: store error; retrying", generation_id)
            await anyio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _end(
    parts: LifetimeParts,
    generation: Generation,
    writer: GenerationLog,
    emit: Emitter,
    assembler: MessageAssembler,
    totals: Totals,
    outcome: Outcome | None,
    stopped: bool,
) -> None:
    """The one end of every generation. Runs shielded, once."""
    plan = generation.plan
    generation_id = plan.info.generation_id
    metrics = parts.metrics
    hooks = parts.hooks
    context = context_of(generation)
    usage = totals.as_metadata() if totals.seen else None
    try:
        if writer.failure is not None:
            metrics.generations.labels("fenced").inc()
            # Fenced (taken over), gone, or the store is down past the retries: nothing
            # more can be written; the lease lapses and takeover decides.
            logger.warning(
                "generation %s: the log writer failed (%r); the producer stops",
                generation_id,
                writer.failure,
            )
            await _left_open(hooks, generation, context, "lost", usage)
            return
        if outcome is None and generation.handing_over:
            metrics.generations.labels("handed_over").inc()
            await writer.release()
            logger.info("generation %s handed over", generation_id)
            await _left_open(hooks, generation, context, "handover", usage)
            return
        cancelled: CancelReason | None = None
        if outcome is None:
            reason = STOPPED_REASON if stopped else SHUTDOWN_REASON
            cancelled = "stop" if stopped else "shutdown"
            for chunk in closing_chunks(abort_reason=reason, step_open=emit.step_open):
                emit(chunk)
            outcome = Outcome.ABORTED
        message = assembler.message
        messages = None
        if plan.turn.continued is not None or has_content(message):
            messages = [m.dump() for m in plan.turn.base] + [message.dump()]
        await writer.close(outcome, messages)
        _observe_end(metrics, generation, emit, totals, outcome)
        logger.info(
            "generation %s ended: %s",
            generation_id,
            outcome.value,
            extra={
                "outcome": outcome.value,
                "duration_seconds": round(time.monotonic() - generation.started_at, 3),
                "output_tokens": totals.output_tokens if totals.seen else None,
            },
        )
        dumped = message.dump()
        if parts.on_finish is not None:
            try:
                await parts.on_finish(plan.info.chat_id, dumped, usage, plan.user)
            except Exception:
                logger.exception("on_finish failed for generation %s", generation_id)
        if outcome is Outcome.ERROR and generation.error is not None:
            await _call_hook("on_error", hooks.on_error(context, generation.error), generation)
        if cancelled is not None:
            await _call_hook("on_cancel", hooks.on_cancel(context, cancelled), generation)
        end = GenerationEnd(outcome=outcome.value, message=dumped, usage=usage)
        await _call_hook("after", hooks.after(context, end), generation)
    except Exception:
        logger.exception("could not end generation %s", generation_id)


def _abandon(
    parts: LifetimeParts, generation: Generation, writer: GenerationLog, seconds: float
) -> None:
    """The end outlived BRIDGE_END_TIMEOUT_SECONDS. Whatever it did not reach is given up:
    the log (if still open) is no longer renewed, so its lease lapses and another process,
    or this one's sweep, takes the generation over as if this process had died."""
    if writer.abandon():
        parts.metrics.generations.labels("abandoned").inc()
        logger.error(
            "generation %s: its end took longer than %g s and was abandoned with its log "
            "open (the lease lapses; takeover decides)",
            generation.generation_id,
            seconds,
        )
    else:
        logger.error(
            "generation %s: its end took longer than %g s (after its log was closed: "
            "on_finish or a hook); abandoned",
            generation.generation_id,
            seconds,
        )


async def _left_open(
    hooks: GenerationHooks,
    generation: Generation,
    context: GenerationContext,
    reason: CancelReason,
    usage: dict[str, int] | None,
) -> None:
    await _call_hook("on_cancel", hooks.on_cancel(context, reason), generation)
    end = GenerationEnd(outcome=None, message=None, usage=usage)
    await _call_hook("after", hooks.after(context, end), generation)


async def _call_hook(name: str, call: Awaitable[None], generation: Generation) -> None:
    """A hook observes: its failure is logged and changes nothing."""
    try:
        await call
    except Exception:
        logger.exception("hook %s failed for generation %s", name, generation.generation_id)


def _observe_end(
    metrics: Metrics, generation: Generation, emit: Emitter, totals: Totals, outcome: Outcome
) -> None:
    metrics.generations.labels(outcome.value).inc()
    metrics.generation_duration.observe(time.monotonic() - generation.started_at)
    if emit.first_content_at is not None and not generation.taken_over:
        metrics.time_to_first_token.observe(emit.first_content_at - generation.started_at)
    metrics.chunks.inc(emit.chunks)
    if totals.seen:
        metrics.tokens.labels("input").inc(totals.input_tokens)
        metrics.tokens.labels("output").inc(totals.output_tokens)
