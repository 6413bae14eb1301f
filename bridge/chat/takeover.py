"""Taking over a generation whose producer is gone (its process was killed, or drained
and handed it over).

Whoever notices (a reader's follow loop, the stop endpoint, the periodic sweep) calls
`recover`. It claims the generation (`claim_generation`: a new epoch and the lease, exactly
one winner among all processes), rebuilds the assistant message from the log and either
goes on producing it here (the runner continues the interrupted step's partial text where
the provider accepts an assistant prefill, else re-runs the step after `reset-step`, or
finishes the step's tools when it got that far, and carries on) or, when a stop was asked
for or the plan cannot be carried out here, closes it (bridge/log/recovery.py).

No tool runs twice: a call whose `data-tool-run` marker is in the log gets an
"interrupted" error result instead, unless the tool is declared idempotent.

Recovery is bounded and visible. Every takeover writes a transient `data-recovering` chunk
(`{"phase": "recovering", "attempt", "since"}`) before anything else, so every reader can say
"recovering"; the producer that goes on writes `{"phase": "resumed"}` when it produces
again. The chunk is the generation's recovery memory, whatever process takes it over next:
`attempt` counts takeovers, `since` is when the log last made progress (content after the
previous takeover's chunk). Past BRIDGE_RECOVERY_MAX_TAKEOVERS takeovers, or
BRIDGE_RECOVERY_MAX_STALL_SECONDS without progress, the generation is ended instead:
`data-recovering {"phase": "failed"}`, `error` with the reason, `finish`, and the partial
message stored. A turn waiting for an approval or a browser tool has ended its generation
(`finish{tool-calls}`): nothing runs, nothing is timed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import orjson

from bridge.errors import (
    BridgeError,
    ChatBusy,
    Fenced,
    GenerationNotFound,
    OffsetConflict,
    StaleRevision,
    StoreError,
)
from bridge.generation.plan import TOOL_RUN_DATA_TYPE, GenerationPlan, Resumption, Turn
from bridge.generation.prefill import open_text_tail
from bridge.generation.reattach import RESPONSE_CHUNK_TYPE, Reattached
from bridge.generation.resumed import RECOVERING_CHUNK_TYPE, recovering_chunk
from bridge.log.closing import close_claimed
from bridge.services import Services
from bridge.store.base import Claim, GenerationInfo
from protocol.assembler import MessageAssembler
from protocol.chunks import (
    DataChunk,
    FinishStepChunk,
    ResetStepChunk,
    StartStepChunk,
    TextEndChunk,
    TextStartChunk,
    ToolApprovalRequestChunk,
    ToolOutputAvailableChunk,
    ToolOutputDeniedChunk,
    ToolOutputErrorChunk,
    encode_chunk,
    parse_chunk,
)
from protocol.messages import UIMessage

logger = logging.getLogger("bridge.takeover")
_T = TypeVar("_T")

_TOOL_RESULTS = (ToolOutputAvailableChunk, ToolOutputErrorChunk, ToolOutputDeniedChunk)
# What a takeover or a step boundary writes: not the answer's progress.
_NOT_PROGRESS = (StartStepChunk, FinishStepChunk, ResetStepChunk)
_NOT_PROGRESS_DATA = frozenset({RECOVERING_CHUNK_TYPE, TOOL_RUN_DATA_TYPE, RESPONSE_CHUNK_TYPE})


@dataclass(frozen=True, slots=True)
class RecoveryState:
    """What the log says about earlier takeovers (see the module docstring)."""

    attempts: int = 0
    """Takeovers so far."""
    since: float | None = None
    """When the log last made progress, as of the last takeover (None: no takeover yet)."""
    progressed: bool = True
    """Content was logged after the last takeover's chunk."""

    def next(self, now: float) -> RecoveryState:
        since = now if self.progressed or self.since is None else self.since
        return RecoveryState(self.attempts + 1, since, False)


