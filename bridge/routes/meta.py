"""Small read-only endpoints: models, health."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bridge.services import services_of

router = APIRouter()


@router.get("/api/models")
async def list_models(request: Request) -> JSONResponse:
    services = services_of(request)
    services.auth.user_for(request)
    registry = services.registry
    models = []
    for model_id in registry.allowed_models:
        provider, _, name = model_id.partition(":")
        models.append({"id": model_id, "provider": provider, "name": name})
    return JSONResponse({"models": models, "default": registry.default_model})


@router.get("/healthz")
async def health(request: Request) -> JSONResponse:
    """Liveness and readiness: 503 once draining (SIGTERM), so a load balancer stops
    sending new requests here while running answers go on."""
    services = services_of(request)
    draining = not services.runner.accepting
    return JSONResponse(
        {
            "status": "draining" if draining else "ok",
            "store": services.store_kind,
            "runningGenerations": services.runner.running,
        },
        status_code=503 if draining else 200,
    )
