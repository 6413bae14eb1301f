"""The generation runner: one task per generation, owned by the application.

The task calls the model (step after step when tools are involved), turns provider
events into chunks, writes every chunk to the generation log and folds it into the
assistant message that is stored when the generation ends. HTTP responses never drive
it: they are readers of the log, and a client going away changes nothing here.

Ends (each writes the end marker and the history in one atomic store step):
* finish: ... `finish-step`, `finish{finishReason}`;
* provider or internal error: `error{errorText}`, `finish-step` if a step is open,
  `finish{finishReason:"error"}`;
* stop (from any process, through the store): the provider call is cancelled, which
  closes its HTTP response, then `abort{reason}`;
* shutdown: like stop, with the reason "server shutting down".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import anyio

from bridge.continuation import ApprovalDecision
from bridge.conversation import Turn
from bridge.errors import ChatBusy, ChatConflict, ProviderError, ProviderUnavailable
from bridge.ids import new_approval_id
from bridge.log.writer import LogWriter
from bridge.providers import base as ev
from bridge.providers.base import ModelRequest, Provider
from bridge.settings import Settings
from bridge.steering import SteeringFollowUp, SteeringInbox, waits_for_client
from bridge.store.base import GenerationInfo, Outcome, SessionStore
from bridge.tools import ToolBox
from bridge.tools.declare import ToolInputError
from bridge.tools.execute import run_tool
from bridge.transform import InputCheck, StepTransformer
from protocol.assembler import MessageAssembler
from protocol.chunks import (
    AbortChunk,
    DataChunk,
    ErrorChunk,
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
from protocol.messages import StepStartUIPart, UIMessage
from protocol.replay import message_to_chunks

logger = logging.getLogger("bridge.runner")

INTERNAL_ERROR_TEXT = "An internal error occurred."
_YIELD_EVERY = 16


@dataclass(slots=True)
class GenerationPlan:
    info: GenerationInfo
    turn: Turn
    provider: Provider
    model: str
    """The provider's own model name."""
    model_id: str
    """The "provider:model" string, reported in message metadata."""
    request_data: dict[str, Any] = field(default_factory=dict)
    tools: ToolBox = field(default_factory=ToolBox)
    decisions: list[ApprovalDecision] = field(default_factory=list)
    """Approval answers of a continuation, carried out before the model is called."""


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


