"""`POST /api/chat/{id}/steer`: a user message for the chat's running generation (see
bridge/generation/inbox.py for where and how it is delivered)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from bridge.access.body import validate
from bridge.api.gate import STEER, Admitted
from bridge.chat.steer import NothingRunning, SteerBody, queue_steering
from bridge.services import services_of

router = APIRouter()


@router.post("/api/chat/{chat_id}/steer")
async def steer_chat(
    request: Request, chat_id: str, admitted: Annotated[Admitted, Depends(STEER)]
) -> JSONResponse:
    services = services_of(request)
    steer = validate(SteerBody, admitted.body)
    if not admitted.visible:
        # Someone else's chat answers as an unused id (queue_steering's words).
        raise NothingRunning(
            f"nothing is running in chat {chat_id}: send the message as a new turn "
            "(POST /api/chat) instead"
        )
    result = await queue_steering(services, chat_id, steer.message, steer.mode, steer.generation_id)
    return JSONResponse(result, status_code=202)
