"""Long-polling, for networks where streamed responses arrive only once they end
(proxies that buffer whole responses): every answer is one short JSON document.

    GET  /api/chat/{id}/poll?cursor=<offset>&wait=<seconds>[&generation=<id>]
    GET  /api/chat/{id}/poll?steering=<message id>&wait=<seconds>  (a queued message's turn)
    POST /api/chat/poll?wait=<seconds>   (the POST /api/chat body: start, then a first page)

A page (protocol/poll.py) holds the chunks after `cursor` (the offset of the last chunk the
client holds, -1 for none; the same numbers as the SSE `id:`), the next `cursor`, `done`
and, once done, the `outcome`. It is sent at once when such chunks exist, otherwise after
up to `wait` seconds (capped by BRIDGE_MAX_POLL_WAIT_SECONDS), maybe empty. With nothing
to read (no active generation, none ended within the resume grace period) the answer is
200 `{"generationId": null, "chunks": [], "cursor": <cursor>, "done": true}`: one shape
for every answer keeps clients and caches simple.

The POST applies the busy policy as POST /api/chat does (bridge/chat/busy.py, the same
`x-bridge-busy` response headers). A message queued as the next turn waits up to `wait` for
that turn: once it started, the page is the turn's first page; before, the page is
`{"generationId": null, "chunks": [{"offset": -1, "chunk": data-busy queued}], "done":
false}` and the client polls `?steering=<its message id>` until the turn's page comes (or a
`data-busy` dropped page with `done: true`).
"""

from __future__ import annotations

import contextlib
import math
from contextlib import aclosing
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request, Response

from bridge.access.body import CHAT_REQUEST_BODY, validate
from bridge.access.client_level import (
    RequestLevel,
    check_request_level,
    client_level_of,
    page_for_client,
)
from bridge.api.gate import POLL, POST_POLL, Admitted, unused_chat_resume
from bridge.api.schemas import STREAM_ERRORS, error_answers
from bridge.chat.busy import Queued, busy_policy, queued_of, start_turn, turn_started
from bridge.chat.operations import follow_generation, generation_to_resume, parse_cursor
from bridge.chat.steer import SteeringNotFound
from bridge.errors import GenerationGone, GenerationNotFound, RequestError
from bridge.log.hub import HandedOver
from bridge.services import Services, services_of
from bridge.store.base import LogRead
from protocol.messages import ChatRequest
from protocol.poll import encode_poll_page
from protocol.websocket import MAX_SEQUENCE

router = APIRouter()

PAGE_LIMIT = 1000
"""Chunks per page at most; a longer backlog takes several polls (`done` stays false)."""
MAX_GENERATION_ID_LENGTH = 200
# Pages are answers to one request, never reusable: no cache on the way may keep them.
POLL_HEADERS = {"cache-control": "no-store"}


def parse_wait(value: str | None, cap: float) -> float:
    if value is None or value == "":
        return 0.0
    try:
        if len(value) > 40:
            raise ValueError(value)
        wait = float(value)
    except ValueError:
        raise RequestError(f"wait must be a number of seconds, got {value[:40]!r}") from None
    if not math.isfinite(wait) or wait < 0:
        raise RequestError("wait must be a finite number of seconds >= 0")
    return min(wait, cap)


def _cursor(value: str | None) -> int:
    if value is not None and len(value) > 20:
        raise RequestError("cursor must be an integer offset")
    after = parse_cursor(value)
    if after > MAX_SEQUENCE:
        raise RequestError(f"cursor must be at most {MAX_SEQUENCE}")
    return after


async def read_page(
    services: Services, chat_id: str, generation_id: str, after: int, wait: float
) -> LogRead:
    """The entries after `after`, waiting up to `wait` for the first (through the same
    follow-and-recover loop as the streaming transports, so a dead producer's log is taken
    over the same way and a poller sees its end)."""
    store = services.store
    try:
        read = await store.read(chat_id, generation_id, after, limit=PAGE_LIMIT)
        if read.entries or read.ended or wait <= 0:
            return read
        entries = follow_generation(
            services, chat_id, generation_id, after, heartbeat=wait, transport="poll"
        )
        with contextlib.suppress(HandedOver):  # draining: the next poll reaches another process
            async with aclosing(entries):
                async for _ in entries:
                    break  # something arrived, or `wait` passed: the page is read below
        read = await store.read(chat_id, generation_id, after, limit=PAGE_LIMIT)
    except GenerationNotFound:
        raise GenerationGone(f"generation {generation_id} is past its retention") from None
    return read


