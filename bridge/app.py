"""The ASGI application: `create_app()` for ASGI servers, `python -m bridge` to serve it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from bridge.auth import TokenAuth
from bridge.client_level import check_startup_level
from bridge.drain import Drain
from bridge.errors import BridgeError, Draining, InvalidRequest
from bridge.log.hub import LogHub
from bridge.log.takeover import sweep, sweep_once
from bridge.log.writer import LogWriter
from bridge.providers.registry import ProviderRegistry
from bridge.routes import chats, meta
from bridge.runner import GenerationRunner
from bridge.services import Services
from bridge.settings import Settings
from bridge.store.base import SessionStore
from bridge.tools import load_tools
from bridge.transports import poll, sse, websocket

logger = logging.getLogger("bridge")


def _make_store(settings: Settings) -> tuple[SessionStore, str]:
    kind = settings.bridge_store
    if kind == "auto":
        kind = "redis" if settings.redis_url else "sqlite"
    if kind == "redis":
        from bridge.store.redis import RedisOptions, RedisStore

        assert settings.redis_url is not None  # checked by Settings
        store = RedisStore(
            settings.redis_url,
            key_prefix=settings.bridge_key_prefix,
            log_ttl_seconds=settings.bridge_log_ttl_seconds,
            history_ttl_seconds=settings.bridge_history_ttl_seconds,
            lease_seconds=settings.bridge_lease_seconds,
            options=RedisOptions(
                socket_timeout=settings.bridge_redis_socket_timeout_seconds,
                connect_timeout=settings.bridge_redis_connect_timeout_seconds,
                health_check_interval=settings.bridge_redis_health_check_seconds,
                max_connections=settings.bridge_redis_max_connections,
                pool_timeout=settings.bridge_redis_pool_timeout_seconds,
            ),
        )
        logger.info("session store: Redis%s", " Cluster" if store.cluster else "")
        return store, "redis"
    if kind == "sqlite":
        from bridge.store.sqlite import DATABASE_FILE, SQLiteStore

        path = settings.bridge_data_dir / DATABASE_FILE
        logger.info(
            "session store: SQLite at %s (this process only; set REDIS_URL to share sessions "
            "between processes)",
            path,
        )
        sqlite_store = SQLiteStore(
            path,
            log_ttl_seconds=settings.bridge_log_ttl_seconds,
            history_ttl_seconds=settings.bridge_history_ttl_seconds,
            lease_seconds=settings.bridge_lease_seconds,
            synchronous=settings.bridge_sqlite_synchronous,
        )
        return sqlite_store, "sqlite"
    from bridge.store.memory import MemoryStore

    logger.warning(
        "session store: in-process memory (BRIDGE_STORE=memory): sessions live as long as "
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
        check_startup_level(settings, tools)
        if len(tools):
            logger.info(
                "tools from %s: %s",
                settings.bridge_tools,
                ", ".join(spec.name for spec in tools.specs),
            )
        store, kind = _make_store(settings)
        await store.start()
        registry = ProviderRegistry.from_settings(settings)
        hub = LogHub(store, queue_entries=settings.bridge_reader_queue_chunks)
        writer = LogWriter(
            store,
            hub,
            flush_interval=settings.bridge_flush_ms / 1000,
            lease_renew_interval=settings.bridge_lease_seconds / 3,
            max_buffered=settings.bridge_writer_buffer_chunks,
            retry_seconds=settings.bridge_writer_retry_seconds,
        )
        runner = GenerationRunner(
            store, settings, writer, can_hand_over=kind in {"redis", "sqlite"}
        )
        services = app.state.services = Services(
            settings=settings,
            store=store,
            store_kind=kind,
            registry=registry,
            runner=runner,
            auth=TokenAuth(settings.bridge_auth_tokens),
            tools=tools,
            hub=hub,
            writer=writer,
        )
        try:
            # Everything the process runs in the background lives in this one group: the
            # process-wide reader and writer, the generations, the takeover sweep, drain.
            async with anyio.create_task_group() as group:
                group.start_soon(hub.run)
                group.start_soon(writer.run)
                await group.start(runner.serve)
                # Generations left open by a process that is gone (with SQLite: this
                # process's previous life) are taken over before the first request.
                await sweep_once(services)
                if settings.bridge_takeover_sweep_seconds > 0:
                    group.start_soon(sweep, services, settings.bridge_takeover_sweep_seconds)
                drain = Drain(runner, settings.bridge_drain_seconds)
                drain.install(group)
                try:
                    yield
                finally:
                    with anyio.CancelScope(shield=True):
                        # Generations end (or are handed over) through the writer, which
                        # must still run: cancel the group only after.
                        await drain.run()
                        drain.uninstall()
                    group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
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
        headers: dict[str, str] = {}
        if isinstance(exc, InvalidRequest):
            extra["details"] = exc.details
        if isinstance(exc, Draining):
            headers["retry-after"] = str(exc.retry_after_seconds)
        return JSONResponse(
            _error_body(exc.code, exc.message, **extra),
            status_code=exc.status_code,
            headers=headers,
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
    return app


__all__ = ["create_app"]
