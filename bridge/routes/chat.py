"""The chat endpoints: POST /api/chat, resume, stop, history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from bridge.body import parse_json, read_body, validate
from bridge.errors import RequestError
from bridge.reader import sse_stream, text_stream
from bridge.services import Services, services_of
from bridge.sessions import (
    authorize,
    check_chat_id,
    follow_generation,
    generation_to_resume,
    start_generation,
    stop_generation,
)
from protocol.messages import ChatRequest
from protocol.sse import UI_MESSAGE_STREAM_HEADERS
from protocol.text_stream import TEXT_STREAM_HEADERS

router = APIRouter()

GENERATION_HEADER = "x-bridge-generation-id"
StreamProtocol = Literal["ui", "text"]


def _stream_response(
    services: Services,
    chat_id: str,
    generation_id: str,
    after: int,
    protocol: StreamProtocol,
    skip_through: int = 0,
) -> StreamingResponse:
    entries = follow_generation(services, chat_id, generation_id, after, skip_through=skip_through)
    if protocol == "text":
        return StreamingResponse(
            text_stream(entries),
            headers={**TEXT_STREAM_HEADERS, GENERATION_HEADER: generation_id},
        )
    return StreamingResponse(
        sse_stream(entries),
        headers={**UI_MESSAGE_STREAM_HEADERS, GENERATION_HEADER: generation_id},
    )


async def _caller(services: Services, request: Request, chat_id: str) -> str:
    check_chat_id(chat_id)
    user = services.auth.user_for(request)
    await authorize(services, user, chat_id)
    return user


@router.post("/api/chat")
async def post_chat(request: Request, protocol: StreamProtocol = "ui") -> Response:
    services = services_of(request)
    user = services.auth.user_for(request)
    body = parse_json(await read_body(request, services.settings.bridge_max_body_bytes))
    chat_request = validate(ChatRequest, body)
    generation = await start_generation(services, chat_request, user)
    return _stream_response(
        services,
        chat_request.id,
        generation.generation_id,
        -1,
        protocol,
        skip_through=generation.prelude_end,
    )


def parse_cursor(value: str | None) -> int:
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
    await _caller(services, request, chat_id)
    after = parse_cursor(cursor if cursor is not None else last_event_id)
    generation_id = await generation_to_resume(services, chat_id, generation, after)
    if generation_id is None:
        return Response(status_code=204)
    return _stream_response(services, chat_id, generation_id, after, protocol)


@router.post("/api/chat/{chat_id}/stop")
async def stop_chat(
    request: Request,
    chat_id: str,
    generation: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    services = services_of(request)
    await _caller(services, request, chat_id)
    generation_id, outcome = await stop_generation(services, chat_id, generation)
    if generation_id is None:
        return JSONResponse({"stopped": False, "generationId": None})
    return JSONResponse(
        {"stopped": outcome == "aborted", "generationId": generation_id, "outcome": outcome}
    )


@router.get("/api/chat/{chat_id}/messages")
async def chat_messages(request: Request, chat_id: str) -> JSONResponse:
    services = services_of(request)
    await _caller(services, request, chat_id)
    chat = await services.store.get_chat(chat_id)
    messages: list[dict[str, Any]] = await services.store.load_messages(chat_id)
    return JSONResponse(
        {
            "chatId": chat_id,
            "messages": messages,
            "activeGenerationId": chat.active_generation_id if chat else None,
        }
    )


@router.get("/api/chats")
async def list_chats(
    request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> JSONResponse:
    """The caller's chats, most recent first."""
    services = services_of(request)
    user = services.auth.user_for(request)
    chats = await services.store.list_chats(user, limit)
    return JSONResponse(
        {
            "chats": [
                {"id": chat.chat_id, "title": chat.title, "updatedAt": chat.updated_at}
                for chat in chats
            ]
        }
    )