def _page(
    generation_id: str | None,
    read: LogRead | None,
    after: int,
    level: RequestLevel,
    prelude_end: int = 0,
) -> Response:
    """`prelude_end=p`: offsets 1..p are left out and the cursor moves past them (the
    client that sent a continuation holds the message they rebuild)."""
    if generation_id is None or read is None:
        body = encode_poll_page(None, (), after, done=True)
    else:
        cursor = max(read.entries[-1].offset if read.entries else after, prelude_end)
        body = encode_poll_page(
            generation_id,
            (
                (entry.offset, entry.data)
                for entry in page_for_client(read.entries, level)
                if not 0 < entry.offset <= prelude_end
            ),
            cursor,
            done=read.ended,
            outcome=read.outcome.value if read.outcome is not None else None,
        )
    return Response(body, media_type="application/json", headers=POLL_HEADERS)


@router.get("/api/chat/{chat_id}/poll")
async def poll_chat(
    request: Request,
    chat_id: str,
    admitted: Annotated[Admitted, Depends(POLL)],
    cursor: str | None = None,
    wait: str | None = None,
    generation: str | None = None,
    steering: str | None = None,
) -> Response:
    # Parameters are plain strings checked here, so every bad value is the same 400.
    services = services_of(request)
    after = _cursor(cursor)
    wait_seconds = parse_wait(wait, services.settings.bridge_max_poll_wait_seconds)
    if generation is not None and not 0 < len(generation) <= MAX_GENERATION_ID_LENGTH:
        raise RequestError("generation must be a generation id")
    level = client_level_of(request, services.settings)
    if steering is not None:
        if not 0 < len(steering) <= MAX_GENERATION_ID_LENGTH or generation is not None:
            raise RequestError("steering must be a message id (and comes without generation)")
        if not admitted.visible:  # someone else's chat answers as an unknown message
            raise SteeringNotFound(f"no queued message {steering[:80]!r} in chat {chat_id}")
        queued = await queued_of(services, chat_id, steering)
        return await _queued_page(services, chat_id, queued, wait_seconds, level)
    generation_id = (
        await generation_to_resume(services, chat_id, generation, after)
        if admitted.visible
        else unused_chat_resume(generation)  # someone else's chat answers as an unused id
    )
    if generation_id is None:
        return _page(None, None, after, level)
    read = await read_page(services, chat_id, generation_id, after, wait_seconds)
    return _page(generation_id, read, after, level)


@router.post(
    "/api/chat/poll", openapi_extra=CHAT_REQUEST_BODY, responses=error_answers(*STREAM_ERRORS)
)
async def post_chat_poll(
    request: Request, admitted: Annotated[Admitted, Depends(POST_POLL)], wait: str | None = None
) -> Response:
    """Start a turn like POST /api/chat, but answer with its first page instead of a
    stream: a buffering proxy would hold a stream back until the whole answer is done."""
    services = services_of(request)
    wait_seconds = parse_wait(wait, services.settings.bridge_max_poll_wait_seconds)
    level = client_level_of(request, services.settings)
    check_request_level(level, services.tools)
    chat_request = validate(ChatRequest, admitted.body)
    # A chat whose answer runs: the busy policy, as on POST /api/chat.
    policy = busy_policy(request.headers, chat_request, services.settings.bridge_busy_policy)
    started = await start_turn(services, chat_request, admitted.user, policy)
    if started.queued is not None:
        response = await _queued_page(
            services, chat_request.id, started.queued, wait_seconds, level
        )
    else:
        generation_id = started.generation_id
        read = await read_page(services, chat_request.id, generation_id, -1, wait_seconds)
        response = _page(generation_id, read, -1, level, prelude_end=started.skip_through)
    response.headers.update(started.headers)
    return response


async def _queued_page(
    services: Services, chat_id: str, queued: Queued, wait: float, level: RequestLevel
) -> Response:
    """A queued message's page: its turn's first page once the turn started (waiting up to
    `wait`), else the `data-busy` chunk (queued, or dropped with `done`)."""
    started_at = anyio.current_time()
    found = await turn_started(services, chat_id, queued, wait)
    if found is not None and found[0] is not None:
        turn = found[0]
        left = max(wait - (anyio.current_time() - started_at), 0.0)
        read = await read_page(services, chat_id, turn, -1, left)
        return _page(turn, read, -1, level)
    dropped = found is not None
    chunk = queued.chunk("dropped", found[1]) if found is not None else queued.chunk()
    body = encode_poll_page(None, [(-1, chunk)], -1, done=dropped)
    return Response(body, media_type="application/json", headers=POLL_HEADERS)