@dataclass(slots=True)
class LogState:
    """What the log of a generation says about where its producer stopped."""

    assembler: MessageAssembler
    next_offset: int
    step_open: bool
    tools_begun: bool
    started_tools: frozenset[str]
    recovery: RecoveryState = RecoveryState()
    open_text: str | None = None
    """The chunk id of the open step's text part when it is all the step produced and
    still open: the step may be continued rather than re-run."""
    reattached: Reattached | None = None
    """The open step's response id and the chunks of its model call the log holds."""


async def read_log_state(services: Services, chat_id: str, generation_id: str) -> LogState:
    """Fold the whole log (the message, the open step, the tools that started)."""
    store = services.store
    assembler = MessageAssembler()
    step_open = tools_begun = False
    started: set[str] = set()
    open_text: set[str] = set()  # text parts of the open step without their text-end
    response_id: str | None = None  # the open step's response (`data-provider-response`)
    logged = 0  # chunks of the open step's model call (not the bridge's own markers)
    recovery = RecoveryState()
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
            if isinstance(chunk, DataChunk) and chunk.type == RECOVERING_CHUNK_TYPE:
                data = chunk.data if isinstance(chunk.data, dict) else {}
                if data.get("phase") == "recovering":
                    recovery = RecoveryState(
                        int(data.get("attempt", recovery.attempts + 1)),
                        float(data.get("since", 0.0)),
                        progressed=False,
                    )
            elif not isinstance(chunk, _NOT_PROGRESS) and not (
                isinstance(chunk, DataChunk) and chunk.type in _NOT_PROGRESS_DATA
            ):
                recovery = dataclasses.replace(recovery, progressed=True)
            if isinstance(chunk, StartStepChunk | FinishStepChunk | ResetStepChunk):
                open_text.clear()
                response_id, logged = None, 0
            elif isinstance(chunk, DataChunk) and chunk.type == RESPONSE_CHUNK_TYPE:
                response_id = str(chunk.id)
            elif isinstance(chunk, ToolApprovalRequestChunk):
                # The tool phase wrote here: more than the model call's chunks; re-run.
                response_id = None
            elif not (isinstance(chunk, DataChunk) and chunk.type in _NOT_PROGRESS_DATA):
                logged += 1
            if isinstance(chunk, StartStepChunk):
                step_open, tools_begun = True, False
            elif isinstance(chunk, FinishStepChunk):
                step_open, tools_begun = False, False
            elif isinstance(chunk, ResetStepChunk):
                tools_begun = False
            elif isinstance(chunk, TextStartChunk):
                open_text.add(chunk.id)
            elif isinstance(chunk, TextEndChunk):
                open_text.discard(chunk.id)
            elif isinstance(chunk, DataChunk) and chunk.type == TOOL_RUN_DATA_TYPE:
                started.add(str(chunk.id))
                tools_begun = tools_begun or step_open
            elif isinstance(chunk, _TOOL_RESULTS):
                tools_begun = tools_begun or step_open
        if read.ended or not read.entries:
            break
    state = LogState(assembler, after + 1, step_open, tools_begun, frozenset(started), recovery)
    if step_open and not tools_begun and response_id is not None:
        state.reattached = Reattached(response_id, logged)
    if (
        step_open
        and not tools_begun
        and len(open_text) == 1
        and assembler.error_text is None
        and open_text_tail(assembler.message) is not None
    ):
        # Only text so far, its part still open: no tool call, no reasoning (a thinking
        # block's signature cannot be prefilled), no source or file, no error.
        state.open_text = next(iter(open_text))
    return state


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
        state = await _retried(
            services, lambda: read_log_state(services, chat_id, generation_id), generation_id
        )
    except GenerationNotFound:
        return
    except StoreError:
        # Still failing after the retries: not a reason to close an answer that can go
        # on. The claim's lease lapses; a reader or the sweep takes it over again later.
        logger.warning("generation %s: could not read its log; left for later", generation_id)
        return
    if state.next_offset != claim.next_offset:
        # Cannot happen while the claim holds (nobody else may write); be safe anyway.
        logger.error("generation %s: the log moved under a claim", generation_id)
        return
    if not claim.stop_requested:
        recovered = await _count_takeover(services, chat_id, generation_id, claim, state)
        if recovered is None:
            return
        claim = recovered

    async def close() -> None:
        await close_claimed(
            services.store,
            chat_id,
            generation_id,
            claim,
            state.assembler,
            step_open=state.step_open,
        )

    if claim.stop_requested:
        await close()
        return
    try:
        plan, first_step = await _plan_from(services, chat_id, generation_id, claim)
    except StoreError as exc:
        # The store failed past the retries (not the plan): left for a later takeover.
        logger.warning("generation %s: could not load its history: %s", generation_id, exc)
        return
    except BridgeError as exc:
        logger.warning("generation %s cannot go on here: %s", generation_id, exc.message)
        await close()
        return
    except (ValueError, KeyError, TypeError):
        logger.exception("generation %s: unreadable plan", generation_id)
        await close()
        return
    resumption = Resumption(
        epoch=claim.epoch,
        next_offset=claim.next_offset,
        message=state.assembler.message,
        step_open=state.step_open,
        tools_begun=state.tools_begun,
        started_tools=state.started_tools,
        first_step=first_step,
        open_text=state.open_text,
        reattached=state.reattached if state.assembler.error_text is None else None,
        # The log's assembler knows the open parts (only without an error: after one, it
        # ignores chunks, as the client does).
        assembler=(
            state.assembler
            if state.assembler.error_text is None
            and (state.open_text is not None or state.reattached is not None)
            else None
        ),
    )
    runner.resume(plan, resumption)


