"""SSE, the AI SDK's default transport: POST /api/chat answers with a reader of the new
generation's log; GET /api/chat/{id}/stream resumes one (`Last-Event-ID`, `?cursor=`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from bridge.body import parse_json, read_body, validate
from bridge.chats import (
    HandedOver,
    caller,
    follow_generation,
    generation_to_resume,
    parse_cursor,
    start_generation,
)
from bridge.client_level import check_request_level, client_level_of, for_client
from bridge.services import Services, services_of
from bridge.store.base import LogEntry
from protocol.compat import ClientLevel
from protocol.messages import ChatRequest
from protocol.sse import DONE_EVENT, UI_MESSAGE_STREAM_HEADERS, comment, encode_event
from protocol.text_stream import TEXT_STREAM_HEADERS, text_of_chunk

router = APIRouter()

GENERATION_HEADER = "x-bridge-generation-id"
StreamProtocol = Literal["ui", "text"]


def _stream_response(
    services: Services,
    chat_id: str,
    generation_id: str,
    after: int,
    protocol: StreamProtocol,
    level: ClientLevel,
    skip_through: int = 0,
) -> StreamingResponse:
    followed = follow_generation(services, chat_id, generation_id, after, skip_through=skip_through)
    entries = for_client(followed, level, services.settings)
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
    user = services.auth.user_for(request)
    level = client_level_of(request, services.settings)
    check_request_level(level, services.tools)
    body = parse_json(await read_body(request, services.settings.bridge_max_body_bytes))
    chat_request = validate(ChatRequest, body)
    generation = await start_generation(services, chat_request, user)
    return _stream_response(
        services,
        chat_request.id,
        generation.generation_id,
        -1,
        protocol,
        level,
        skip_through=generation.prelude_end,
    )


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
    await caller(services, request, chat_id)
    level = client_level_of(request, services.settings)
    after = parse_cursor(cursor if cursor is not None else last_event_id)
    generation_id = await generation_to_resume(services, chat_id, generation, after)
    if generation_id is None:
        return Response(status_code=204)
    return _stream_response(services, chat_id, generation_id, after, protocol, level)


async def sse_stream(entries: AsyncIterator[list[LogEntry] | None]) -> AsyncIterator[bytes]:
    """The UI message stream: one SSE event per chunk, `id:` = the chunk's offset."""
    try:
        async for batch in entries:
            if batch is None:
                yield comment("keep-alive")
            else:
                yield b"".join([encode_event(entry.data, entry.offset) for entry in batch])
    except HandedOver:
        return  # no [DONE]: the client resumes on another process
    yield DONE_EVENT


async def text_stream(entries: AsyncIterator[list[LogEntry] | None]) -> AsyncIterator[bytes]:
    """The plain text protocol: only the text of `text-delta` chunks."""
    try:
        async for batch in entries:
            if batch is None:
                continue
            pieces = [text for entry in batch if (text := text_of_chunk(entry.data))]
            if pieces:
                yield b"".join(pieces)
    except HandedOver:
        return
