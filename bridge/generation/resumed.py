"""Continuing a taken-over generation: the interrupted step's response is read again where
the provider kept it (bridge/generation/reattach.py), or the step is continued from its
partial text where the provider accepts an assistant prefill (bridge/generation/prefill.py),
else re-run (after `reset-step`); or, when it got as far as its tools, its tools are
finished; then the steps go on."""

from __future__ import annotations

from typing import Any

from bridge.errors import ProviderError
from bridge.generation.emitter import Emitter, Totals
from bridge.generation.plan import Generation, Resumption
from bridge.generation.steps import StepLoop, finish
from bridge.store.base import Outcome
from protocol.assembler import MessageAssembler
from protocol.chunks import DataChunk, FinishStepChunk, ResetStepChunk
from protocol.messages import StepStartUIPart

RECOVERING_CHUNK_TYPE = "data-recovering"
"""A transient chunk about a takeover (bridge/chat/takeover.py): `phase` `recovering` (taken
over), `resumed` (the new producer runs), `failed` (a recovery cap ended it)."""


def recovering_chunk(generation_id: str, phase: str, **data: Any) -> DataChunk:
    return DataChunk(
        type=RECOVERING_CHUNK_TYPE,
        id=generation_id,
        transient=True,
        data={"phase": phase, **data},
    )


async def produce_resumed(
    loop: StepLoop,
    generation: Generation,
    emit: Emitter,
    assembler: MessageAssembler,
    totals: Totals,
    resumption: Resumption,
) -> Outcome:
    """A taken-over generation: finish the interrupted step (continue its partial text,
    or re-run it from the history and the finished steps, or finish its tools when it got
    that far), then go on."""
    plan = generation.plan
    # Every reader learns the answer is produced again (it said "recovering" so far).
    emit(recovering_chunk(plan.info.generation_id, "resumed"))
    try:
        message = resumption.message
        steps = sum(isinstance(p, StepStartUIPart) for p in message.parts)
        if resumption.step_open and not resumption.tools_begun:
            reattached = resumption.reattached
            if reattached is not None and not loop.reattaches(generation, assembler):
                reattached = None
            continued = None if reattached is not None else resumption.open_text
            if continued is not None and not (
                continued.startswith(f"s{steps - 1}-")  # a part of this step's model call
                and loop.accepts_prefill(generation, assembler)
            ):
                continued = None
            if continued is None and reattached is None:
                # Readers drop the unfinished attempt, like the stored message.
                emit(ResetStepChunk())
            finish_reason, proceed = await loop.step(
                generation,
                emit,
                assembler,
                steps - 1,
                totals,
                restart=True,
                continued=continued,
                reattached=reattached,
            )
            if not proceed:
                return finish(plan, emit, totals, finish_reason)
            return await loop.steps(generation, emit, assembler, totals, steps, "stop")
        go_on = await loop.tools.finish_tools(plan, message, resumption.started_tools, emit)
        if resumption.step_open:
            emit(FinishStepChunk())
        own_steps = steps - resumption.first_step
        if go_on is False:
            return finish(plan, emit, totals, "tool-calls")
        if go_on is None and own_steps > 0:
            return finish(plan, emit, totals, "stop")
        return await loop.steps(generation, emit, assembler, totals, steps, "stop")
    except ProviderError as exc:
        return loop.failed(generation, emit, totals, exc)
    except Exception as exc:
        return loop.failed(generation, emit, totals, exc)
