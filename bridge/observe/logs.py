"""Structured logs: every record carries the chat, generation and user it concerns.

The ids live in context variables, bound where a request or a generation begins; asyncio
copies the context into every task, so a generation's task and everything it awaits log
with its ids without passing them around. `BRIDGE_LOG_FORMAT=json` writes one JSON
object per line (uvicorn's access log included); `text` (the default) keeps the usual
lines with the ids appended.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson

chat_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("chat_id", default=None)
generation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "generation_id", default=None
)
user_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("user", default=None)

_CONTEXT = (("chat_id", chat_id_var), ("generation_id", generation_id_var), ("user", user_var))
# Attributes every LogRecord has: anything else was passed with `extra=` and is logged.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


@contextlib.contextmanager
def bound(
    *, chat_id: str | None = None, generation_id: str | None = None, user: str | None = None
) -> Iterator[None]:
    """Log records inside carry these ids (None leaves a value as it was)."""
    tokens = [
        (var, var.set(value))
        for value, var in (
            (chat_id, chat_id_var),
            (generation_id, generation_id_var),
            (user, user_var),
        )
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (so any formatter can use them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT:
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(
            f"{name}={value}" for name, _ in _CONTEXT if (value := getattr(record, name, None))
        )
        return f"{line} [{ids}]" if ids else line


def log_config(fmt: str, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the bridge and uvicorn (pass it to uvicorn as
    `log_config`, so its access log uses the same format)."""
    formatter = "json" if fmt == "json" else "text"
    handler = {
        "class": "logging.StreamHandler",
        "formatter": formatter,
        "filters": ["context"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["default"], "level": level, "propagate": False},
        },
    }
