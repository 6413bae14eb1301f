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
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from bridge.conversation import Turn
from bridge.errors import ChatConflict, ProviderError
from bridge.log import LogWriter
from bridge.providers import base as ev
from bridge.providers.base import ModelRequest, Provider, ToolSpec
from bridge.settings import Settings
from bridge.store.base import ChatBusy, GenerationInfo, Outcome, SessionStore
from bridge.transform import StepTransformer
from protocol.assembler import MessageAssembler
from protocol.chunks import (
    AbortChunk,
    ErrorChunk,
    FinishChunk,
    FinishStepChunk,
    MessageMetadataChunk,
    StartChunk,
    StartStepChunk,
    UIMessageChunk,
    encode_chunk,
)
from protocol.messages import StepStartUIPart, UIMessage

logger = logging.getLogger("bridge.runner")

INTERNAL_ERROR_TEXT = "An internal error occurred."


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
    def __init__(
        self, store: SessionStore, settings: Settings, tools: tuple[ToolSpec, ...] = ()
    ) -> None:
        self._store = store
        self._settings = settings
        self._tools = tools
        self._tasks: set[asyncio.Task[None]] = set()

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
        task = asyncio.create_task(self._run(generation, start), name=plan.info.generation_id)
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

    async def _run(self, generation: Generation, start: StartChunk) -> None:
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
        outcome = Outcome.FINISHED
        stopped = False
        try:
            async with anyio.create_task_group() as group:

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
        await self._finish(generation, writer, assembler, outcome)

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
            for step in range(self._settings.bridge_max_steps):
                finish_reason = await self._step(generation, emit, assembler, step, totals)
                break  # the tool loop (server-side tools) continues here
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

    async def _step(
        self,
        generation: Generation,
        emit: _Emitter,
        assembler: MessageAssembler,
        step: int,
        totals: _Totals,
    ) -> ev.FinishReason:
        plan = generation.plan
        settings = self._settings
        conversation: list[UIMessage] = list(plan.turn.base)
        in_progress = assembler.message
        if _has_content(in_progress):
            conversation.append(in_progress)
        request = ModelRequest(
            model=plan.model,
            messages=conversation,
            system=settings.bridge_system_prompt,
            tools=self._tools,
            max_output_tokens=settings.bridge_max_output_tokens,
            temperature=settings.bridge_temperature,
        )
        emit(StartStepChunk())
        transformer = StepTransformer(step)
        events = plan.provider.stream(request)
        try:
            async for event in events:
                if isinstance(event, ev.StreamOpened) and not generation.opened.done():
                    generation.opened.set_result(None)
                for chunk in transformer.transform(event):
                    emit(chunk)
        finally:
            # Closing the iterator closes the provider's HTTP response (stop, shutdown).
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await aclose()
        for chunk in transformer.close_open_blocks():
            emit(chunk)
        emit(FinishStepChunk())
        finished = transformer.finished
        if finished is None:
            return "interrupted"
        totals.add(finished.usage)
        if totals.seen:
            emit(MessageMetadataChunk(message_metadata={"usage": totals.as_metadata()}))
        return finished.finish_reason

    @staticmethod
    def _metadata(plan: GenerationPlan, totals: _Totals) -> dict[str, Any]:
        metadata: dict[str, Any] = {"model": plan.model_id}
        if totals.seen:
            metadata["usage"] = totals.as_metadata()
        return metadata


def _has_content(message: UIMessage) -> bool:
    return any(not isinstance(part, StepStartUIPart) for part in message.parts)


def now() -> float:
    return time.time()
