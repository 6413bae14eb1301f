"""`GET /api/chat/{id}/live`: the chat-level live tail over SSE (see bridge/chat/tail.py).

Event ids are `<generationId>:<offset>`; a reconnect with `Last-Event-ID` (or `?cursor=`)
continues right after that event; `?current=false` leaves out the generation running at the
start (for a page that resumes it by itself). The stream never ends on its own (no `[DONE]`): it
follows the chat's turns until the client leaves; SSE comments keep it warm."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from bridge.api.gate import caller
from bridge.chat.tail import READY, TailEvent, parse_position, tail_chat
from bridge.services import services_of
from protocol.sse import UI_MESSAGE_STREAM_HEADERS, comment, encode_event

router = APIRouter()


@router.get("/api/chat/{chat_id}/live")
async def live_tail(
    request: Request,
    chat_id: str,
    cursor: Annotated[str | None, Query(max_length=240)] = None,
    last_event_id: Annotated[str | None, Header(max_length=240)] = None,
    current: bool = True,
) -> StreamingResponse:
    services = services_of(request)
    await caller(services, request, chat_id)
    resume = parse_position(cursor if cursor is not None else last_event_id)
    return StreamingResponse(
        _sse(tail_chat(services, chat_id, resume, current=current)),
        headers=UI_MESSAGE_STREAM_HEADERS,
    )


async def _sse(events: AsyncIterator[TailEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        if event is READY:
            yield comment("live")
        elif event.data is None:
            yield comment("keep-alive")
        else:
            yield encode_event(event.data, event.position)
