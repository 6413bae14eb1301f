"""The step loop: a new generation's steps, one model call per step (retried with
`reset-step` when the provider drops), steering delivered at step boundaries, and the
answer's `finish` or error chunks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio

from bridge.errors import ProviderError, ProviderUnavailable
from bridge.generation.emitter import Emitter, Totals, message_metadata
from bridge.generation.inbox import waits_for_client
from bridge.generation.plan import Generation, GenerationPlan
from bridge.generation.prefill import PrefillTransformer, open_text_tail
from bridge.generation.reattach import Reattached, ReattachedTransformer, response_chunk
from bridge.generation.tool_phase import ToolPhase, input_check
from bridge.generation.transform import StepTransformer
from bridge.log.closing import closing_chunks
from bridge.observe import tracing
from bridge.observe.metrics import Metrics
from bridge.providers import base as ev
from bridge.providers.base import ModelRequest, accepts_prefill, reattaches
from bridge.settings import Settings
from bridge.store.base import Outcome
from protocol.assembler import MessageAssembler
from protocol.chunks import (
    FinishChunk,
    FinishStepChunk,
    MessageMetadataChunk,
    ResetStepChunk,
    StartStepChunk,
)
from protocol.messages import StepStartUIPart, UIMessage

# One logger for the whole producer (operators filter on this name).
logger = logging.getLogger("bridge.generation.runner")

INTERNAL_ERROR_TEXT = "An internal error occurred."

_YIELD_EVERY = 16

PAUSED_TURN = "pause_turn"
"""The stop reason of a model that paused a long turn of its own (server) tools and expects
its content back, as is, to continue it (Anthropic): the loop goes on with another call."""


class StepLoop:
    """Produces a generation's answer, step after step."""

    def __init__(self, settings: Settings, metrics: Metrics, tools: ToolPhase) -> None:
        self._settings = settings
        self._metrics = metrics
        self.tools = tools

    async def produce(
        self, generation: Generation, emit: Emitter, assembler: MessageAssembler, totals: Totals
    ) -> Outcome:
        """A new generation: the approval answers carried out, then the steps, all within
        BRIDGE_MAX_GENERATION_SECONDS."""
        plan = generation.plan
        time_limit = self._settings.bridge_max_generation_seconds
        try:
            with anyio.fail_after(time_limit):
                await self.tools.carry_out_decisions(plan, emit)
                # Steps of a continued message go on from its own (block ids stay unique).
                continued = plan.turn.continued
                first = (
                    sum(isinstance(p, StepStartUIPart) for p in continued.parts) if continued else 0
                )
                return await self.steps(generation, emit, assembler, totals, first, "stop")
        except TimeoutError as exc:
            # BRIDGE_MAX_GENERATION_SECONDS: the whole generation, every step and tool.
            logger.warning("generation %s: over its time limit", plan.info.generation_id)
            if not generation.opened.done():
                generation.opened.set_result(None)
            generation.error = exc
            text = f"The answer took longer than {time_limit:g} s and was ended."
            for chunk in closing_chunks(
                error_text=text,
                step_open=emit.step_open,
                metadata=message_metadata(plan, totals),
            ):
                emit(chunk)
            return Outcome.ERROR
        except ProviderError as exc:
            if not generation.opened.done():
                generation.opened.set_exception(exc)
            return self.failed(generation, emit, totals, exc)
        except Exception as exc:
            return self.failed(generation, emit, totals, exc)

    async def steps(
        self,
        generation: Generation,
        emit: Emitter,
        assembler: MessageAssembler,
        totals: Totals,
        first: int,
        finish_reason: ev.FinishReason,
    ) -> Outcome:
        plan = generation.plan
        last = first + self._settings.bridge_max_steps
        for step in range(first, last):
            finish_reason, go_on = await self.step(generation, emit, assembler, step, totals)
            # The step boundary, before the next model call: steering messages go in here.
            steering = generation.steering
            if steering is not None and steering.ending:
                break  # a `turn-interrupt` message: end here, it becomes the next turn
            if (
                steering is not None
                and step + 1 < last  # a model call is left to hear them
                and not waits_for_client(assembler.message)
                and await steering.deliver(step + 1 - first)
            ):
                continue
            if not go_on:
                break
            if steering is not None and step + 1 == last:
                steering.stop_condition = True
        return finish(plan, emit, totals, finish_reason)

    def failed(
        self, generation: Generation, emit: Emitter, totals: Totals, exc: Exception
    ) -> Outcome:
        """A provider or internal error: close with the error chunks. A writer failure is
        not an error of the answer: re-raised, the end path sees it."""
        plan = generation.plan
        if emit.writer.failure is not None:
            raise exc
        generation.error = exc
        if isinstance(exc, ProviderError):
            self._metrics.provider_errors.labels(exc.code).inc()
            logger.warning(
                "generation %s: provider error: %s", plan.info.generation_id, exc.message
            )
            text = exc.message
        else:
            logger.error("generation %s failed", plan.info.generation_id, exc_info=exc)
            text = INTERNAL_ERROR_TEXT
        for chunk in closing_chunks(
            error_text=text, step_open=emit.step_open, metadata=message_metadata(plan, totals)
        ):
            emit(chunk)
        return Outcome.ERROR

    async def step(
        self,
        generation: Generation,
        emit: Emitter,
        assembler: MessageAssembler,
        step: int,
        totals: Totals,
        *,
        restart: bool = False,
        continued: str | None = None,
        reattached: Reattached | None = None,
    ) -> tuple[ev.FinishReason, bool]:
        with tracing.step_span(step):
            return await self._step_body(
                generation,
                emit,
                assembler,
                step,
                totals,
                restart=restart,
                continued=continued,
                reattached=reattached,
            )

    def reattaches(self, generation: Generation, assembler: MessageAssembler) -> bool:
        """Whether the provider can read this step's response again by its id."""
        return reattaches(generation.plan.provider, self._request(generation, assembler))

    def accepts_prefill(self, generation: Generation, assembler: MessageAssembler) -> bool:
        """Whether the model would continue the message's partial text (an assistant
        prefill) rather than answer anew."""
        return accepts_prefill(generation.plan.provider, self._request(generation, assembler))

    async def _step_body(
        self,
        generation: Generation,
        emit: Emitter,
        assembler: MessageAssembler,
        step: int,
        totals: Totals,
        *,
        restart: bool = False,
        continued: str | None = None,
        reattached: Reattached | None = None,
    ) -> tuple[ev.FinishReason, bool]:
        """One model call and the tools it asked for. Returns the finish reason and whether
        the loop goes on (tool results for the model to read). `restart`: the step was
        opened (and reset) already, by the producer this generation was taken over from.
        `continued`: the step was opened and not reset: the model continues its open text
        part of this chunk id (bridge/generation/prefill.py). `reattached`: the step was
        opened and not reset: its response is read again (bridge/generation/reattach.py)."""
        plan = generation.plan
        if not restart:
            emit(StartStepChunk())
        retries = self._settings.bridge_step_retries
        tail = open_text_tail(assembler.message) if continued is not None else None
        while True:
            transformer: StepTransformer
            response_id: str | None = None
            if reattached is not None:
                response_id = reattached.response_id
                transformer = ReattachedTransformer(step, input_check(plan), reattached.logged)
                reattached = None  # a retry (after `reset-step`) starts the step anew
            elif continued is not None and tail is not None:
                transformer = PrefillTransformer(step, input_check(plan), continued, tail)
                continued = None  # a retry (after `reset-step`) starts the step anew
            else:
                transformer = StepTransformer(step, input_check(plan))
            try:
                if generation.steering is None:
                    await self._call_model(generation, assembler, transformer, emit, response_id)
                else:  # steering hook: an `interrupt` message cancels this call
                    with generation.steering.interruptible():
                        await self._call_model(
                            generation, assembler, transformer, emit, response_id
                        )
                break
            except ProviderUnavailable:
                if retries <= 0 or not generation.opened.done():
                    raise
                retries -= 1
                # The client drops the failed attempt's parts, like the stored message.
                emit(ResetStepChunk())
                await anyio.sleep(0.5)
        for chunk in transformer.close_open_blocks():
            emit(chunk)
        finished = transformer.finished
        finish_reason: ev.FinishReason = finished.finish_reason if finished else "interrupted"
        go_on = await self.tools.handle_tool_calls(plan, transformer, emit)
        emit(FinishStepChunk())
        if finished is not None:
            totals.add(finished.usage)
        if totals.seen:
            emit(MessageMetadataChunk(message_metadata={"usage": totals.as_metadata()}))
        if go_on is None:
            if finished is not None and finished.raw_finish_reason == PAUSED_TURN:
                # The next model call gets the step's content back as is and goes on.
                return finish_reason, True
            return finish_reason, False
        return ("tool-calls" if finish_reason == "stop" else finish_reason), go_on

    async def _call_model(
        self,
        generation: Generation,
        assembler: MessageAssembler,
        transformer: StepTransformer,
        emit: Emitter,
        response_id: str | None = None,
    ) -> None:
        """The model call; `response_id`: read that response again instead."""
        plan = generation.plan
        settings = self._settings
        request = self._request(generation, assembler)
        provider = plan.provider
        events: AsyncIterator[ev.ProviderEvent]
        if response_id is not None:
            events = getattr(provider, "reattach")(request, response_id)  # noqa: B009
            mark = False  # the log names the response already
        else:
            events = provider.stream(request)
            mark = reattaches(provider, request)
        with tracing.provider_span(plan.model_id) as span:
            try:
                await _stream_model(
                    generation,
                    events,
                    transformer,
                    emit,
                    settings.bridge_provider_idle_seconds,
                    mark,
                )
            except ProviderError as exc:
                tracing.mark_error(span, exc.code)
                raise
            finished = transformer.finished
            if finished is not None:
                tracing.record_usage(
                    span,
                    input_tokens=finished.usage.input_tokens,
                    output_tokens=finished.usage.output_tokens,
                    finish_reason=finished.finish_reason,
                )

    def _request(self, generation: Generation, assembler: MessageAssembler) -> ModelRequest:
        """The model call: the conversation so far, the in-progress message included (its
        open step's partial text, if any, is then a prefill)."""
        plan = generation.plan
        settings = self._settings
        conversation: list[UIMessage] = list(plan.turn.base)
        in_progress = assembler.message
        if has_content(in_progress):
            # Without the step-start of the step being asked for: it has no content yet.
            parts = in_progress.parts
            if parts and isinstance(parts[-1], StepStartUIPart):
                in_progress = in_progress.model_copy(update={"parts": parts[:-1]})
            conversation.append(in_progress)
        return ModelRequest(
            model=plan.model,
            messages=conversation,
            system=settings.bridge_system_prompt,
            tools=plan.tools.specs,
            max_output_tokens=settings.bridge_max_output_tokens,
            temperature=settings.bridge_temperature,
        )


