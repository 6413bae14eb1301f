"""Chat operations, the same for every transport (SSE, WebSocket, long-poll): start a
generation, find the generation to resume, stop one, follow a log, delete a chat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from bridge.access.identity import is_anonymous
from bridge.access.limits import check_history_size, check_stored_history_size
from bridge.chat.continuation import resolve_turn
from bridge.chat.feed import announce_started
from bridge.chat.takeover import recover as take_over
from bridge.errors import (
    ChatBusy,
    ChatConflict,
    Draining,
    GenerationGone,
    GenerationNotFound,
    NotFound,
    RequestError,
)
from bridge.generation.ids import new_generation_id
from bridge.generation.plan import Generation, GenerationPlan
from bridge.log.reader import follow
from bridge.services import Services
from bridge.store.base import GenerationInfo, LogEntry, Outcome
from protocol.messages import CHAT_ID_RULE, ChatRequest, TextUIPart, UIMessage, is_chat_id
from protocol.websocket import MAX_SEQUENCE

logger = logging.getLogger("bridge.chat")

_PAST_ANY_END = 1 << 62
"""An offset beyond every log's end marker."""
_STOP_PROBE_SECONDS = 0.5
"""How soon a stop checks whether the producer it waits for is still alive."""


def check_chat_id(chat_id: str) -> str:
    if not is_chat_id(chat_id):
        raise RequestError(CHAT_ID_RULE)
    return chat_id


def parse_cursor(value: str | None) -> int:
    if value is None or value == "":
        return -1
    try:
        if len(value) > 20:
            raise ValueError(value)
        offset = int(value)
    except ValueError:
        raise RequestError(f"cursor must be an integer offset, got {value[:40]!r}") from None
    if not -1 <= offset <= MAX_SEQUENCE:
        # Past any offset a log can have: a clear 400, never an overflow in the store.
        raise RequestError(f"cursor must be between -1 and {MAX_SEQUENCE}")
    return offset


def may_use(owner: str | None, user: str) -> bool:
    """The owner's chats are the owner's. Anonymous identities (development mode) are not
    proof of anything: among them a chat id is the only key (README, "Security model")."""
    return owner is None or owner == user or (is_anonymous(owner) and is_anonymous(user))


async def authorize(services: Services, user: str, chat_id: str) -> None:
    """A chat owned by someone else looks like no chat at all."""
    chat = await services.store.get_chat(chat_id)
    if chat is not None and not may_use(chat.owner, user):
        raise NotFound(f"chat {chat_id} not found")


async def start_generation(
    services: Services,
    chat_request: ChatRequest,
    user: str,
    *,
    started: Callable[[Generation], None] | None = None,
) -> Generation:
    """Validate the turn, start its generation and wait until the provider accepted it (or
    one heartbeat interval passed), so a refused call surfaces as an error here.

    `started(generation)` is called as soon as the generation began (the admission's slot
    is the generation's from then on, whatever happens to this request). A failure after
    that point (announcing it, recording the chat in the owner's list) is logged: the
    generation runs and is served, never answered as if it had not started."""
    if not services.runner.accepting:
        raise Draining("this server is shutting down; retry the request")
    # Known while it begins, so a stop that arrives now stops what it begins (the chat has
    # no active generation yet to stop).
    starting = _starting(services.runner).setdefault(chat_request.id, {})
    began: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    starting[began] = user
    try:
        async with _start_gate(services.runner):
            generation = await _begin(services, chat_request, user, started)
        began.set_result(generation.generation_id)
    finally:
        if not began.done():
            began.set_result(None)
        starting.pop(began, None)
        if not starting:
            _starting(services.runner).pop(chat_request.id, None)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.shield(generation.opened), timeout=services.settings.bridge_heartbeat_seconds
        )
    return generation


_STARTS_AT_ONCE = 16
"""Starts of a process that run their round trips (claim, chat, history, begin, record) at
once; the others wait their turn in arrival order. Under a burst (200 chats at once) the
starts otherwise advance in lockstep, each round trip one pass of the event loop over all
of them, so every one of them ends (and streams its first token) only when the last one
does; in turns the first ones stream while the later ones start. The provider's answer is
awaited outside the turn: a slow provider never holds it."""

_gates: weakref.WeakKeyDictionary[object, asyncio.Semaphore] = weakref.WeakKeyDictionary()
_Starts = dict[str, dict[asyncio.Future[str | None], str]]
_starts: weakref.WeakKeyDictionary[object, _Starts] = weakref.WeakKeyDictionary()


def _starting(runner: object) -> _Starts:
    """The starts of one runner under way, by chat, with the user each is for: each resolves
    to the generation it began (None when it failed)."""
    starts = _starts.get(runner)
    if starts is None:
        starts = _starts[runner] = {}
    return starts


def _start_gate(runner: object) -> asyncio.Semaphore:
    """The turn of starts of one runner (one app, one event loop)."""
    gate = _gates.get(runner)
    if gate is None:
        gate = _gates[runner] = asyncio.Semaphore(_STARTS_AT_ONCE)
    return gate


