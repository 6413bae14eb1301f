"""`POST /api/chat/{id}/steer`: a user message for the chat's running generation (see
bridge/generation/inbox.py for where and how it is delivered)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bridge.access.body import parse_json, read_body, validate
from bridge.api.gate import caller
from bridge.chat.steer import SteerBody, queue_steering
from bridge.services import services_of

router = APIRouter()


@router.post("/api/chat/{chat_id}/steer")
async def steer_chat(request: Request, chat_id: str) -> JSONResponse:
    services = services_of(request)
    await caller(services, request, chat_id)
    body = parse_json(await read_body(request, services.settings.bridge_max_body_bytes))
    steer = validate(SteerBody, body)
    result = await queue_steering(services, chat_id, steer.message, steer.mode, steer.generation_id)
    return JSONResponse(result, status_code=202)
