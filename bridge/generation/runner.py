"""The generation runner: every generation of the process, in one task group.

A generation calls the model (step after step when tools are involved), turns provider
events into chunks, writes every chunk to the generation log and folds it into the
assistant message that is stored when the generation ends. HTTP responses never drive
it: they are readers of the log, and a client going away changes nothing here.

Ends (one shielded path, `_end`; the closing chunks come from bridge/log/closing.py):
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

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from bridge.errors import (
    ChatBusy,
    ChatConflict,
    Draining,
    ProviderError,
    ProviderUnavailable,
    StoreError,
)
from bridge.generation.ids import new_approval_id
from bridge.generation.inbox import SteeringFollowUp, SteeringInbox, waits_for_client
from bridge.generation.plan import (
    TOOL_RUN_DATA_TYPE,
    Generation,
    GenerationPlan,
    Resumption,
)
from bridge.generation.transform import InputCheck, StepTransformer
from bridge.log.closing import SHUTDOWN_REASON, STOPPED_REASON, closing_chunks
from bridge.log.writer import GenerationLog, LogWriter
from bridge.observe import tracing
from bridge.observe.logs import bound
from bridge.observe.metrics import Metrics
from bridge.providers import base as ev
from bridge.providers.base import ModelRequest
from bridge.settings import Settings
from bridge.store.base import Outcome, SessionStore
from bridge.tools.declare import ToolInputError
from bridge.tools.execute import run_tool
from protocol.assembler import MessageAssembler
from protocol.chunks import (
    DataChunk,
    FinishChunk,
    FinishStepChunk,
    MessageMetadataChunk,
    ResetStepChunk,
    StartChunk,
    StartStepChunk,
    ToolApprovalRequestChunk,
    ToolOutputDeniedChunk,
    ToolOutputErrorChunk,
    UIMessageChunk,
    encode_chunk,
)
from protocol.messages import DynamicToolUIPart, StepStartUIPart, ToolUIPart, UIMessage
from protocol.replay import message_to_chunks

logger = logging.getLogger("bridge.generation.runner")

INTERNAL_ERROR_TEXT = "An internal error occurred."
TOOL_INTERRUPTED_TEXT = (
    "The tool was interrupted: the server running it stopped. It may or may not have taken effect."
)
OnFinish = Callable[[str, dict[str, Any], dict[str, int] | None, str | None], Awaitable[None]]
"""`on_finish(chat_id, message, usage, user)`: called once a generation's log is closed with
its final assistant message (a dict, as stored), its token usage and the user: an embedding
app saves finished messages in its own database here. Its failures are logged."""

_YIELD_EVERY = 16


@dataclass(slots=True)
class _Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_input_tokens: int = 0
    seen: bool = False

    def add(self, usage: ev.Usage) -> None:
        for name in ("input_tokens", "output_tokens", "reasoning_tokens", "cached_input_tokens"):
            value = getattr(usage, name)
            if value is not None:
                setattr(self, name, getattr(self, name) + value)
                self.seen = True

    def as_metadata(self) -> dict[str, int]:
        usage = {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens,
        }
        if self.reasoning_tokens:
            usage["reasoningTokens"] = self.reasoning_tokens
        if self.cached_input_tokens:
            usage["cachedInputTokens"] = self.cached_input_tokens
        return usage


class _Emitter:
    """Encodes each chunk once, logs it and folds it into the assistant message."""

    def __init__(self, writer: GenerationLog, assembler: MessageAssembler, generation: Generation):
        self._writer = writer
        self._assembler = assembler
        self._generation = generation
        self.step_open = False
        self.first_content_at: float | None = None
        self.chunks = 0

    @property
    def writer(self) -> GenerationLog:
        return self._writer

    async def drained(self) -> None:
        """Backpressure: wait while the store is behind this generation's chunks."""
        await self._writer.drained()

    def __call__(self, chunk: UIMessageChunk) -> None:
        self._writer.write(encode_chunk(chunk))
        self.chunks += 1
        self._assembler.apply(chunk)
        if isinstance(chunk, StartStepChunk):
            self.step_open = True
        elif isinstance(chunk, FinishStepChunk):
            self.step_open = False
        else:
            if self.first_content_at is None:
                self.first_content_at = time.monotonic()
            if not self._generation.opened.done():
                self._generation.opened.set_result(None)