def finish(plan: GenerationPlan, emit: Emitter, totals: Totals, reason: ev.FinishReason) -> Outcome:
    """The answer is complete: its `finish` chunk."""
    emit(FinishChunk(finish_reason=reason, message_metadata=message_metadata(plan, totals)))
    return Outcome.FINISHED


def has_content(message: UIMessage) -> bool:
    return any(not isinstance(part, StepStartUIPart) for part in message.parts)


async def _stream_model(
    generation: Generation,
    events: AsyncIterator[ev.ProviderEvent],
    transformer: StepTransformer,
    emit: Emitter,
    idle_seconds: float,
    mark: bool,
) -> None:
    """The model call's events into chunks. A watchdog cuts a call that receives nothing
    for `idle_seconds` (a stalled upstream: bytes stop, the connection stays open) and
    raises ProviderUnavailable, so the step is retried or the answer ends; one timer per
    call, not per event."""
    count = 0
    loop = asyncio.get_running_loop()
    last_event = loop.time()
    stalled = False
    scope = anyio.CancelScope()
    watchdog: asyncio.TimerHandle | None = None

    def check() -> None:
        # Re-armed for the rest of the idle time: at most one wake-up per idle period.
        nonlocal watchdog, stalled
        remaining = last_event + idle_seconds - loop.time()
        if remaining > 0:
            watchdog = loop.call_later(remaining, check)
        else:
            stalled = True
            scope.cancel()

    watchdog = loop.call_later(idle_seconds, check)
    try:
        with scope:
            async for event in events:
                last_event = loop.time()
                if isinstance(event, ev.StreamOpened):
                    if not generation.opened.done():
                        generation.opened.set_result(None)
                    if mark and event.response_id:
                        # Durable before the step's content: a takeover reads it again.
                        emit(response_chunk(event.response_id))
                for chunk in transformer.transform(event):
                    emit(chunk)
                count += 1
                if count % _YIELD_EVERY == 0:
                    # Reading buffered provider data never suspends: give the flusher, the
                    # readers and other generations their turn.
                    await asyncio.sleep(0)
                    await emit.drained()
                    last_event = loop.time()  # a store that is behind is not the model
        if stalled:
            raise ProviderUnavailable(
                f"the model sent nothing for {idle_seconds:g} s (stalled upstream)",
                provider=generation.plan.model_id.partition(":")[0],
            )
    finally:
        if watchdog is not None:
            watchdog.cancel()
        # Closing the iterator closes the provider's HTTP response (stop, shutdown).
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await aclose()
