"""The chat's JSON endpoints: stop a generation, read the history, list the caller's chats."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from bridge.access.body import check_json_media_type
from bridge.api.gate import caller, identify
from bridge.api.schemas import ERRORS, ChatList, StopResult, StoredChat, answers
from bridge.chat.operations import stop_generation
from bridge.services import services_of

router = APIRouter()


@router.post("/api/chat/{chat_id}/stop", responses=answers(StopResult, *ERRORS))
async def stop_chat(
    request: Request,
    chat_id: str,
    generation: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    services = services_of(request)
    if request.headers.get("content-type"):
        # No body is needed; one sent as a form (a cross-site POST) is refused.
        check_json_media_type(request)
    await caller(services, request, chat_id)
    generation_id, outcome = await stop_generation(services, chat_id, generation)
    if generation_id is None:
        return JSONResponse({"stopped": False, "generationId": None})
    return JSONResponse(
        {"stopped": outcome == "aborted", "generationId": generation_id, "outcome": outcome}
    )


@router.get("/api/chat/{chat_id}/messages", responses=answers(StoredChat, *ERRORS))
async def chat_messages(request: Request, chat_id: str) -> JSONResponse:
    services = services_of(request)
    await caller(services, request, chat_id)
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
    request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> JSONResponse:
    """The caller's chats, most recent first."""
    services = services_of(request)
    user = await identify(services, request)
    chats = await services.store.list_chats(user, limit)
    return JSONResponse(
        {
            "chats": [
                {"id": chat.chat_id, "title": chat.title, "updatedAt": chat.updated_at}
                for chat in chats
            ]
        }
    )
