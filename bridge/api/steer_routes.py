"""`POST /api/chat/{id}/steer`: a user message for the chat's running generation (see
bridge/generation/inbox.py for where and how it is delivered), and
`GET /api/chat/{id}/steer/{steeringId}`: its record and outcome (`?wait=` seconds for the
outcome; bridge/chat/steer.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from bridge.access.body import validate
from bridge.api.gate import STEER, Admitted, Entry
from bridge.chat.steer import (
    NothingRunning,
    SteerBody,
    SteeringNotFound,
    queue_steering,
    steering_outcome,
)
from bridge.services import services_of

router = APIRouter()

STEER_OUTCOME = Entry("GET /api/chat/{chat_id}/steer/{steering_id}", chat="path")


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
    answer, queued = await queue_steering(
        services, chat_id, steer.message, steer.mode, steer.generation_id
    )
    # 202: queued now; 200: a retry of a message queued before (its record, unchanged).
    return JSONResponse(answer, status_code=202 if queued else 200)


@router.get("/api/chat/{chat_id}/steer/{steering_id}")
async def steer_outcome(
    request: Request,
    chat_id: str,
    steering_id: Annotated[str, Path(min_length=1, max_length=256)],
    admitted: Annotated[Admitted, Depends(STEER_OUTCOME)],
    wait: Annotated[float, Query(ge=0, le=30)] = 0.0,
) -> JSONResponse:
    services = services_of(request)
    if not admitted.visible:
        raise SteeringNotFound(f"no steering message {steering_id[:80]!r} in chat {chat_id}")
    return JSONResponse(await steering_outcome(services, chat_id, steering_id, wait))