class GenerationRunner:
    """Owns every generation of the process in one task group (`serve`, started by the
    app's lifespan). Each generation is a task group of its own: the log writer's flush
    loop, the stop watch and the producer; its end runs once, shielded."""

    def __init__(
        self,
        store: SessionStore,
        settings: Settings,
        writer: LogWriter,
        *,
        can_hand_over: bool,
        metrics: Metrics | None = None,
        on_finish: OnFinish | None = None,
    ) -> None:
        self._store = store
        self._writer = writer
        self._metrics = metrics or Metrics()
        self._on_finish = on_finish
        self.follow_up: SteeringFollowUp | None = None
        """Starts the next turn with steering messages left over at a generation's end."""
        self._settings = settings
        self._can_hand_over = can_hand_over
        self._group: TaskGroup | None = None
        self._generations: dict[str, Generation] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.accepting = True
        """False once draining: new generations are refused (503)."""
        self.handed_over = asyncio.Event()
        """Set when draining handed the remaining generations over: readers end."""

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as group:
            self._group = group
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._group = None

    async def start(
        self, plan: GenerationPlan, *, expected_revision: int | None = None
    ) -> Generation:
        """Record the generation as the chat's active one and start it."""
        if not self.accepting or self._group is None:
            raise Draining("this server is shutting down; retry the request")
        start = StartChunk(message_id=plan.turn.message_id)
        try:
            epoch = await self._store.begin_generation(
                plan.info,
                encode_chunk(start),
                [message.dump() for message in plan.turn.history],
                expected_revision=expected_revision,
                plan=plan.dump(),
            )
        except ChatBusy as exc:
            raise ChatConflict(
                "this chat already has a generation running; resume it with "
                f"GET /api/chat/{plan.info.chat_id}/stream or stop it first"
            ) from exc
        generation = Generation(plan)
        generation.epoch = epoch
        prelude = message_to_chunks(plan.turn.continued) if plan.turn.continued else []
        generation.prelude_end = len(prelude)
        continued = plan.turn.continued
        assembler = MessageAssembler(message=continued) if continued else MessageAssembler()
        assembler.apply(start)

        async def produce(emit: _Emitter, totals: _Totals) -> Outcome:
            for chunk in prelude:
                emit.writer.write(encode_chunk(chunk))  # for replays; the message has it
            return await self._produce(generation, emit, assembler, totals)

        self._launch(generation, assembler, 1, produce)
        return generation

    def resume(self, plan: GenerationPlan, resumption: Resumption) -> Generation:
        """Go on with a generation taken over from a producer that is gone."""
        if self._group is None:
            raise Draining("this server is shutting down")
        generation = Generation(plan)
        generation.epoch = resumption.epoch
        generation.taken_over = True
        self._metrics.takeovers.inc()
        if not generation.opened.done():
            generation.opened.set_result(None)
        assembler = MessageAssembler(message=resumption.message)

        async def produce(emit: _Emitter, totals: _Totals) -> Outcome:
            emit.step_open = resumption.step_open
            return await self._produce_resumed(generation, emit, assembler, totals, resumption)

        self._launch(generation, assembler, resumption.next_offset, produce)
        return generation

    def _launch(
        self,
        generation: Generation,
        assembler: MessageAssembler,
        next_offset: int,
        produce: Callable[[_Emitter, _Totals], Awaitable[Outcome]],
    ) -> None:
        assert self._group is not None
        self._generations[generation.generation_id] = generation
        self._idle.clear()
        self._group.start_soon(
            self._run, generation, assembler, next_offset, produce, name=generation.generation_id
        )

    @property
    def running(self) -> int:
        return len(self._generations)

    def is_running(self, generation_id: str) -> bool:
        return generation_id in self._generations

    async def drain(self, seconds: float) -> None:
        """Refuse new generations, let running ones end for up to `seconds`, then hand the
        rest over (flushed, lease released: another process takes over) or, when nobody
        can take over (memory store), end them with `abort`."""
        self.accepting = False
        with anyio.move_on_after(seconds):
            await self._idle.wait()
        remaining = list(self._generations.values())
        for generation in remaining:
            generation.handing_over = self._can_hand_over
            generation.scope.cancel()
        for generation in remaining:
            await generation.done.wait()
        self.handed_over.set()
        self._writer.hub.hand_over()

    async def _run(
        self,
        generation: Generation,
        assembler: MessageAssembler,
        next_offset: int,
        produce: Callable[[_Emitter, _Totals], Awaitable[Outcome]],
    ) -> None:
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
                await self._lifetime(generation, assembler, next_offset, produce)
        except Exception:
            # Never seen so far; logged here, since the runner's group must outlive it.
            logger.exception("generation %s failed outside its end path", info.generation_id)
        finally:
            self._generations.pop(info.generation_id, None)
            if not self._generations:
                self._idle.set()
            if not generation.opened.done():
                generation.opened.set_result(None)
            generation.done.set()

    async def _lifetime(
        self,
        generation: Generation,
        assembler: MessageAssembler,
        next_offset: int,
        produce: Callable[[_Emitter, _Totals], Awaitable[Outcome]],
    ) -> None:
        info = generation.plan.info
        writer = self._writer.open(
            info.chat_id,
            info.generation_id,
            epoch=generation.epoch,
            next_offset=next_offset,
            on_failure=lambda exc: generation.scope.cancel(),
        )
        emit = _Emitter(writer, assembler, generation)
        totals = _Totals()
        stopped = False
        outcome: Outcome | None = None
        # The steering queue's reader (bridge/generation/inbox.py): messages sent while this runs
        # are delivered at step boundaries; those left at the end start the next turn.
        steering = generation.steering = SteeringInbox(
            self._store,
            info.chat_id,
            info.generation_id,
            emit,
            wait_seconds=self._settings.bridge_heartbeat_seconds,
        )
        left: list[Any] = []
        try:
            with generation.scope:
                async with anyio.create_task_group() as inner:

                    async def watch_stop() -> None:
                        nonlocal stopped
                        await self._watch_stop(info.chat_id, info.generation_id)
                        stopped = True
                        generation.scope.cancel()

                    inner.start_soon(watch_stop)
                    inner.start_soon(steering.watch)
                    outcome = await produce(emit, totals)
                    inner.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                if not generation.handing_over:
                    with contextlib.suppress(Exception):
                        left = await steering.close()
                await self._end(generation, writer, emit, assembler, totals, outcome, stopped)
        plan = generation.plan
        if left and outcome is not None and outcome is not Outcome.ABORTED and self.follow_up:
            await self.follow_up(info, plan.model_id, plan.request_data, left)

    async def _watch_stop(self, chat_id: str, generation_id: str) -> None:
        """Return when a stop was requested; store errors are retried with backoff (a stop
        must not be lost to a blip)."""
        delay = 0.1
        while True:
            try:
                await self._store.wait_for_stop(chat_id, generation_id)
                return
            except StoreError:
                logger.warning("stop watch of %s: store error; retrying", generation_id)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _end(
        self,
        generation: Generation,
        writer: GenerationLog,
        emit: _Emitter,
        assembler: MessageAssembler,
        totals: _Totals,
        outcome: Outcome | None,
        stopped: bool,
    ) -> None:
        """The one end of every generation. Runs shielded, once."""
        plan = generation.plan
        generation_id = plan.info.generation_id
        try:
            if writer.failure is not None:
                self._metrics.generations.labels("fenced").inc()
                # Fenced (taken over), gone, or the store is down past the retries: nothing
                # more can be written; the lease lapses and takeover decides.
                logger.warning(
                    "generation %s: the log writer failed (%r); the producer stops",
                    generation_id,
                    writer.failure,
                )
                return
            if outcome is None and generation.handing_over:
                self._metrics.generations.labels("handed_over").inc()
                await writer.release()
                logger.info("generation %s handed over", generation_id)
                return
            if outcome is None:
                reason = STOPPED_REASON if stopped else SHUTDOWN_REASON
                for chunk in closing_chunks(abort_reason=reason, step_open=emit.step_open):
                    emit(chunk)
                outcome = Outcome.ABORTED
            message = assembler.message
            messages = None
            if plan.turn.continued is not None or _has_content(message):
                messages = [m.dump() for m in plan.turn.base] + [message.dump()]
            await writer.close(outcome, messages)
            self._observe_end(generation, emit, totals, outcome)
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
            if self._on_finish is not None:
                usage = totals.as_metadata() if totals.seen else None
                try:
                    await self._on_finish(plan.info.chat_id, message.dump(), usage, plan.user)
                except Exception:
                    logger.exception("on_finish failed for generation %s", generation_id)
        except Exception:
            logger.exception("could not end generation %s", generation_id)

    def _observe_end(
        self, generation: Generation, emit: _Emitter, totals: _Totals, outcome: Outcome
    ) -> None:
        metrics = self._metrics
        metrics.generations.labels(outcome.value).inc()
        metrics.generation_duration.observe(time.monotonic() - generation.started_at)
        if emit.first_content_at is not None and not generation.taken_over:
            metrics.time_to_first_token.observe(emit.first_content_at - generation.started_at)
        metrics.chunks.inc(emit.chunks)
        if totals.seen:
            metrics.tokens.labels("input").inc(totals.input_tokens)
            metrics.tokens.labels("output").inc(totals.output_tokens)

    async def _produce(
        self,
        generation: Generation,
        emit: _Emitter,
        assembler: MessageAssembler,
        totals: _Totals,
    ) -> Outcome:
        plan = generation.plan
        time_limit = self._settings.bridge_max_generation_seconds
        try:
            with anyio.fail_after(time_limit):
                await self._carry_out_decisions(plan, emit)
                # Steps of a continued message go on from its own (block ids stay unique).
                continued = plan.turn.continued
                first = (
                    sum(isinstance(p, StepStartUIPart) for p in continued.parts) if continued else 0
                )
                return await self._steps(generation, emit, assembler, totals, first, "stop")
        except TimeoutError:
            # BRIDGE_MAX_GENERATION_SECONDS: the whole generation, every step and tool.
            logger.warning("generation %s: over its time limit", plan.info.generation_id)
            if not generation.opened.done():
                generation.opened.set_result(None)
            text = f"The answer took longer than {time_limit:g} s and was ended."
            for chunk in closing_chunks(
                error_text=text, step_open=emit.step_open, metadata=self._metadata(plan, totals)
            ):
                emit(chunk)
            return Outcome.ERROR
        except ProviderError as exc:
            if not generation.opened.done():
                generation.opened.set_exception(exc)
            return self._failed(generation, emit, totals, exc)
        except Exception as exc:
            return self._failed(generation, emit, totals, exc)

    async def _steps(
        self,
        generation: Generation,
        emit: _Emitter,
        assembler: MessageAssembler,
        totals: _Totals,
        first: int,
        finish_reason: ev.FinishReason,
    ) -> Outcome:
        plan = generation.plan
        last = first + self._settings.bridge_max_steps
        for step in range(first, last):
            finish_reason, go_on = await self._step(generation, emit, assembler, step, totals)
            # The step boundary, before the next model call: steering messages go in here.
            steering = generation.steering
            if (
                steering is not None
                and step + 1 < last  # a model call is left to hear them
                and not waits_for_client(assembler.message)
                and await steering.deliver()
            ):
                continue
            if not go_on:
                break
        return self._finish(plan, emit, totals, finish_reason)

    def _finish(
        self, plan: GenerationPlan, emit: _Emitter, totals: _Totals, reason: ev.FinishReason
    ) -> Outcome:
        emit(FinishChunk(finish_reason=reason, message_metadata=self._metadata(plan, totals)))
        return Outcome.FINISHED

    def _failed(
        self, generation: Generation, emit: _Emitter, totals: _Totals, exc: Exception
    ) -> Outcome:
        """A provider or internal error: close with the error chunks. A writer failure is
        not an error of the answer: re-raised, the end path sees it."""
        plan = generation.plan
        if emit.writer.failure is not None:
            raise exc
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
            error_text=text, step_open=emit.step_open, metadata=self._metadata(plan, totals)
        ):
            emit(chunk)
        return Outcome.ERROR

    async def _produce_resumed(
        self,
        generation: Generation,
        emit: _Emitter,
        assembler: MessageAssembler,
        totals: _Totals,
        resumption: Resumption,
    ) -> Outcome:
        """A taken-over generation: finish the interrupted step (re-run it from the history
        and the finished steps, or finish its tools when it got that far), then go on."""
        plan = generation.plan
        try:
            message = resumption.message
            steps = sum(isinstance(p, StepStartUIPart) for p in message.parts)
            if resumption.step_open and not resumption.tools_begun:
                # Readers drop the unfinished attempt, like the stored message.
                emit(ResetStepChunk())
                finish_reason, proceed = await self._step(
                    generation, emit, assembler, steps - 1, totals, restart=True
                )
                if not proceed:
                    return self._finish(plan, emit, totals, finish_reason)
                return await self._steps(generation, emit, assembler, totals, steps, "stop")
            go_on = await self._finish_tools(plan, message, resumption.started_tools, emit)
            if resumption.step_open:
                emit(FinishStepChunk())
            own_steps = steps - resumption.first_step
            if go_on is False:
                return self._finish(plan, emit, totals, "tool-calls")
            if go_on is None and own_steps > 0:
                return self._finish(plan, emit, totals, "stop")
            return await self._steps(generation, emit, assembler, totals, steps, "stop")
        except ProviderError as exc:
            return self._failed(generation, emit, totals, exc)
        except Exception as exc:
            return self._failed(generation, emit, totals, exc)

    async def _finish_tools(
        self, plan: GenerationPlan, message: UIMessage, started: frozenset[str], emit: _Emitter
    ) -> bool | None:
        """The tool calls of the message's last step that have no result yet: one whose
        `data-tool-run` is in the log gets an "interrupted" error (it may have had effects;
        an idempotent tool runs again); one never started runs now; denied ones are marked.
        Returns like `_handle_tool_calls`: None nothing to do, True results for the model,
        False the turn waits for the client."""
        last_step = _last_step_parts(message)
        to_run: list[tuple[str, str, Any]] = []
        waiting = False
        results = False
        for part in last_step:
            if not isinstance(part, ToolUIPart | DynamicToolUIPart) or part.provider_executed:
                continue
            call_id = part.tool_call_id
            tool = plan.tools.get(part.tool_name)
            if part.state in ("output-available", "output-error", "output-denied"):
                results = results or not (tool is None or tool.client_side)
                continue
            approval = part.approval
            if part.state == "approval-responded" and approval is not None:
                if not approval.approved:
                    emit(ToolOutputDeniedChunk(tool_call_id=call_id))
                    results = True
                    continue
            elif part.state == "approval-requested" or tool is None or tool.client_side:
                waiting = True
                continue
            if call_id in started and not (tool is not None and tool.idempotent):
                emit(ToolOutputErrorChunk(tool_call_id=call_id, error_text=TOOL_INTERRUPTED_TEXT))
                results = True
                continue
            to_run.append((call_id, part.tool_name, part.input))
        await self._execute(plan, to_run, emit)
        if waiting:
            return False
        if to_run or results:
            return True
        return None

    async def _carry_out_decisions(self, plan: GenerationPlan, emit: _Emitter) -> None:
        """Approved tools run (with the stored input), denied ones are marked denied, before
        the model hears about them."""
        approved = []
        for decision in plan.decisions:
            if decision.approved:
                approved.append((decision.tool_call_id, decision.tool_name, decision.input))
            else:
                emit(ToolOutputDeniedChunk(tool_call_id=decision.tool_call_id))
        await self._execute(plan, approved, emit)

    async def _execute(
        self, plan: GenerationPlan, calls: list[tuple[str, str, Any]], emit: _Emitter
    ) -> None:
        """Run server tools concurrently, each within its timeout.

        Every call's `data-tool-run` marker is acknowledged by the store before any tool
        starts: a takeover then knows the tool may have run and never runs it again."""
        if not calls:
            return
        settings = self._settings
        runnable: list[tuple[str, Any, dict[str, Any]]] = []
        for call_id, name, tool_input in calls:
            tool = plan.tools.get(name)
            if tool is None or tool.client_side:
                emit(
                    ToolOutputErrorChunk(
                        tool_call_id=call_id, error_text=f"The tool {name} is not available."
                    )
                )
                continue
            try:
                arguments = tool.validate(tool_input)
            except ToolInputError as exc:
                emit(
                    ToolOutputErrorChunk(
                        tool_call_id=call_id, error_text=f"Invalid input for {name}: {exc}"
                    )
                )
                continue
            emit(
                DataChunk(
                    type=TOOL_RUN_DATA_TYPE,
                    id=call_id,
                    transient=True,
                    data={"toolCallId": call_id, "status": "running"},
                )
            )
            runnable.append((call_id, tool, arguments))
        if not runnable:
            return
        await emit.writer.flushed()
        async with anyio.create_task_group() as group:
            for call_id, tool, arguments in runnable:
                group.start_soon(
                    functools.partial(
                        _traced_tool,
                        tool,
                        call_id,
                        arguments,
                        emit=emit,
                        time_limit=tool.timeout or settings.bridge_tool_timeout_seconds,
                        expose_errors=settings.bridge_expose_errors,
                        user=plan.user,
                    )
                )

    def _check_input(self, plan: GenerationPlan) -> InputCheck:
        def check(name: str, tool_input: dict[str, Any]) -> str | None:
            tool = plan.tools.get(name)
            if tool is None:
                offered = ", ".join(spec.name for spec in plan.tools.specs) or "none"
                return f"There is no tool named {name!r} (tools: {offered})."
            try:
                tool.validate(tool_input)
            except ToolInputError as exc:
                return f"Invalid input for {name}: {exc}"
            return None

        return check

    async def _step(
        self,
        generation: Generation,
        emit: _Emitter,
        assembler: MessageAssembler,
        step: int,
        totals: _Totals,
        *,
        restart: bool = False,
    ) -> tuple[ev.FinishReason, bool]:
        with tracing.step_span(step):
            return await self._step_body(generation, emit, assembler, step, totals, restart=restart)

    async def _step_body(
        self,
        generation: Generation,
        emit: _Emitter,
        assembler: MessageAssembler,
        step: int,
        totals: _Totals,
        *,
        restart: bool = False,
    ) -> tuple[ev.FinishReason, bool]:
        """One model call and the tools it asked for. Returns the finish reason and whether
        the loop goes on (tool results for the model to read). `restart`: the step was
        opened (and reset) already, by the producer this generation was taken over from."""
        plan = generation.plan
        if not restart:
            emit(StartStepChunk())
        retries = self._settings.bridge_step_retries
        while True:
            transformer = StepTransformer(step, self._check_input(plan))
            try:
                if generation.steering is None:
                    await self._call_model(generation, assembler, transformer, emit)
                else:  # steering hook: an `interrupt` message cancels this call
                    with generation.steering.interruptible():
                        await self._call_model(generation, assembler, transformer, emit)
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
        go_on = await self._handle_tool_calls(plan, transformer, emit)
        emit(FinishStepChunk())
        if finished is not None:
            totals.add(finished.usage)
        if totals.seen:
            emit(MessageMetadataChunk(message_metadata={"usage": totals.as_metadata()}))
        if go_on is None:
            return finish_reason, False
        return ("tool-calls" if finish_reason == "stop" else finish_reason), go_on

    async def _handle_tool_calls(
        self, plan: GenerationPlan, transformer: StepTransformer, emit: _Emitter
    ) -> bool | None:
        """Run server tools, ask for approvals, leave client tools to the browser.

        None: the step called no tool (the answer is done). True: results were added, call
        the model again. False: the turn waits for the client (approval or browser tool)."""
        to_run: list[tuple[str, str, Any]] = []
        waiting = False
        for call in transformer.tool_calls:
            if call.provider_executed:
                continue
            tool = plan.tools.get(call.tool_name)
            tool_input = transformer.parsed_inputs[call.tool_call_id]
            if tool is None or tool.client_side:
                waiting = True
            elif tool.requires_approval(tool_input):
                emit(
                    ToolApprovalRequestChunk(
                        approval_id=new_approval_id(), tool_call_id=call.tool_call_id
                    )
                )
                waiting = True
            else:
                to_run.append((call.tool_call_id, call.tool_name, tool_input))
        await self._execute(plan, to_run, emit)
        if waiting:
            return False
        if to_run or transformer.input_errors:
            return True
        return None

    async def _call_model(
        self,
        generation: Generation,
        assembler: MessageAssembler,
        transformer: StepTransformer,
        emit: _Emitter,
    ) -> None:
        plan = generation.plan
        settings = self._settings
        conversation: list[UIMessage] = list(plan.turn.base)
        in_progress = assembler.message
        if _has_content(in_progress):
            # Without the step-start of the step being asked for: it has no content yet.
            parts = in_progress.parts
            if parts and isinstance(parts[-1], StepStartUIPart):
                in_progress = in_progress.model_copy(update={"parts": parts[:-1]})
            conversation.append(in_progress)
        request = ModelRequest(
            model=plan.model,
            messages=conversation,
            system=settings.bridge_system_prompt,
            tools=plan.tools.specs,
            max_output_tokens=settings.bridge_max_output_tokens,
            temperature=settings.bridge_temperature,
        )
        with tracing.provider_span(plan.model_id) as span:
            try:
                await self._stream_model(generation, request, transformer, emit)
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

    async def _stream_model(
        self,
        generation: Generation,
        request: ModelRequest,
        transformer: StepTransformer,
        emit: _Emitter,
    ) -> None:
        events = generation.plan.provider.stream(request)
        count = 0
        try:
            async for event in events:
                if isinstance(event, ev.StreamOpened) and not generation.opened.done():
                    generation.opened.set_result(None)
                for chunk in transformer.transform(event):
                    emit(chunk)
                count += 1
                if count % _YIELD_EVERY == 0:
                    # Reading buffered provider data never suspends: give the flusher, the
                    # readers and other generations their turn.
                    await asyncio.sleep(0)
                    await emit.drained()
        finally:
            # Closing the iterator closes the provider's HTTP response (stop, shutdown).
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await aclose()

    @staticmethod
    def _metadata(plan: GenerationPlan, totals: _Totals) -> dict[str, Any]:
        metadata: dict[str, Any] = {"model": plan.model_id}
        if totals.seen:
            metadata["usage"] = totals.as_metadata()
        return metadata


def _last_step_parts(message: UIMessage) -> list[Any]:
    """The parts after the message's last step-start (all of them when it has none)."""
    parts = list(message.parts)
    for index in range(len(parts) - 1, -1, -1):
        if isinstance(parts[index], StepStartUIPart):
            return parts[index + 1 :]
    return parts


def _has_content(message: UIMessage) -> bool:
    return any(not isinstance(part, StepStartUIPart) for part in message.parts)


async def _traced_tool(tool: Any, call_id: str, arguments: Any, **options: Any) -> None:
    with tracing.tool_span(tool.name, call_id):
        await run_tool(tool, call_id, arguments, **options)
