"""Response shapes of the JSON endpoints, for /openapi.json (the routes answer with
JSONResponse themselves; these models document what they send)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, str]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ChatSummaryOut(BaseModel):
    id: str
    title: str
    updated_at: float = Field(alias="updatedAt")


class ChatList(BaseModel):
    chats: list[ChatSummaryOut]


class StoredChat(BaseModel):
    chat_id: str = Field(alias="chatId")
    messages: list[dict[str, Any]]
    active_generation_id: str | None = Field(alias="activeGenerationId")


class StopResult(BaseModel):
    stopped: bool
    generation_id: str | None = Field(alias="generationId")
    outcome: str | None = None


class ModelOut(BaseModel):
    id: str
    provider: str
    name: str


class ModelList(BaseModel):
    models: list[ModelOut]
    default: str | None


class Health(BaseModel):
    status: str
    store: str
    running_generations: int = Field(alias="runningGenerations")


def answers(model: type[BaseModel], *errors: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: `model` on 200, the error body on each of `errors`."""
    documented: dict[int | str, dict[str, Any]] = {200: {"model": model}}
    for status in errors:
        documented[status] = {"model": ErrorBody}
    return documented


ERRORS = (400, 401, 404, 415, 422, 429)


def error_answers(*errors: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` documenting only the error body (a route whose 200 is a stream)."""
    return {status: {"model": ErrorBody} for status in errors}


STREAM_ERRORS = (400, 401, 404, 409, 413, 415, 422, 429, 502, 503)
