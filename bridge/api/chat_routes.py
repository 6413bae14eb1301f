"""The chat's JSON endpoints: stop a generation, read the history, list the caller's chats,
delete a chat."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from bridge.api.gate import CHAT_LIST, DELETE_CHAT, MESSAGES, STOP, Admitted
from bridge.api.schemas import ERRORS, ChatList, StopResult, StoredChat, answers, error_answers
from bridge.chat.operations import delete_chat, stop_generation
from bridge.errors import GenerationNotFound
from bridge.services import services_of

router = APIRouter()

NOTHING_STOPPED = {"stopped": False, "generationId": None}


@router.post("/api/chat/{chat_id}/stop", responses=answers(StopResult, *ERRORS))
async def stop_chat(
    request: Request,
    chat_id: str,
    admitted: Annotated[Admitted, Depends(STOP)],
    generation: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    services = services_of(request)
    if not admitted.visible:
        return JSONResponse(NOTHING_STOPPED)  # someone else's chat: as an unused id
    if generation is not None:
        # A stop record only for a generation of this chat: an unknown id writes nothing.
        try:
            await services.store.read(chat_id, generation, -1, limit=1)
        except GenerationNotFound:
            return JSONResponse(NOTHING_STOPPED)
    generation_id, outcome = await stop_generation(
        services, chat_id, generation, user=admitted.user
    )
    if generation_id is None:
        return JSONResponse(NOTHING_STOPPED)
    return JSONResponse(
        {"stopped": outcome == "aborted", "generationId": generation_id, "outcome": outcome}
    )


@router.delete(
    "/api/chat/{chat_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted, or nothing to delete"}, **error_answers(*ERRORS)},
)
async def delete_chat_route(
    request: Request, chat_id: str, admitted: Annotated[Admitted, Depends(DELETE_CHAT)]
) -> Response:
    """Stop the chat's running answer, then remove the chat and everything kept for it.
    204 whether or not there was anything: an unused id and someone else's chat (left as
    it is) answer alike, so a delete is idempotent and tells nothing of other users."""
    if admitted.visible:
        await delete_chat(services_of(request), chat_id, user=admitted.user)
    return Response(status_code=204)


@router.get("/api/chat/{chat_id}/messages", responses=answers(StoredChat, *ERRORS))
async def chat_messages(
    request: Request, chat_id: str, admitted: Annotated[Admitted, Depends(MESSAGES)]
) -> JSONResponse:
    services = services_of(request)
    if not admitted.visible:
        # Someone else's chat answers as an unused id.
        return JSONResponse({"chatId": chat_id, "messages": [], "activeGenerationId": None})
    chat = await services.store.get_chat(chat_id)
    messages: list[dict[str, Any]] = await services.store.load_messages(chat_id)
    return JSONResponse(
        {
            "chatId": chat_id,
            "messages": messages,
            "activeGenerationId": chat.active_generation_id if chat else None,
        }
    )


@router.get("/api/chats", responses=answers(ChatList, *ERRORS))
async def list_chats(
    request: Request,
    admitted: Annotated[Admitted, Depends(CHAT_LIST)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    """The caller's chats, most recent first."""
    services = services_of(request)
    chats = await services.store.list_chats(admitted.user, limit)
    return JSONResponse(
        {
            "chats": [
                {"id": chat.chat_id, "title": chat.title, "updatedAt": chat.updated_at}
                for chat in chats
            ]
        }
    )
