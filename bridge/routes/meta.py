"""Small read-only endpoints: models, health."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bridge.limits import identify
from bridge.routes.schemas import Health, ModelList, answers
from bridge.services import services_of

router = APIRouter()


@router.get("/api/models", responses=answers(ModelList, 401, 429))
async def list_models(request: Request) -> JSONResponse:
    services = services_of(request)
    await identify(services, request)
    registry = services.registry
    models = []
    for model_id in registry.allowed_models:
        provider, _, name = model_id.partition(":")
        models.append({"id": model_id, "provider": provider, "name": name})
    return JSONResponse({"models": models, "default": registry.default_model})


@router.get("/healthz", responses=answers(Health))
async def health(request: Request) -> JSONResponse:
    services = services_of(request)
    return JSONResponse(
        {
            "status": "ok",
            "store": services.store_kind,
            "runningGenerations": services.runner.running,
        }
    )
