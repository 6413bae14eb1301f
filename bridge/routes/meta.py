"""Small read-only endpoints: models, health, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from bridge.errors import NotFound
from bridge.observe.metrics import CONTENT_TYPE
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


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format; 404 when BRIDGE_METRICS=false."""
    services = services_of(request)
    if not services.settings.bridge_metrics:
        raise NotFound("metrics are off (BRIDGE_METRICS=false)")
    services.metrics.generations_running.set(services.runner.running)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