async def _begin(
    services: Services,
    chat_request: ChatRequest,
    user: str,
    started: Callable[[Generation], None] | None,
) -> Generation:
    """The start's round trips: claim, the revision, the history, begin, announce."""
    chat_id = chat_request.id
    # Read before the history: the generation begins only if nothing changed the chat
    # since (another generation began or ended: two approval answers racing, an answer
    # ending just after this request read the history).
    chat = await services.store.get_chat(chat_id)
    if chat is not None and chat.owner is not None and not may_use(chat.owner, user):
        raise NotFound(f"chat {chat_id} not found")  # someone else's looks like no chat
    revision = chat.revision if chat is not None else 0
    if chat is not None and chat.active_generation_id is not None:
        # Refused before the history is read: a busy chat's 409 costs no parse of it.
        await _refuse_when_running(services, chat_id, chat.active_generation_id)

    provider, model, model_id = services.registry.choose(chat_request.model)

    tools = services.tools
    declared = chat_request.request_data.get("tools")
    if declared is not None and services.settings.bridge_allow_client_tools:
        tools = tools.with_client_tools(declared)

    # The stored history is the truth; the body only adds to it (conversation.py).
    stored = await _stored_history(services, chat_id)
    turn, decisions = resolve_turn(
        chat_request,
        stored,
        tools,
        allow_client_system=services.settings.bridge_allow_client_system,
    )
    history = [message.dump() for message in turn.history]  # the only dump of the turn
    check_history_size(history, services.settings)
    # Claimed only now that the turn is accepted: a refused request leaves the id free.
    # The claim answers with the owner: a chat taken meanwhile looks like no chat.
    if not may_use(await services.store.claim_chat(chat_id, user), user):
        raise NotFound(f"chat {chat_id} not found")
    info = GenerationInfo(
        generation_id=new_generation_id(),
        chat_id=chat_id,
        message_id=turn.message_id,
        created_at=time.time(),
    )
    plan = GenerationPlan(
        info=info,
        turn=turn,
        provider=provider,
        model=model,
        model_id=model_id,
        request_data=chat_request.request_data,
        tools=tools,
        decisions=decisions,
        user=user,
    )
    generation = await services.runner.start(plan, expected_revision=revision, history=history)
    if started is not None:
        started(generation)
    # The chat's live tails and its owner's chat list learn of it while the provider is
    # called (the producer runs already): two round trips at once, not one after the other.
    for outcome in await asyncio.gather(
        announce_started(services.store, info, turn),
        services.store.record_chat(user, chat_id, chat_title(turn.history), info.created_at),
        return_exceptions=True,
    ):
        if isinstance(outcome, Exception):
            # The generation began (it is the chat's active one and runs): answer with it.
            # A live tail that missed the announcement finds it on its next read; a chat
            # missing from the owner's list is listed by its next turn.
            logger.warning(
                "generation %s started, but a follow-up step failed: %r",
                info.generation_id,
                outcome,
            )
        elif isinstance(outcome, BaseException):
            raise outcome
    return generation


async def generation_to_resume(
    services: Services, chat_id: str, explicit: str | None, after: int
) -> str | None:
    """The generation a resume should read, or None (nothing to resume: 204).

    The active one; else the last one if it ended on its own less than the grace period
    ago (a page that loaded its history just before the end still gets the answer). With
    `explicit` (a resume id) that one, or GenerationGone when its log is gone."""
    store = services.store
    if explicit is not None:
        try:
            await store.read(chat_id, explicit, after, limit=1)
        except GenerationNotFound:
            raise GenerationGone(
                f"generation {explicit} is unknown or past its retention; "
                "load the chat's messages instead"
            ) from None
        return explicit
    chat = await store.get_chat(chat_id)
    if chat is None:
        return None
    if chat.active_generation_id is not None:
        generation_id = chat.active_generation_id
    elif (
        chat.last_generation_id is not None
        and chat.last_ended_at is not None
        and time.time() - chat.last_ended_at <= services.settings.bridge_resume_grace_seconds
    ):
        generation_id = chat.last_generation_id
    else:
        return None
    ended = generation_id != chat.active_generation_id
    try:
        # A read past the end marker returns no entries but the outcome: cheap at any size.
        head = await store.read(chat_id, generation_id, _PAST_ANY_END if ended else -1, limit=1)
    except GenerationNotFound:
        if after >= 0:
            raise GenerationGone(f"generation {generation_id} is past its retention") from None
        return None
    if ended and head.outcome is Outcome.ABORTED:
        # A stopped answer stays stopped: the client that pressed stop must not see it
        # come back.
        return None
    return generation_id


def chat_title(messages: list[UIMessage], length: int = 80) -> str:
    """The chat's first user text, shortened: what a chat list shows."""
    for message in messages:
        if message.role != "user":
            continue
        text = " ".join(p.text for p in message.parts if isinstance(p, TextUIPart)).strip()
        if text:
            text = " ".join(text.split())
            return text if len(text) <= length else text[: length - 1] + "…"
    return "New chat"


