"""The chat endpoints: POST /api/chat, resume, stop, history."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from bridge.body import parse_json, read_body, validate
from bridge.conversation import plan_turn
from bridge.errors import ModelNotAllowed, NotFound, RequestError
from bridge.ids import new_generation_id
from bridge.reader import follow, sse_stream, text_stream
from bridge.recovery import close_abandoned
from bridge.runner import GenerationPlan
from bridge.services import Services, services_of
from bridge.store.base import GenerationInfo, GenerationNotFound, Outcome
from protocol.messages import CHAT_ID_PATTERN, ChatRequest, UIMessage
from protocol.sse import UI_MESSAGE_STREAM_HEADERS
from protocol.text_stream import TEXT_STREAM_HEADERS

router = APIRouter()

GENERATION_HEADER = "x-bridge-generation-id"
StreamProtocol = Literal["ui", "text"]


class GenerationGone(RequestError):
    status_code = 410
    code = "generation_gone"


def _check_chat_id(chat_id: str) -> str:
    if not CHAT_ID_PATTERN.fullmatch(chat_id) or chat_id in {".", ".."}:
        raise RequestError("chat id must be 1-200 characters of letters, digits and ._:~@+=-")
    return chat_id


async def _authorize(services: Services, request: Request, chat_id: str) -> str:
    """The caller's user name; a chat owned by someone else looks like no chat at all."""
    user = services.auth.user_for(request)
    chat = await services.store.get_chat(chat_id)
    if chat is not None and chat.owner is not None and chat.owner != user:
        raise NotFound(f"chat {chat_id} not found")
    return user


def _stream_response(
    services: Services, chat_id: str, generation_id: str, after: int, protocol: StreamProtocol
) -> StreamingResponse:
    async def recover(chat: str, generation: str) -> None:
        await close_abandoned(services.store, chat, generation)

    entries = follow(
        services.store,
        chat_id,
        generation_id,
        after,
        heartbeat=services.settings.bridge_heartbeat_seconds,
        recover=recover,
    )
    if protocol == "text":
        return StreamingResponse(
            text_stream(entries),
            headers={**TEXT_STREAM_HEADERS, GENERATION_HEADER: generation_id},
        )
    return StreamingResponse(
        sse_stream(entries),
        headers={**UI_MESSAGE_STREAM_HEADERS, GENERATION_HEADER: generation_id},
    )


@router.post("/api/chat")
async def post_chat(request: Request, protocol: StreamProtocol = "ui") -> Response:
    services = services_of(request)
    settings = services.settings
    body = parse_json(await read_body(request, settings.bridge_max_body_bytes))
    chat_request = validate(ChatRequest, body)
    chat_id = chat_request.id
    user = await _authorize(services, request, chat_id)
    await services.store.claim_chat(chat_id, user)

    model_id = chat_request.model or services.registry.default_model
    if model_id not in services.registry.allowed_models:
        allowed = ", ".join(services.registry.allowed_models)
        raise ModelNotAllowed(f"model {model_id!r} is not allowed; choose one of: {allowed}")
    provider, model = services.registry.resolve(model_id)

    stored: list[UIMessage] = []
    if chat_request.messages is None:
        stored = [
            UIMessage.model_validate(item) for item in await services.store.load_messages(chat_id)
        ]
    turn = plan_turn(chat_request, stored)
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
    )
    generation = await services.runner.start(plan)
    # Wait for the provider to accept the call, so that a refused call (bad key, unknown
    # model) is an HTTP error rather than an error chunk; a slow model only delays the
    # headers up to one heartbeat interval.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.shield(generation.opened), timeout=settings.bridge_heartbeat_seconds
        )
    return _stream_response(services, chat_id, info.generation_id, -1, protocol)


def _parse_cursor(value: str | None) -> int:
    if value is None or value == "":
        return -1
    try:
        offset = int(value)
    except ValueError:
        raise RequestError(f"cursor must be an integer offset, got {value[:40]!r}") from None
    if offset < -1:
        raise RequestError("cursor must be >= -1")
    return offset


