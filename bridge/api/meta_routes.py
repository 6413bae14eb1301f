"""Small read-only endpoints: models, health, metrics."""

from __future__ import annotations

import logging
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from bridge.api.gate import HEALTH, METRICS, MODELS, READY, Admitted
from bridge.api.schemas import Health, ModelList, answers
from bridge.errors import NotFound, StoreError
from bridge.observe.metrics import CONTENT_TYPE
from bridge.services import services_of

logger = logging.getLogger("bridge.meta")

router = APIRouter()


@router.get("/api/models", responses=answers(ModelList, 401, 429))
async def list_models(
    request: Request, admitted: Annotated[Admitted, Depends(MODELS)]
) -> JSONResponse:
    services = services_of(request)
    registry = services.registry
    models = []
    for model_id in registry.allowed_models:
        provider, _, name = model_id.partition(":")
        models.append({"id": model_id, "provider": provider, "name": name})
    return JSONResponse({"models": models, "default": registry.default_model})


@router.get("/healthz", responses=answers(Health))
async def health(request: Request, admitted: Annotated[Admitted, Depends(HEALTH)]) -> JSONResponse:
    """Liveness: the process serves requests (200 while draining too: it must not be
    restarted while it hands its answers over)."""
    services = services_of(request)
    return JSONResponse(
        {
            "status": "draining" if not services.runner.accepting else "ok",
            "store": services.store_kind,
            "runningGenerations": services.runner.running,
        }
    )


@router.get("/readyz")
async def ready(request: Request, admitted: Annotated[Admitted, Depends(READY)]) -> JSONResponse:
    """Readiness: 503 once draining (SIGTERM), so a load balancer stops sending new
    requests here while running answers go on, and 503 while the store does not answer
    within BRIDGE_READY_TIMEOUT_SECONDS."""
    services = services_of(request)
    body: dict[str, object] = {"store": services.store_kind}
    if not services.runner.accepting:
        return JSONResponse({**body, "status": "draining"}, status_code=503)
    try:
        with anyio.fail_after(services.settings.bridge_ready_timeout_seconds):
            await services.store.ping()
    except (StoreError, TimeoutError) as exc:
        # Unauthenticated: ready or not, never the store's host or the error's text.
        logger.warning("readiness: the store did not answer: %s", exc or "timeout")
        return JSONResponse({**body, "status": "store_unavailable"}, 503)
    return JSONResponse({**body, "status": "ok"})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, admitted: Annotated[Admitted, Depends(METRICS)]) -> Response:
    """Prometheus text format; 404 when BRIDGE_METRICS=false."""
    services = services_of(request)
    if not services.settings.bridge_metrics:
        raise NotFound("metrics are off (BRIDGE_METRICS=false)")
    services.metrics.generations_running.set(services.runner.running)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