class Generation:
    """A running generation, as seen by the request that started it."""

    def __init__(self, plan: GenerationPlan) -> None:
        self.plan = plan
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Resolves once the model accepted the request or anything was streamed; fails
        with the ProviderError when the very first call was refused."""
        self.done = asyncio.Event()
        self.prelude_end = 0
        """Offsets 1..prelude_end rebuild the continued message for replays; a reader that
        holds the message already (the request that continued it) skips them."""
        self.steering: SteeringInbox | None = None

    @property
    def generation_id(self) -> str:
        return self.plan.info.generation_id


class _Emitter:
    """Encodes each chunk once, logs it and folds it into the assistant message."""

    def __init__(self, writer: LogWriter, assembler: MessageAssembler, generation: Generation):
        self._writer = writer
        self._assembler = assembler
        self._generation = generation
        self.step_open = False

    def __call__(self, chunk: UIMessageChunk) -> None:
        self._writer.write(encode_chunk(chunk))
        self._assembler.apply(chunk)
        if isinstance(chunk, StartStepChunk):
            self.step_open = True
        elif isinstance(chunk, FinishStepChunk):
            self.step_open = False
        elif not self._generation.opened.done():
            self._generation.opened.set_result(None)


class GenerationRunner:
    def __init__(self, store: SessionStore, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()
        self.follow_up: SteeringFollowUp | None = None
        """Starts the next turn with steering messages left over at a generation's end."""

    async def start(self, plan: GenerationPlan) -> Generation:
        """Record the generation as the chat's active one and start its task."""
        start = StartChunk(message_id=plan.turn.message_id)
        try:
            await self._store.begin_generation(
                plan.info, encode_chunk(start), [message.dump() for message in plan.turn.history]
            )
        except ChatBusy as exc:
            raise ChatConflict(
                "this chat already has a generation running; resume it with "
                f"GET /api/chat/{plan.info.chat_id}/stream or stop it first"
            ) from exc
        generation = Generation(plan)
        prelude = message_to_chunks(plan.turn.continued) if plan.turn.continued else []
        generation.prelude_end = len(prelude)
        task = asyncio.create_task(
            self._run(generation, start, prelude), name=plan.info.generation_id
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return generation

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def shutdown(self) -> None:
        """Cancel every generation; each writes `abort` and its history before it ends."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self, generation: Generation, start: StartChunk, prelude: list[UIMessageChunk]
    ) -> None:
        plan = generation.plan
        info = plan.info
        continued = plan.turn.continued
        assembler = MessageAssembler(message=continued) if continued else MessageAssembler()
        assembler.apply(start)
        writer = LogWriter(
            self._store,
            info.chat_id,
            info.generation_id,
            flush_interval=self._settings.bridge_flush_ms / 1000,
            lease_renew_interval=self._settings.bridge_lease_seconds / 3,
        )
        emit = _Emitter(writer, assembler, generation)
        for chunk in prelude:
            writer.write(encode_chunk(chunk))  # logged for replays; the message has it already
        outcome = Outcome.FINISHED
        stopped = False
        # --- steering hook (bridge/steering.py): the queue's reader for this generation.
        steering = generation.steering = SteeringInbox(
            self._store,
            info.chat_id,
            info.generation_id,
            emit,
            wait_seconds=self._settings.bridge_heartbeat_seconds,
        )
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(steering.watch)

                async def watch_stop() -> None:
                    nonlocal stopped
                    try:
                        await self._store.wait_for_stop(info.chat_id, info.generation_id)
                    except Exception:
                        # Without the store nothing can be logged either; let the
                        # generation run into the store error itself.
                        logger.exception("stop watch failed for %s", info.generation_id)
                        return
                    stopped = True
                    group.cancel_scope.cancel()

                group.start_soon(watch_stop)
                outcome = await self._produce(generation, emit, assembler)
                group.cancel_scope.cancel()
            if stopped:
                outcome = Outcome.ABORTED
                emit(AbortChunk(reason="stopped"))
        except asyncio.CancelledError:
            outcome = Outcome.ABORTED
            emit(AbortChunk(reason="server shutting down"))
            with anyio.CancelScope(shield=True):
                await self._finish(generation, writer, assembler, outcome)
            raise
        left = await steering.close()  # steering hook: later messages start the next turn
        await self._finish(generation, writer, assembler, outcome)
        if left and outcome is not Outcome.ABORTED and self.follow_up is not None:
            await self.follow_up(info, plan.model_id, plan.request_data, left)

    async def _finish(
        self,
        generation: Generation,
        writer: LogWriter,
        assembler: MessageAssembler,
        outcome: Outcome,
    ) -> None:
        plan = generation.plan
        message = assembler.message
        messages = None
        if plan.turn.continued is not None or _has_content(message):
            messages = [m.dump() for m in plan.turn.base] + [message.dump()]
        try:
            await writer.close(outcome, messages)
        except Exception:
            logger.exception("could not close the log of generation %s", plan.info.generation_id)
        finally:
            if not generation.opened.done():
                generation.opened.set_result(None)
            generation.done.set()
            logger.info("generation %s ended: %s", plan.info.generation_id, outcome.value)

    async def _produce(
        self, generation: Generation, emit: _Emitter, assembler: MessageAssembler
    ) -> Outcome:
        plan = generation.plan
        totals = _Totals()
        finish_reason: ev.FinishReason = "stop"
        try:
            await self._carry_out_decisions(plan, emit)
            # Steps of a continued message go on from its own (block ids stay unique).
            continued = plan.turn.continued
            first = sum(isinstance(p, StepStartUIPart) for p in continued.parts) if continued else 0
            for step in range(first, first + self._settings.bridge_max_steps):
                finish_reason, go_on = await self._step(generation, emit, assembler, step, totals)
                # --- steering hook: the step boundary, before the next model call.
                steering = generation.steering
                if (
                    steering is not None
                    and step + 1 < first + self._settings.bridge_max_steps  # a call left
                    and not waits_for_client(assembler.message)
                    and await steering.deliver()
                ):
                    continue
                if not go_on:
                    break
            emit(
                FinishChunk(
                    finish_reason=finish_reason, message_metadata=self._metadata(plan, totals)
                )
            )
            return Outcome.FINISHED
        except ProviderError as exc:
            logger.warning(
                "generation %s: provider error: %s", plan.info.generation_id, exc.message
            )
            if not generation.opened.done():
                generation.opened.set_exception(exc)
            self._emit_error(emit, exc.message, plan, totals)
            return Outcome.ERROR
        except Exception:
            logger.exception("generation %s failed", plan.info.generation_id)
            self._emit_error(emit, INTERNAL_ERROR_TEXT, plan, totals)
            return Outcome.ERROR

    def _emit_error(self, emit: _Emitter, text: str, plan: GenerationPlan, totals: _Totals) -> None:
        emit(ErrorChunk(error_text=text))
        if emit.step_open:
            emit(FinishStepChunk())
        emit(FinishChunk(finish_reason="error", message_metadata=self._metadata(plan, totals)))

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
        """Run server tools concurrently, each within its timeout."""
        if not calls:
            return
        settings = self._settings
        async with anyio.create_task_group() as group:
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
                # Logged before the tool runs: a crash or a resume shows it started, and
                # nothing ever runs it again for this call.
                emit(
                    DataChunk(
                        type="data-tool-run",
                        id=call_id,
                        transient=True,
                        data={"toolCallId": call_id, "status": "running"},
                    )
                )
                group.start_soon(
                    functools.partial(
                        run_tool,
                        tool,
                        call_id,
                        arguments,
                        emit=emit,
                        time_limit=tool.timeout or settings.bridge_tool_timeout_seconds,
                        expose_errors=settings.bridge_expose_errors,
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
    ) -> tuple[ev.FinishReason, bool]:
        """One model call and the tools it asked for. Returns the finish reason and whether
        the loop goes on (tool results for the model to read)."""
        plan = generation.plan
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
        events = plan.provider.stream(request)
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


def _has_content(message: UIMessage) -> bool:
    return any(not isinstance(part, StepStartUIPart) for part in message.parts)
