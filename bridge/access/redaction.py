"""Tokens never reach the logs: `?token=` (accepted on the WebSocket handshake) is masked
in uvicorn's access log lines."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"([?&](?:access_)?token=)[^&\s#]*", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return _TOKEN.sub(lambda match: match.group(1) + REDACTED, text)


class TokenRedactingFilter(logging.Filter):
    """uvicorn's access log passes the request line (path with query) as an argument."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = redact(record.msg)
        return True


def redact_tokens_in_access_log() -> None:
    """Idempotent: one filter on each logger that writes request lines."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactingFilter) for f in logger.filters):
            logger.addFilter(TokenRedactingFilter())