async def _refuse_when_running(services: Services, chat_id: str, active: str) -> None:
    """409 (as `runner.start` answers it, a `ChatBusy` its cause) when the chat's active
    generation is alive; one whose producer is gone is replaced by the begin."""
    if await services.store.producer_alive(chat_id, active):
        raise ChatConflict(
            "this chat already has a generation running; resume it with "
            f"GET /api/chat/{chat_id}/stream or stop it first"
        ) from ChatBusy(active)


async def _stored_history(services: Services, chat_id: str) -> list[UIMessage]:
    """The stored history, parsed once for the turn; one past the size limit is refused
    before it is loaded."""
    store = services.store
    check_stored_history_size(await store.history_size(chat_id), services.settings)
    return [UIMessage.model_validate(item) for item in await store.load_messages(chat_id)]


def follow_generation(
    services: Services,
    chat_id: str,
    generation_id: str,
    after: int,
    *,
    skip_through: int = 0,
    heartbeat: float | None = None,
    transport: str = "sse",
) -> AsyncGenerator[list[LogEntry] | None]:
    """The log after `after`, live, with heartbeat ticks (every `heartbeat` seconds,
    BRIDGE_HEARTBEAT_SECONDS by default); takes over a dead producer. `transport` labels
    the live-readers metric.

    `skip_through=p` leaves out offsets 1..p: the prelude that rebuilds a continued message,
    which the client that sent the continuation holds already."""

    async def recover(chat: str, generation: str) -> None:
        await take_over(services, chat, generation)

    entries = follow(
        services.hub,
        chat_id,
        generation_id,
        after,
        heartbeat=heartbeat or services.settings.bridge_heartbeat_seconds,
        recover=recover,
        gauge=services.metrics.readers.labels(transport),
    )
    if skip_through <= 0:
        return entries
    return _without(entries, 1, skip_through)


async def _without(
    entries: AsyncIterator[list[LogEntry] | None], first: int, last: int
) -> AsyncGenerator[list[LogEntry] | None]:
    async for batch in entries:
        if batch is None:
            yield batch
            continue
        kept = [entry for entry in batch if not first <= entry.offset <= last]
        if kept:
            yield kept


async def stop_generation(
    services: Services, chat_id: str, generation_id: str | None, *, user: str | None = None
) -> tuple[str | None, str | None]:
    """Ask the generation (the active one when None) to stop, wherever it runs, and wait for
    its end. Returns (generation id, outcome); (None, None) when nothing was running. With
    `user` and no active generation, a start of that user's in this process that is still
    beginning is waited for and stopped."""
    store = services.store
    if generation_id is None:
        # Taken before the chat is read: a start that began after the read is in it.
        starts = _starting(services.runner).get(chat_id, {})
        starting = [start for start, by in starts.items() if user is not None and by == user]
        chat = await store.get_chat(chat_id)
        generation_id = chat.active_generation_id if chat else None
        if generation_id is None and starting:
            generation_id = await _begun(services, starting)
    if generation_id is None:
        return None, None
    await store.request_stop(chat_id, generation_id)
    return generation_id, await _wait_for_end(services, chat_id, generation_id)


async def delete_chat(services: Services, chat_id: str, *, user: str) -> None:
    """Delete the caller's chat: its running generation is stopped first (the stop path,
    wherever it runs, waiting for its end), then the store removes the chat and everything
    kept for it (`SessionStore.delete_chat`). Afterwards the id is an unused one. A producer
    that did not end within the stop's wait finds its log gone on its next write and ends."""
    await stop_generation(services, chat_id, None, user=user)
    await services.store.delete_chat(chat_id)
    logger.info("chat %s deleted", chat_id)


async def _begun(services: Services, starting: list[asyncio.Future[str | None]]) -> str | None:
    """The generation a start of this process under way begins (a stop that arrived while
    the answer was still starting stops it), waiting at most a heartbeat interval."""
    done, _ = await asyncio.wait(starting, timeout=services.settings.bridge_heartbeat_seconds)
    begun = [f.result() for f in done if not f.cancelled() and f.result() is not None]
    return begun[-1] if begun else None


async def _wait_for_end(
    services: Services, chat_id: str, generation_id: str, limit_seconds: float = 10.0
) -> str | None:
    """Follow the log to its end marker (the same loop as every reader); a producer that
    died meanwhile is taken over as stopped."""

    async def recover(chat: str, generation: str) -> None:
        # The stop is in the store: whoever claims the generation closes it with `abort`.
        await take_over(services, chat, generation)

    try:
        async with asyncio.timeout(limit_seconds):
            async for _ in follow(
                services.hub,
                chat_id,
                generation_id,
                -1,
                heartbeat=_STOP_PROBE_SECONDS,
                recover=recover,
            ):
                pass
        # A read past the end marker: no entries, only the outcome.
        read = await services.store.read(chat_id, generation_id, _PAST_ANY_END, limit=1)
    except (GenerationNotFound, TimeoutError):
        return None
    return read.outcome.value if read.outcome else None