@router.get("/api/chat/{chat_id}/stream")
async def resume_chat(
    request: Request,
    chat_id: str,
    generation: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
    protocol: StreamProtocol = "ui",
) -> Response:
    services = services_of(request)
    _check_chat_id(chat_id)
    await _authorize(services, request, chat_id)
    explicit = cursor if cursor is not None else last_event_id
    after = _parse_cursor(explicit)

    generation_id = generation
    chat = None
    if generation_id is None:
        chat = await services.store.get_chat(chat_id)
        if chat is not None:
            generation_id = chat.active_generation_id
            grace = services.settings.bridge_resume_grace_seconds
            if (
                generation_id is None
                and chat.last_ended_at is not None
                and time.time() - chat.last_ended_at <= grace
            ):
                # The generation ended a moment ago: a page that loaded its history just
                # before the end still gets the answer (same messageId, no duplicate).
                generation_id = chat.last_generation_id
    if generation_id is None:
        return Response(status_code=204)
    try:
        if generation is None and generation_id != (chat.active_generation_id if chat else None):
            # The grace replay is for answers that ended on their own; a stopped one
            # stays stopped (the client that pressed stop must not see it come back).
            tail = await services.store.read(chat_id, generation_id, -1, limit=1_000_000)
            if tail.outcome is Outcome.ABORTED:
                return Response(status_code=204)
        else:
            await services.store.read(chat_id, generation_id, after, limit=1, wait=0)
    except GenerationNotFound:
        if generation is None and explicit is None:
            return Response(status_code=204)
        raise GenerationGone(
            f"generation {generation_id} is unknown or past its retention; "
            "load the chat's messages instead"
        ) from None
    return _stream_response(services, chat_id, generation_id, after, protocol)


@router.post("/api/chat/{chat_id}/stop")
async def stop_chat(
    request: Request,
    chat_id: str,
    generation: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    services = services_of(request)
    store = services.store
    _check_chat_id(chat_id)
    await _authorize(services, request, chat_id)
    chat = await store.get_chat(chat_id)
    generation_id = generation or (chat.active_generation_id if chat else None)
    if generation_id is None:
        return JSONResponse({"stopped": False, "generationId": None})
    await store.request_stop(chat_id, generation_id)
    outcome = await _wait_for_end(services, chat_id, generation_id)
    return JSONResponse(
        {
            "stopped": outcome == "aborted",
            "generationId": generation_id,
            "outcome": outcome,
        }
    )


async def _wait_for_end(
    services: Services, chat_id: str, generation_id: str, limit_seconds: float = 10.0
) -> str | None:
    """Follow the log to its end marker; take over a producer that died meanwhile."""
    store = services.store

    async def recover(chat: str, generation: str) -> None:
        await close_abandoned(store, chat, generation, stop_requested=True)

    after = -1
    deadline = asyncio.get_running_loop().time() + limit_seconds
    try:
        while asyncio.get_running_loop().time() < deadline:
            read = await store.read(chat_id, generation_id, after, limit=10_000, wait=0.5)
            if read.entries:
                after = read.entries[-1].offset
            if read.ended:
                return read.outcome.value if read.outcome else None
            if not read.entries and not await store.producer_alive(chat_id, generation_id):
                await recover(chat_id, generation_id)
    except GenerationNotFound:
        return None
    return None


@router.get("/api/chat/{chat_id}/messages")
async def chat_messages(request: Request, chat_id: str) -> JSONResponse:
    services = services_of(request)
    _check_chat_id(chat_id)
    await _authorize(services, request, chat_id)
    chat = await services.store.get_chat(chat_id)
    messages: list[dict[str, Any]] = await services.store.load_messages(chat_id)
    return JSONResponse(
        {
            "chatId": chat_id,
            "messages": messages,
            "activeGenerationId": chat.active_generation_id if chat else None,
        }
    )
