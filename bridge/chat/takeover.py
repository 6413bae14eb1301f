"""Taking over a generation whose producer is gone (its process was killed, or drained
and handed it over).

Whoever notices (a reader's follow loop, the stop endpoint, the periodic sweep) calls
`recover`. It claims the generation (`claim_generation`: a new epoch and the lease, exactly
one winner among all processes), rebuilds the assistant message from the log and either
goes on producing it here (the runner re-runs the interrupted step after `reset-step`, or
finishes the step's tools when it got that far, and carries on) or, when a stop was asked
for or the plan cannot be carried out here, closes it (bridge/log/recovery.py).

No tool runs twice: a call whose `data-tool-run` marker is in the log gets an
"interrupted" error result instead, unless the tool is declared idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from bridge.errors import BridgeError, GenerationNotFound, StoreError
from bridge.generation.plan import TOOL_RUN_DATA_TYPE, GenerationPlan, Resumption, Turn
from bridge.log.closing import close_claimed
from bridge.services import Services
from bridge.store.base import Claim, GenerationInfo
from protocol.assembler import MessageAssembler
from protocol.chunks import (
    DataChunk,
    FinishStepChunk,
    ResetStepChunk,
    StartStepChunk,
    ToolOutputAvailableChunk,
    ToolOutputDeniedChunk,
    ToolOutputErrorChunk,
    parse_chunk,
)
from protocol.messages import UIMessage

logger = logging.getLogger("bridge.takeover")

_TOOL_RESULTS = (ToolOutputAvailableChunk, ToolOutputErrorChunk, ToolOutputDeniedChunk)


@dataclass(slots=True)
class LogState:
    """What the log of a generation says about where its producer stopped."""

    assembler: MessageAssembler
    next_offset: int
    step_open: bool
    tools_begun: bool
    started_tools: frozenset[str]


async def read_log_state(services: Services, chat_id: str, generation_id: str) -> LogState:
    """Fold the whole log (the message, the open step, the tools that started)."""
    store = services.store
    assembler = MessageAssembler()
    step_open = tools_begun = False
    started: set[str] = set()
    after = -1
    while True:
        read = await store.read(chat_id, generation_id, after, limit=1000, wait=0)
        for entry in read.entries:
            after = entry.offset
            try:
                chunk = parse_chunk(entry.data)
                assembler.apply(chunk)
            except Exception:  # a message we cannot rebuild still gets its log closed
                logger.exception("could not fold chunk %s of %s", entry.offset, generation_id)
                continue
            if isinstance(chunk, StartStepChunk):
                step_open, tools_begun = True, False
            elif isinstance(chunk, FinishStepChunk):
                step_open, tools_begun = False, False
            elif isinstance(chunk, ResetStepChunk):
                tools_begun = False
            elif isinstance(chunk, DataChunk) and chunk.type == TOOL_RUN_DATA_TYPE:
                started.add(str(chunk.id))
                tools_begun = tools_begun or step_open
            elif isinstance(chunk, _TOOL_RESULTS):
                tools_begun = tools_begun or step_open
        if read.ended or not read.entries:
            break
    return LogState(assembler, after + 1, step_open, tools_begun, frozenset(started))


async def recover(services: Services, chat_id: str, generation_id: str) -> None:
    """The generation's producer is gone: take it over here, or close it. Harmless when
    another process got there first (the claim has one winner) or the log ended."""
    runner = services.runner
    if not runner.accepting or runner.is_running(generation_id):
        # Shutting down (leave it to another process), or the producer is right here.
        return
    try:
        claim = await services.store.claim_generation(chat_id, generation_id)
    except StoreError:
        logger.warning("could not claim generation %s", generation_id, exc_info=True)
        return
    if claim is None:
        return
    logger.warning("generation %s lost its producer: taking it over", generation_id)
    try:
        state = await read_log_state(services, chat_id, generation_id)
    except GenerationNotFound:
        return
    if state.next_offset != claim.next_offset:
        # Cannot happen while the claim holds (nobody else may write); be safe anyway.
        logger.error("generation %s: the log moved under a claim", generation_id)
        return
    if claim.stop_requested:
        await close_claimed(
            services.store,
            chat_id,
            generation_id,
            claim,
            state.assembler,
            step_open=state.step_open,
        )
        return
    try:
        plan, first_step = await _plan_from(services, chat_id, generation_id, claim)
    except BridgeError as exc:
        logger.warning("generation %s cannot go on here: %s", generation_id, exc.message)
        await close_claimed(
            services.store,
            chat_id,
            generation_id,
            claim,
            state.assembler,
            step_open=state.step_open,
        )
        return
    except (ValueError, KeyError, TypeError):
        logger.exception("generation %s: unreadable plan", generation_id)
        await close_claimed(
            services.store,
            chat_id,
            generation_id,
            claim,
            state.assembler,
            step_open=state.step_open,
        )
        return
    resumption = Resumption(
        epoch=claim.epoch,
        next_offset=claim.next_offset,
        message=state.assembler.message,
        step_open=state.step_open,
        tools_begun=state.tools_begun,
        started_tools=state.started_tools,
        first_step=first_step,
    )
    runner.resume(plan, resumption)


async def _plan_from(
    services: Services, chat_id: str, generation_id: str, claim: Claim
) -> tuple[GenerationPlan, int]:
    """The runner's plan, rebuilt from the bytes stored at begin and the stored history."""
    data: dict[str, Any] = orjson.loads(claim.plan)
    provider, model, model_id = services.registry.choose(data["model"])
    request_data: dict[str, Any] = data.get("requestData") or {}
    tools = services.tools
    declared = request_data.get("tools")
    if declared is not None and services.settings.bridge_allow_client_tools:
        tools = tools.with_client_tools(declared)
    message_id: str = data["messageId"]
    history = [UIMessage.model_validate(m) for m in await services.store.load_messages(chat_id)]
    base = [m for m in history if m.id != message_id]
    continued = next((m for m in history if m.id == message_id), None)
    if not data.get("continued"):
        continued = None
    info = GenerationInfo(
        generation_id=generation_id,
        chat_id=chat_id,
        message_id=message_id,
        created_at=float(data.get("createdAt", 0.0)),
    )
    turn = Turn(history=history, base=base, continued=continued, message_id=message_id)
    plan = GenerationPlan(
        info=info,
        turn=turn,
        provider=provider,
        model=model,
        model_id=model_id,
        request_data=request_data,
        tools=tools,
        user=data.get("user"),
    )
    return plan, int(data.get("firstStep", 0))


async def sweep(services: Services, interval: float) -> None:
    """Every `interval` seconds, take over the generations of this store whose producer
    is gone and that nobody reads (a reader's follow loop notices the others at once)."""
    while services.runner.accepting:
        await anyio.sleep(interval)
        await sweep_once(services)


async def sweep_once(services: Services) -> None:
    """Take over every generation of the store whose producer is gone (none while this
    process drains)."""
    try:
        orphans = await services.store.orphaned_generations()
    except StoreError:
        logger.warning("takeover sweep: store error", exc_info=True)
        return
    for chat_id, generation_id in orphans:
        if not services.runner.accepting:
            return
        if services.runner.is_running(generation_id):
            continue
        try:
            await recover(services, chat_id, generation_id)
        except Exception:
            logger.exception("takeover sweep: could not recover %s", generation_id)
