"""The generation runner: every generation of the process, in one task group.

A generation calls the model (step after step when tools are involved), turns provider
events into chunks, writes every chunk to the generation log and folds it into the
assistant message that is stored when the generation ends. HTTP responses never drive
it: they are readers of the log, and a client going away changes nothing here.

The runner starts, resumes and drains; one generation's lifetime and its end are in
`lifetime.py`, the steps in `steps.py`, the tool phase in `tool_phase.py`, a taken-over
generation's continuation in `resumed.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import anyio
from anyio.abc import TaskGroup, TaskStatus

from bridge.errors import ChatBusy, ChatConflict, Draining
from bridge.generation.emitter import Emitter, Totals
from bridge.generation.hooks import NO_HOOKS, GenerationHooks, OnFinish
from bridge.generation.inbox import SteeringFollowUp
from bridge.generation.lifetime import LifetimeParts, Produce, run_generation
from bridge.generation.plan import Generation, GenerationPlan, Resumption
from bridge.generation.resumed import produce_resumed
from bridge.generation.steps import StepLoop
from bridge.generation.tool_phase import ToolPhase
from bridge.log.writer import LogWriter
from bridge.observe.metrics import Metrics
from bridge.settings import Settings
from bridge.store.base import JSONDict, Outcome, SessionStore
from protocol.assembler import MessageAssembler
from protocol.chunks import StartChunk, encode_chunk
from protocol.replay import message_to_chunks

logger = logging.getLogger("bridge.generation.runner")


class GenerationRunner:
    """Owns every generation of the process in one task group (`serve`, started by the
    app's lifespan). Each generation is a task group of its own: the stop watch, the
    steering inbox and the producer; its end runs once, shielded."""

    def __init__(
        self,
        store: SessionStore,
        settings: Settings,
        writer: LogWriter,
        *,
        can_hand_over: bool,
        metrics: Metrics | None = None,
        on_finish: OnFinish | None = None,
        hooks: GenerationHooks | None = None,
    ) -> None:
        self._store = store
        self._writer = writer
        self._metrics = metrics = metrics or Metrics()
        self._parts = LifetimeParts(
            store=store,
            writer=writer,
            settings=settings,
            metrics=metrics,
            hooks=hooks or NO_HOOKS,
            on_finish=on_finish,
        )
        self._loop = StepLoop(settings, metrics, ToolPhase(settings))
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
        self,
        plan: GenerationPlan,
        *,
        expected_revision: int | None = None,
        history: Sequence[JSONDict] | None = None,
    ) -> Generation:
        """Record the generation as the chat's active one and start it. `history`: the
        turn's history already dumped by the caller (a turn's history is dumped once)."""
        if not self.accepting or self._group is None:
            raise Draining("this server is shutting down; retry the request")
        start = StartChunk(message_id=plan.turn.message_id)
        try:
            epoch = await self._store.begin_generation(
                plan.info,
                encode_chunk(start),
                history
                if history is not None
                else [message.dump() for message in plan.turn.history],
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
        loop = self._loop

        async def produce(emit: Emitter, totals: Totals) -> Outcome:
            for chunk in prelude:
                emit.writer.write(encode_chunk(chunk))  # for replays; the message has it
            return await loop.produce(generation, emit, assembler, totals)

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
        # The log's own assembler when the open text part may be continued: it knows it.
        assembler = resumption.assembler or MessageAssembler(message=resumption.message)
        loop = self._loop

        async def produce(emit: Emitter, totals: Totals) -> Outcome:
            emit.step_open = resumption.step_open
            return await produce_resumed(loop, generation, emit, assembler, totals, resumption)

        self._launch(generation, assembler, resumption.next_offset, produce)
        return generation

    def _launch(
        self,
        generation: Generation,
        assembler: MessageAssembler,
        next_offset: int,
        produce: Produce,
    ) -> None:
        assert self._group is not None
        self._generations[generation.generation_id] = generation
        self._idle.clear()
        self._group.start_soon(
            self._run, generation, assembler, next_offset, produce, name=generation.generation_id
        )

    async def _run(
        self,
        generation: Generation,
        assembler: MessageAssembler,
        next_offset: int,
        produce: Produce,
    ) -> None:
        try:
            await run_generation(
                self._parts, generation, assembler, next_offset, produce, self.follow_up
            )
        finally:
            self._generations.pop(generation.generation_id, None)
            if not self._generations:
                self._idle.set()
            generation.done.set()

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
        # Each end is bounded by BRIDGE_END_TIMEOUT_SECONDS (then abandoned, lease left
        # to lapse); drain never waits longer than that for them.
        end_timeout = self._settings.bridge_end_timeout_seconds
        with anyio.move_on_after(end_timeout):
            for generation in remaining:
                await generation.done.wait()
        late = [g.generation_id for g in remaining if not g.done.is_set()]
        if late:
            logger.error(
                "drain: %d generations did not end within %g s; going on without them: %s",
                len(late),
                end_timeout,
                ", ".join(late),
            )
        self.handed_over.set()
        self._writer.hub.hand_over()
