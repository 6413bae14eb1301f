"""SSE, the AI SDK's default transport: POST /api/chat answers with a reader of the new
generation's log; GET /api/chat/{id}/stream resumes one (`Last-Event-ID`, `?cursor=`)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from bridge.access.body import CHAT_REQUEST_BODY, validate
from bridge.access.client_level import (
    RequestLevel,
    check_request_level,
    client_level_of,
    for_client,
)
from bridge.api.gate import POST_CHAT, RESUME, Admitted, unused_chat_resume
from bridge.api.schemas import STREAM_ERRORS, error_answers
from bridge.chat.busy import busy_policy, start_turn
from bridge.chat.operations import follow_generation, generation_to_resume, parse_cursor
from bridge.errors import GenerationNotFound, StoreError
from bridge.log.hub import HandedOver
from bridge.services import Services, services_of
from bridge.store.base import LogEntry
from protocol.compact import compact
from protocol.messages import ChatRequest
from protocol.sse import DONE_EVENT, UI_MESSAGE_STREAM_HEADERS, comment, encode_event
from protocol.text_stream import TEXT_STREAM_HEADERS, text_of_chunk

logger = logging.getLogger("bridge.sse")

router = APIRouter()

GENERATION_HEADER = "x-bridge-generation-id"
StreamProtocol = Literal["ui", "text"]


def _stream_response(
    services: Services,
    chat_id: str,
    generation_id: str,
    after: int,
    protocol: StreamProtocol,
    level: RequestLevel,
    skip_through: int = 0,
    resumed_at: float | None = None,
    compact_replay: bool = False,
    entries: AsyncIterator[list[LogEntry] | None] | None = None,
) -> StreamingResponse:
    followed = entries or follow_generation(
        services, chat_id, generation_id, after, skip_through=skip_through
    )
    if protocol == "ui" and compact_replay:
        followed = compacted(followed)
    if resumed_at is not None:
        followed = _timed_resume(services, followed, resumed_at)
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


@router.post("/api/chat", openapi_extra=CHAT_REQUEST_BODY, responses=error_answers(*STREAM_ERRORS))
async def post_chat(
    request: Request,
    admitted: Annotated[Admitted, Depends(POST_CHAT)],
    protocol: StreamProtocol = "ui",
) -> Response:
    services = services_of(request)
    level = client_level_of(request, services.settings)
    check_request_level(level, services.tools)
    chat_request = validate(ChatRequest, admitted.body)
    # A chat whose answer runs: the busy policy (bridge/chat/busy.py) says what happens.
    policy = busy_policy(request.headers, chat_request, services.settings.bridge_busy_policy)
    started = await start_turn(services, chat_request, admitted.user, policy)
    response = _stream_response(
        services,
        chat_request.id,
        started.generation_id,
        -1,
        protocol,
        level,
        skip_through=started.skip_through,
        entries=started.entries,
    )
    response.headers.update(started.headers)
    return response


@router.get("/api/chat/{chat_id}/stream")
async def resume_chat(
    request: Request,
    chat_id: str,
    admitted: Annotated[Admitted, Depends(RESUME)],
    generation: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
    protocol: StreamProtocol = "ui",
) -> Response:
    resumed_at = time.monotonic()
    services = services_of(request)
    level = client_level_of(request, services.settings)
    after = parse_cursor(cursor if cursor is not None else last_event_id)
    generation_id = (
        await generation_to_resume(services, chat_id, generation, after)
        if admitted.visible
        else unused_chat_resume(generation)  # someone else's chat answers as an unused id
    )
    if generation_id is None:
        return Response(status_code=204)
    services.metrics.resumes.labels("sse").inc()
    return _stream_response(
        services,
        chat_id,
        generation_id,
        after,
        protocol,
        level,
        resumed_at=resumed_at,
        # A full replay (a reload, a new device: no cursor at all) sends the message so far
        # in few chunks; a cursor, even -1, asks for the log's own chunks.
        compact_replay=cursor is None and last_event_id is None,
    )


COMPACT_FROM = 8
"""Batches of at least this many entries are compacted (the replay part); the live part
that follows, a chunk or two per batch, is sent as it is, unparsed."""


async def compacted(
    entries: AsyncIterator[list[LogEntry] | None],
) -> AsyncGenerator[list[LogEntry] | None]:
    """Replays in as few chunks as the protocol allows (protocol/compact.py): each run of
    consecutive deltas of one block becomes one delta carrying the run's last offset, so
    a `Last-Event-ID` from anywhere in it resumes exactly."""
    async for batch in entries:
        if batch is None or len(batch) < COMPACT_FROM:
            yield batch
            continue
        folded = compact((entry.offset, entry.data) for entry in batch)
        yield [LogEntry(offset, data) for offset, data in folded]


async def _timed_resume(
    services: Services, entries: AsyncIterator[list[LogEntry] | None], started: float
) -> AsyncGenerator[list[LogEntry] | None]:
    first = True
    async for batch in entries:
        if first and batch:
            services.metrics.resume_first_byte.observe(time.monotonic() - started)
            first = False
        yield batch


LOG_LOST_CHUNK = orjson.dumps(
    {
        "type": "error",
        "errorText": "The answer's log is gone (the session store lost it); it cannot go on.",
    }
)


async def sse_stream(entries: AsyncIterator[list[LogEntry] | None]) -> AsyncIterator[bytes]:
    """The UI message stream: one SSE event per chunk, `id:` = the chunk's offset.

    Its ends: `[DONE]` after the end marker; no `[DONE]` when the process hands the answer
    over or the store fails for a while (the client resumes, elsewhere or later); an
    `error` chunk, then `[DONE]`, when the log itself is gone (the store lost its data):
    there is nothing left to resume, and a cut response would only be retried."""
    last = -1
    try:
        async for batch in entries:
            if batch is None:
                yield comment("keep-alive")
            elif batch:
                last = batch[-1].offset
                yield b"".join([encode_event(entry.data, entry.offset) for entry in batch])
    except HandedOver:
        return  # no [DONE]: the client resumes on another process
    except GenerationNotFound:
        # The next offset: the log (and every later offset of it) is gone for good.
        yield encode_event(LOG_LOST_CHUNK, last + 1)
    except StoreError:
        logger.warning("a reader's store failed; its response ends for the client to resume")
        return
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
    except (HandedOver, StoreError):
        return  # the text protocol has no error event: the response just ends
