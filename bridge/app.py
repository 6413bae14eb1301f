"""The ASGI application: `create_app()` for ASGI servers, `python -m bridge` to serve it."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from bridge.access.body import body_schemas
from bridge.access.browser import BrowserGuard
from bridge.access.client_level import check_startup_level
from bridge.access.identity import AnonymousCookieMiddleware, Auth, make_auth
from bridge.access.limits import Limits, retry_after_header
from bridge.access.redaction import redact_tokens_in_access_log
from bridge.api import (
    chat_routes,
    durable_routes,
    live_routes,
    meta_routes,
    poll_routes,
    sse_routes,
    steer_routes,
    ws_routes,
)
from bridge.chat.busy import BUSY_RESPONSE_HEADERS
from bridge.chat.steer import start_follow_up_turn
from bridge.chat.takeover import sweep, sweep_once
from bridge.errors import BridgeError, Draining, InvalidRequest, LimitExceeded
from bridge.generation.drain import Drain
from bridge.generation.hooks import GenerationHooks, OnFinish
from bridge.generation.runner import GenerationRunner
from bridge.log.hub import LogHub
from bridge.log.writer import LogWriter
from bridge.observe import memory, tracing
from bridge.observe.metrics import Metrics
from bridge.observe.store import measured
from bridge.providers.base import Provider
from bridge.providers.registry import ProviderRegistry
from bridge.services import Services
from bridge.settings import Settings
from bridge.store.base import SessionStore
from bridge.tools import ToolBox, load_tools

logger = logging.getLogger("bridge")


def _make_store(settings: Settings) -> tuple[SessionStore, str]:
    kind = settings.bridge_store
    if kind == "auto":
        kind = "redis" if settings.redis_url else "sqlite"
    if kind == "redis":
        from bridge.store.redis.store import RedisOptions, RedisStore

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
        from bridge.store.sqlite.store import DATABASE_FILE, SQLiteStore

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


_STORE_KINDS = {"RedisStore": "redis", "SQLiteStore": "sqlite", "MemoryStore": "memory"}


class Bridge:
    """The bridge as parts an existing FastAPI app composes: `router` (every endpoint),
    `lifespan(app)` (the store, the process-wide writer and reader, the generations, drain),
    `install(app, prefix=...)` for both plus the error handlers. `create_app` is the
    simplest user of it.

    Everything can be given in code instead of settings: `store` (any `SessionStore`),
    `providers` (name -> provider, served as `name:<model>`), `tools` (a `ToolBox`), `auth`
    (who is calling: a `bridge.access.identity.Auth`, e.g. `CallableAuth(your_dependency)`), and
    `on_finish(chat_id, message, usage, user)` to save finished messages in your own
    database, `hooks` (a `bridge.generation.hooks.GenerationHooks`: before, on error, on
    cancel and after each generation)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        auth: Auth | None = None,
        store: SessionStore | None = None,
        providers: Mapping[str, Provider] | None = None,
        tools: ToolBox | None = None,
        on_finish: OnFinish | None = None,
        hooks: GenerationHooks | None = None,
    ) -> None:
        self.settings = settings = settings or Settings()
        self.auth, self._anonymous = make_auth(settings, auth)
        self._limits = Limits(settings)
        self._store = store
        self._providers = providers
        self._tools = tools
        self._on_finish = on_finish
        self._hooks = hooks
        self.metrics = Metrics()
        self.router = APIRouter()
        for module in (
            sse_routes,
            chat_routes,
            meta_routes,
            poll_routes,
            ws_routes,
            steer_routes,
            live_routes,
            durable_routes,
        ):
            self.router.include_router(module.router)
        redact_tokens_in_access_log()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Runs the bridge for as long as the host app runs; compose it into yours:
        `async with bridge.lifespan(app): yield`."""
        settings = self.settings
        tracing.configure_at_startup()  # OTEL_* variables, unless a tracer provider is set
        tools = self._tools if self._tools is not None else load_tools(settings.bridge_tools)
        check_startup_level(settings, tools)
        if len(tools):
            logger.info("tools: %s", ", ".join(spec.name for spec in tools.specs))
        if self._store is not None:
            store = self._store
            kind = _STORE_KINDS.get(type(store).__name__, "custom")
        else:
            store, kind = _make_store(settings)
        await store.start()
        if settings.bridge_metrics:
            store = measured(store, self.metrics)
        registry = ProviderRegistry.from_settings(settings, self._providers)
        hub = LogHub(store, queue_entries=settings.bridge_reader_queue_chunks)
        writer = LogWriter(
            store,
            hub,
            flush_interval=settings.bridge_flush_ms / 1000,
            lease_renew_interval=settings.bridge_lease_seconds / 3,
            max_buffered=settings.bridge_writer_buffer_chunks,
            retry_seconds=settings.bridge_writer_retry_seconds,
        )
        # SQLite hands over to the next start of this process (one process per file).
        runner = GenerationRunner(
            store,
            settings,
            writer,
            can_hand_over=kind in {"redis", "sqlite"},
            metrics=self.metrics,
            on_finish=self._on_finish,
            hooks=self._hooks,
        )
        services = app.state.services = Services(
            settings=settings,
            store=store,
            store_kind=kind,
            registry=registry,
            runner=runner,
            auth=self.auth,
            tools=tools,
            limits=self._limits,
            hub=hub,
            writer=writer,
            metrics=self.metrics,
        )
        runner.follow_up = functools.partial(start_follow_up_turn, app.state.services)
        try:
            # Everything the process runs in the background lives in this one group: the
            # process-wide reader and writer, the generations, the takeover sweep, drain.
            async with anyio.create_task_group() as group:
                group.start_soon(hub.run)
                group.start_soon(writer.run)
                # RSS given back once a load has passed (glibc keeps freed pages).
                group.start_soon(memory.watch, lambda: runner.running)
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

    def install(self, app: FastAPI, *, prefix: str = "") -> None:
        """Mount the endpoints under `prefix` and add the bridge's error handlers and (in
        anonymous mode) its identity cookie. The host composes `lifespan` itself."""
        if self._anonymous is not None:
            app.add_middleware(AnonymousCookieMiddleware, auth=self._anonymous)
        # Outside the identity cookie: a host not allowed is refused before anything runs,
        # and a `*`-only WebSocket origin loses its cookies before one is handed out.
        app.add_middleware(
            BrowserGuard, settings=self.settings, anonymous=self._anonymous is not None
        )
        app.include_router(self.router, prefix=prefix)
        app.add_exception_handler(BridgeError, _bridge_error)


async def _bridge_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BridgeError)
    extra: dict[str, object] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidRequest):
        extra["details"] = exc.details
    running = getattr(exc, "running_generation_id", None)
    if isinstance(running, str):
        extra["generationId"] = running  # a 409 of the busy policy `reject`
    if isinstance(exc, Draining):
        headers["retry-after"] = str(exc.retry_after_seconds)
    if isinstance(exc, LimitExceeded):
        headers["retry-after"] = retry_after_header(exc.retry_after)
        services = getattr(request.app.state, "services", None)
        if services is not None:
            services.metrics.limits_hit.labels(exc.code).inc()
    message = exc.public_message
    if message != exc.message:
        # The client gets a short fixed text; the operator reads the whole one here.
        logger.warning("%s %s answered %s: %s", request.method, request.url.path, exc.code, exc)
    return JSONResponse(
        _error_body(exc.code, message, **extra), status_code=exc.status_code, headers=headers
    )


def create_app(
    settings: Settings | None = None,
    *,
    auth: Auth | None = None,
    store: SessionStore | None = None,
    providers: Mapping[str, Provider] | None = None,
    tools: ToolBox | None = None,
    on_finish: OnFinish | None = None,
    hooks: GenerationHooks | None = None,
) -> FastAPI:
    """The bridge as an ASGI app of its own (what `python -m bridge` serves). The
    arguments are those of `Bridge`."""
    bridge = Bridge(
        settings,
        auth=auth,
        store=store,
        providers=providers,
        tools=tools,
        on_finish=on_finish,
        hooks=hooks,
    )
    settings = bridge.settings
    app = FastAPI(title="aisdk-bridge", version="0.1.0", lifespan=bridge.lifespan)
    bridge.install(app)
    if settings.bridge_cors_origins:
        any_origin = "*" in settings.bridge_cors_origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.bridge_cors_origins,
            allow_methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            # Credentials (cookies, auth headers a browser adds itself) only for origins
            # listed one by one: with "*" any site could act as the user.
            allow_credentials=not any_origin,
            # A page reads what the busy policy did and where a Durable Streams read goes on.
            expose_headers=[
                sse_routes.GENERATION_HEADER,
                "retry-after",
                *BUSY_RESPONSE_HEADERS,
                *durable_routes.RESPONSE_HEADERS,
            ],
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

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(body_schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


__all__ = ["Bridge", "create_app"]
