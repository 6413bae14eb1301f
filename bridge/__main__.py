"""`python -m bridge`: serve the bridge with uvicorn, in one or several worker processes.

Every option falls back to its setting (README, "Settings"): `--host` to `BRIDGE_HOST` then
`HOST`, `--port` to `BRIDGE_PORT` then `PORT`, `--workers` to `BRIDGE_WORKERS`.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError
from uvicorn.config import LOGGING_CONFIG

from bridge.settings import Settings

# The bridge's own loggers write in this form; uvicorn's keep theirs.
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    parser.add_argument("--log-level", default="info")
    return parser


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging plus a root handler, applied in every worker process.

    Workers are fresh interpreters: a `logging.basicConfig` here would reach only the
    supervisor, and the bridge's own warnings would vanish in the workers.
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["bridge"] = {"format": _LOG_FORMAT}
    config["handlers"]["bridge"] = {
        "formatter": "bridge",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["bridge"], "level": level.upper()}
    return config


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        sys.exit(f"aisdk-bridge: invalid settings: {error}")
    workers = args.workers if args.workers is not None else settings.bridge_workers
    if workers < 1:
        sys.exit("aisdk-bridge: --workers must be at least 1")
    if workers > 1 and not settings.redis_url:
        # Each process would keep its own chats: a resume or stop that reaches another worker
        # would find nothing.
        sys.exit(
            f"aisdk-bridge: {workers} workers need a shared session store: set REDIS_URL, "
            "or run one worker (the in-process memory store lives in one process)"
        )
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
        log_config=_log_config(args.log_level),
        log_level=args.log_level,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
