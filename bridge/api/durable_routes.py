"""The Durable Streams read API (bridge/chat/durable.py has the pages):

    GET|HEAD /api/ds/chat/{chat_id}/generation/{generation_id}   one generation's log
    GET|HEAD /api/ds/chat/{chat_id}/live                         the chat's live tail

`?offset=` (`-1`, `now` or a `Stream-Next-Offset` this server sent), `?live=long-poll` or
`?live=sse` (`?cursor=` echoed), catch-up otherwise. Content type `application/json`: a page
is a JSON array of UI message chunks. Reads only: the bridge's producers write the logs, so
PUT/POST/DELETE answer 405. The same gate as every read (identity, request rate, the chat's
owner).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from bridge.access.limits import POLL_COST
from bridge.api.gate import Admitted, Entry
from bridge.chat.durable import Page, chat_page, generation_page
from bridge.errors import RequestError
from bridge.services import Services, services_of

router = APIRouter()

DS_GENERATION = Entry(
    "GET /api/ds/chat/{chat_id}/generation/{generation_id}",
    chat="path",
    cost=POLL_COST,
    reader=True,
)
DS_LIVE = Entry("GET /api/ds/chat/{chat_id}/live", chat="path", cost=POLL_COST, reader=True)
DS_HEAD_GENERATION = Entry(
    "HEAD /api/ds/chat/{chat_id}/generation/{generation_id}", chat="path", cost=POLL_COST
)
DS_HEAD_LIVE = Entry("HEAD /api/ds/chat/{chat_id}/live", chat="path", cost=POLL_COST)
DS_WRITE = Entry("PUT|POST|DELETE /api/ds/...", identity=False)

LiveMode = Literal["long-poll", "sse"]
SSE_SECONDS = 60.0
"""An SSE response ends after about this long (the protocol's advice, for CDN collapsing);
the client reconnects from the last `streamNextOffset`."""
_CURSOR_EPOCH = 1728432000  # 2024-10-09T00:00:00Z, the protocol's default cursor epoch
_CURSOR_INTERVAL = 20
_BASE_HEADERS = {
    "cache-control": "no-store",  # a user's chat: no shared cache may keep it
    "x-content-type-options": "nosniff",
    "cross-origin-resource-policy": "cross-origin",
}
_MAX_GENERATION_ID = 200
RESPONSE_HEADERS = (
    "stream-next-offset",
    "stream-cursor",
    "stream-up-to-date",
    "stream-closed",
    "etag",
)
"""Exposed to cross-origin pages (CORS)."""

PageOf = Callable[[str | None, float], Awaitable[Page]]


def next_cursor(client: str | None) -> str:
    """The protocol's time-interval cursor, strictly past the client's when it is ahead."""
    interval = int((time.time() - _CURSOR_EPOCH) // _CURSOR_INTERVAL)
    if client is not None and client.isdigit() and len(client) < 20 and int(client) >= interval:
        return str(int(client) + random.randint(1, 3600 // _CURSOR_INTERVAL))
    return str(interval)


def _headers(page: Page, *, cursor: str | None, etag: str | None = None) -> dict[str, str]:
    headers = {**_BASE_HEADERS, "stream-next-offset": page.next_offset}
    if page.up_to_date:
        headers["stream-up-to-date"] = "true"
    if page.closed:
        headers["stream-closed"] = "true"
    if cursor is not None:
        headers["stream-cursor"] = cursor
    if etag is not None:
        headers["etag"] = etag
    return headers


async def _answer(
    request: Request,
    services: Services,
    stream_id: str,
    page_of: PageOf,
    offset: str | None,
    live: LiveMode | None,
    cursor: str | None,
) -> Response:
    if live == "sse":
        # The first page is read before the response starts: a bad offset or a log past
        # retention is a 4xx answer, not a stream cut after its headers.
        first = await page_of(offset, 0.0)
        return StreamingResponse(
            _sse(page_of, first, services.settings.bridge_max_poll_wait_seconds, cursor),
            media_type="text/event-stream",
            headers=_BASE_HEADERS,
        )
    if live == "long-poll" and offset is None:
        raise RequestError("a long-poll read needs an offset")
    wait = services.settings.bridge_max_poll_wait_seconds if live == "long-poll" else 0.0
    page = await page_of(offset, wait)
    live_cursor = next_cursor(cursor) if live is not None else None
    if live == "long-poll" and not page.items and not page.closed:
        return Response(status_code=204, headers=_headers(page, cursor=live_cursor))
    etag = None
    if offset != "now":
        etag = f'"{stream_id}:{offset or "-1"}:{page.next_offset}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=_headers(page, cursor=live_cursor, etag=etag))
    return Response(
        page.body(),
        media_type="application/json",
        headers=_headers(page, cursor=live_cursor, etag=etag),
    )


async def _sse(
    page_of: PageOf, first: Page, wait: float, cursor: str | None
) -> AsyncIterator[bytes]:
    """`event: data` (a JSON array) then `event: control` for every page, from `first` on,
    until the stream closes or SSE_SECONDS have passed."""
    ends_at = time.monotonic() + SSE_SECONDS
    page: Page | None = first
    offset = first.next_offset
    while True:
        if page is None:
            remaining = ends_at - time.monotonic()
            try:
                page = await page_of(offset, max(0.0, min(wait, remaining)))
            except RequestError:
                # Past retention while followed (410 on a fresh read): the stream ends
                # cleanly; the client's next read gets the answer with its status.
                return
        if page.items:
            yield b"event: data\ndata: " + page.body() + b"\n\n"
        cursor = next_cursor(cursor)
        control: dict[str, object] = {"streamNextOffset": page.next_offset, "streamCursor": cursor}
        if page.up_to_date:
            control["upToDate"] = True
        if page.closed:
            control["streamClosed"] = True
        yield b"event: control\ndata: " + orjson.dumps(control) + b"\n\n"
        offset = page.next_offset
        if page.closed or time.monotonic() >= ends_at:
            return
        page = None


def _reader(request: Request, admitted: Admitted) -> tuple[Services, str]:
    """The services and the chat id to read: a chat that is not the caller's reads as an
    unused id (`Admitted.read_as`), so every answer is an unused id's."""
    return services_of(request), admitted.read_as


Offset = Annotated[str | None, Query(max_length=40)]
Cursor = Annotated[str | None, Query(max_length=40)]


@router.get("/api/ds/chat/{chat_id}/generation/{generation_id}")
async def read_generation(
    request: Request,
    chat_id: str,
    generation_id: str,
    admitted: Annotated[Admitted, Depends(DS_GENERATION)],
    offset: Offset = None,
    live: LiveMode | None = None,
    cursor: Cursor = None,
) -> Response:
    services, read_as = _reader(request, admitted)
    _check_generation_id(generation_id)

    async def page_of(at: str | None, wait: float) -> Page:
        return await generation_page(services, read_as, generation_id, at, wait)

    return await _answer(request, services, generation_id, page_of, offset, live, cursor)


@router.head("/api/ds/chat/{chat_id}/generation/{generation_id}")
async def head_generation(
    request: Request,
    chat_id: str,
    generation_id: str,
    admitted: Annotated[Admitted, Depends(DS_HEAD_GENERATION)],
) -> Response:
    services, read_as = _reader(request, admitted)
    _check_generation_id(generation_id)
    page = await generation_page(services, read_as, generation_id, "now", 0.0)
    return Response(
        status_code=200, media_type="application/json", headers=_headers(page, cursor=None)
    )


@router.get("/api/ds/chat/{chat_id}/live")
async def read_chat(
    request: Request,
    chat_id: str,
    admitted: Annotated[Admitted, Depends(DS_LIVE)],
    offset: Offset = None,
    live: LiveMode | None = None,
    cursor: Cursor = None,
) -> Response:
    services, read_as = _reader(request, admitted)

    async def page_of(at: str | None, wait: float) -> Page:
        return await chat_page(services, read_as, at, wait)

    return await _answer(request, services, f"chat-{chat_id}", page_of, offset, live, cursor)


@router.head("/api/ds/chat/{chat_id}/live")
async def head_chat(
    request: Request, chat_id: str, admitted: Annotated[Admitted, Depends(DS_HEAD_LIVE)]
) -> Response:
    services, read_as = _reader(request, admitted)
    page = await chat_page(services, read_as, "now", 0.0)
    return Response(
        status_code=200, media_type="application/json", headers=_headers(page, cursor=None)
    )


# Not operations of the API (one function for several methods would also give the schema
# duplicate operation ids): left out of /openapi.json.
@router.api_route(
    "/api/ds/chat/{chat_id}/generation/{generation_id}",
    methods=["PUT", "POST", "DELETE"],
    include_in_schema=False,
)
@router.api_route(
    "/api/ds/chat/{chat_id}/live", methods=["PUT", "POST", "DELETE"], include_in_schema=False
)
async def no_writes(admitted: Annotated[Admitted, Depends(DS_WRITE)]) -> Response:
    """Only the bridge's producers write its logs."""
    body = {"error": {"code": "method_not_allowed", "message": "these streams are read-only"}}
    return Response(
        orjson.dumps(body),
        status_code=405,
        media_type="application/json",
        headers={"allow": "GET, HEAD"},
    )


def _check_generation_id(generation_id: str) -> None:
    if not generation_id or len(generation_id) > _MAX_GENERATION_ID:
        raise RequestError("the generation id is empty or too long")
