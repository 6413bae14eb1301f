"""`GET /api/chat/{id}/live`: the chat-level live tail over SSE (see bridge/chat/tail.py).

Event ids are `<generationId>:<offset>`; a reconnect with `Last-Event-ID` (or `?cursor=`)
continues right after that event; `?current=false` leaves out the generation running at the
start (for a page that resumes it by itself). The stream never ends on its own (no `[DONE]`): it
follows the chat's turns until the client leaves; SSE comments keep it warm."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from bridge.api.gate import LIVE_TAIL, Admitted
from bridge.chat.tail import HEARTBEAT, READY, TailEvent, parse_position, tail_chat
from bridge.errors import RequestError
from bridge.services import Services, services_of
from protocol.sse import UI_MESSAGE_STREAM_HEADERS, comment, encode_event
from protocol.websocket import MAX_SEQUENCE

router = APIRouter()


def tail_position(value: str | None) -> tuple[str, int] | None:
    """A tail position, its offset within the offsets a log can have (a larger one would
    overflow the store's ids)."""
    position = parse_position(value)
    if position is not None and position[1] > MAX_SEQUENCE:
        raise RequestError(f"a live-tail offset is at most {MAX_SEQUENCE}")
    return position


async def unused_chat_tail(services: Services) -> AsyncIterator[TailEvent]:
    """The tail of a chat id nobody uses: ready, then only heartbeats. Someone else's chat
    gets the same."""
    yield READY
    while True:
        await anyio.sleep(services.settings.bridge_heartbeat_seconds)
        yield HEARTBEAT


@router.get("/api/chat/{chat_id}/live")
async def live_tail(
    request: Request,
    chat_id: str,
    admitted: Annotated[Admitted, Depends(LIVE_TAIL)],
    cursor: Annotated[str | None, Query(max_length=240)] = None,
    last_event_id: Annotated[str | None, Header(max_length=240)] = None,
    current: bool = True,
) -> StreamingResponse:
    services = services_of(request)
    resume = tail_position(cursor if cursor is not None else last_event_id)
    events = (
        tail_chat(services, chat_id, resume, current=current)
        if admitted.visible
        else unused_chat_tail(services)
    )
    return StreamingResponse(_sse(events), headers=UI_MESSAGE_STREAM_HEADERS)


async def _sse(events: AsyncIterator[TailEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        if event is READY:
            yield comment("live")
        elif event.data is None:
            yield comment("keep-alive")
        else:
            yield encode_event(event.data, event.position)
