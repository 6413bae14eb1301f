"""`python -m bridge`: serve the bridge with uvicorn, in one or several worker processes.

Every option falls back to its setting (README, "Settings"): `--host` to `BRIDGE_HOST` then
`HOST`, `--port` to `BRIDGE_PORT` then `PORT`, `--workers` to `BRIDGE_WORKERS`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys

import uvicorn
from pydantic import ValidationError

from bridge.access.header_timeout import HeaderTimeoutProtocol
from bridge.observe.logs import log_config
from bridge.providers.registry import ModelConfigError, ProviderRegistry
from bridge.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__)
    parser.add_argument("--host", help="address to listen on (BRIDGE_HOST, HOST; 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (BRIDGE_PORT, PORT; 8000)")
    parser.add_argument(
        "--workers", type=int, help="worker processes (BRIDGE_WORKERS; 1); several need Redis"
    )
    parser.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (BRIDGE_PROXY_HEADERS; on)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        help="peers whose proxy headers are trusted (BRIDGE_FORWARDED_ALLOW_IPS; 127.0.0.1)",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (BRIDGE_LOG_LEVEL; INFO)")
    return parser


def _check_models(settings: Settings) -> None:
    """A model setting this process cannot serve (a listed provider without its key) stops
    here, in one line, rather than in every worker's start-up or as a 400 per request."""
    try:
        registry = ProviderRegistry.from_settings(settings)
    except (ModelConfigError, ValueError, ImportError) as error:
        sys.exit(f"aisdk-bridge: {error}")
    asyncio.run(registry.aclose())


def _share_anonymous_key(settings: Settings) -> None:
    """In anonymous mode, every worker must sign identity cookies with one key, or a
    browser's identity (and its chat list) would change with the worker a request reaches.
    Without BRIDGE_SECRET_KEY, one random key is made here and handed to the workers
    through their environment (they start from this process's)."""
    anonymous = not (
        settings.bridge_auth_tokens or settings.bridge_jwt_secret or settings.bridge_jwt_jwks_url
    )
    if anonymous and not settings.bridge_secret_key:
        os.environ["BRIDGE_SECRET_KEY"] = secrets.token_urlsafe(32)
        logging.getLogger("bridge").warning(
            "BRIDGE_SECRET_KEY is unset: the workers share a random key made at start-up; "
            "anonymous identities end when the server restarts (set it to keep them)"
        )


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        sys.exit(f"aisdk-bridge: invalid settings: {error}")
    _check_models(settings)
    level = (args.log_level or settings.bridge_log_level).upper()
    workers = args.workers if args.workers is not None else settings.bridge_workers
    if workers < 1:
        sys.exit("aisdk-bridge: --workers must be at least 1")
    if workers > 1 and not settings.redis_url:
        # SQLite (the default store) is one process's file, the memory store one process's
        # memory: a resume or stop that reached another worker would find nothing.
        sys.exit(
            f"aisdk-bridge: {workers} workers need a shared session store: set REDIS_URL "
            f"(BRIDGE_STORE is {settings.bridge_store}; the default SQLite store and the "
            "memory store serve one process), or run one worker"
        )
    if workers > 1:
        _share_anonymous_key(settings)
    uvicorn.run(
        "bridge.app:create_app",
        factory=True,
        host=args.host or settings.bridge_host,
        port=args.port if args.port is not None else settings.bridge_port,
        workers=workers,
        proxy_headers=(
            args.proxy_headers if args.proxy_headers is not None else settings.bridge_proxy_headers
        ),
        forwarded_allow_ips=args.forwarded_allow_ips or settings.bridge_forwarded_allow_ips,
        # uvicorn's own HTTP/1.1 protocol with a deadline on each request's headers
        # (BRIDGE_HEADER_TIMEOUT_SECONDS): a slowloris client cannot hold connections.
        http=HeaderTimeoutProtocol,
        # Applied in every worker process (a `logging.basicConfig` here would reach only the
        # supervisor): the bridge's records and uvicorn's, access log included, one format.
        log_config=log_config(settings.bridge_log_format, level),
        log_level=level.lower(),
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
