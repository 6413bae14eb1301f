"""The ASGI application: `create_app()` for ASGI servers, `python -m bridge` to serve it."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from bridge.auth import TokenAuth
from bridge.errors import BridgeError, InvalidRequest
from bridge.providers.registry import ProviderRegistry
from bridge.routes import chats, meta, steer
from bridge.runner import GenerationRunner
from bridge.services import Services
from bridge.settings import Settings
from bridge.steer import start_follow_up_turn
from bridge.store.base import SessionStore
from bridge.tools import load_tools
from bridge.transports import live, poll, sse, websocket

logger = logging.getLogger("bridge")


def _make_store(settings: Settings) -> tuple[SessionStore, str]:
    if settings.redis_url:
        from bridge.store.redis import RedisStore

        logger.info("session store: Redis")
        return RedisStore(
            settings.redis_url,
            key_prefix=settings.bridge_key_prefix,
            log_ttl_seconds=settings.bridge_log_ttl_seconds,
            history_ttl_seconds=settings.bridge_history_ttl_seconds,
            lease_seconds=settings.bridge_lease_seconds,
        ), "redis"
    from bridge.store.memory import MemoryStore

    logger.warning(
        "session store: in-process memory (REDIS_URL is unset): sessions live as long as "
        "this process and are not shared with other processes"
    )
    return MemoryStore(
        log_ttl_seconds=settings.bridge_log_ttl_seconds,
        history_ttl_seconds=settings.bridge_history_ttl_seconds,
        lease_seconds=settings.bridge_lease_seconds,
    ), "memory"


def _error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tools = load_tools(settings.bridge_tools)
        if len(tools):
            logger.info(
                "tools from %s: %s",
                settings.bridge_tools,
                ", ".join(spec.name for spec in tools.specs),
            )
        store, kind = _make_store(settings)
        await store.start()
        registry = ProviderRegistry.from_settings(settings)
        runner = GenerationRunner(store, settings)
        app.state.services = Services(
            settings=settings,
            store=store,
            store_kind=kind,
            registry=registry,
            runner=runner,
            auth=TokenAuth(settings.bridge_auth_tokens),
            tools=tools,
        )
        runner.follow_up = functools.partial(start_follow_up_turn, app.state.services)
        try:
            yield
        finally:
            await runner.shutdown()
            await registry.aclose()
            await store.close()

    app = FastAPI(title="aisdk-bridge", version="0.1.0", lifespan=lifespan)
    if settings.bridge_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.bridge_cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            allow_credentials=True,
            expose_headers=[sse.GENERATION_HEADER],
        )

    @app.exception_handler(BridgeError)
    async def bridge_error(request: Request, exc: BridgeError) -> JSONResponse:
        extra: dict[str, object] = {}
        if isinstance(exc, InvalidRequest):
            extra["details"] = exc.details
        return JSONResponse(
            _error_body(exc.code, exc.message, **extra), status_code=exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for item in exc.errors():
            location = ".".join(str(part) for part in item.get("loc", ()))
            details.append({"field": location, "message": str(item.get("msg", "invalid"))})
        first = details[0] if details else {"field": "?", "message": "invalid"}
        return JSONResponse(
            _error_body(
                "invalid_request",
                f"invalid `{first['field']}`: {first['message']}",
                details=details,
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            _error_body("http_error", str(exc.detail)),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(_error_body("internal_error", "internal server error"), status_code=500)

    app.include_router(sse.router)
    app.include_router(chats.router)
    app.include_router(meta.router)
    app.include_router(poll.router)
    app.include_router(websocket.router)
    app.include_router(steer.router)
    app.include_router(live.router)
    return app


__all__ = ["create_app"]