async def _count_takeover(
    services: Services, chat_id: str, generation_id: str, claim: Claim, state: LogState
) -> Claim | None:
    """Log this takeover (`data-recovering`), or end the generation when a recovery cap is
    reached. Returns the claim moved past the chunk written, None when the generation was
    ended (or cannot be written to)."""
    settings = services.settings
    now = time.time()
    recovery = state.recovery.next(now)
    stalled = now - (recovery.since or now)
    reason: str | None = None
    if recovery.attempts > settings.bridge_recovery_max_takeovers:
        reason = (
            f"The answer could not be completed: its producer was lost "
            f"{recovery.attempts - 1} times."
        )
    elif stalled > settings.bridge_recovery_max_stall_seconds:
        reason = f"The answer could not be completed: no progress for {stalled:.0f} s."
    if reason is None:
        chunk = recovering_chunk(
            generation_id, "recovering", attempt=recovery.attempts, since=recovery.since
        )
    else:
        chunk = recovering_chunk(generation_id, "failed", attempt=recovery.attempts, reason=reason)
    try:
        await services.store.append(
            chat_id, generation_id, claim.next_offset, [encode_chunk(chunk)], epoch=claim.epoch
        )
    except StoreError:
        logger.warning("generation %s: could not log its takeover", generation_id, exc_info=True)
        return None
    state.assembler.apply(chunk)
    claim = dataclasses.replace(claim, next_offset=claim.next_offset + 1)
    state.next_offset = claim.next_offset
    if reason is None:
        return claim
    logger.warning("generation %s: %s", generation_id, reason)
    services.metrics.generations.labels("recovery_failed").inc()
    await close_claimed(
        services.store,
        chat_id,
        generation_id,
        claim,
        state.assembler,
        step_open=state.step_open,
        error_text=reason,
    )
    return None


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
    stored = await _retried(services, lambda: services.store.load_messages(chat_id), generation_id)
    history = [UIMessage.model_validate(m) for m in stored]
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


async def _retried(services: Services, call: Callable[[], Awaitable[_T]], generation_id: str) -> _T:
    """A takeover's reads (the log, the history), again with backoff while the store fails
    transiently, for up to BRIDGE_WRITER_RETRY_SECONDS: a blip must not close an answer
    that can go on. Refusals (the log gone, fenced, ...) are answers, never retried."""
    deadline = anyio.current_time() + services.settings.bridge_writer_retry_seconds
    delay = 0.05
    while True:
        try:
            return await call()
        except (GenerationNotFound, OffsetConflict, ChatBusy, StaleRevision, Fenced):
            raise
        except StoreError:
            if anyio.current_time() + delay > deadline:
                raise
            logger.warning("takeover of %s: store error; retrying", generation_id, exc_info=True)
        await anyio.sleep(delay)
        delay = min(delay * 2, 1.0)
