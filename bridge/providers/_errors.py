"""Provider failures as `ProviderError`s with safe messages: by HTTP status, by the error
type a stream reported, secrets and key-shaped text redacted."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bridge.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)

_KEY_LIKE = re.compile(r"\b(?:sk|gsk|xai|key|api[_-]?key)[-_][A-Za-z0-9_\-*.]{6,}", re.IGNORECASE)
_MAX_MESSAGE = 500


def redact(text: str, secrets: Sequence[str | None] = ()) -> str:
    """Remove the configured secrets and anything shaped like an API key (upstream error
    messages quote the key, e.g. "Incorrect API key provided: sk-abc***wxyz")."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _KEY_LIKE.sub("[redacted]", text)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text


def error_for_status(
    status: int | None,
    detail: str | None,
    *,
    provider: str,
    label: str,
    secrets: Sequence[str | None] = (),
) -> ProviderError:
    """The ProviderError for an HTTP status the provider answered with (None: no answer,
    e.g. a timeout or a stream cut short)."""
    suffix = f": {redact(detail, secrets)}" if detail else ""
    status_text = f" (HTTP {status})" if status is not None else ""
    if status in (401, 403):
        return ProviderAuthError(
            f"{label} rejected the credentials{status_text}{suffix}",
            provider=provider,
            upstream_status=status,
        )
    if status == 429:
        return ProviderRateLimited(
            f"{label} is rate limiting requests{status_text}{suffix}",
            provider=provider,
            upstream_status=status,
        )
    if status is not None and 400 <= status < 500 and status != 408:
        return ProviderBadRequest(
            f"{label} refused the request{status_text}{suffix}",
            provider=provider,
            upstream_status=status,
        )
    return ProviderUnavailable(
        f"{label} failed{status_text}{suffix}", provider=provider, upstream_status=status
    )


def stream_error(
    kind: str | None,
    detail: str | None,
    *,
    provider: str,
    label: str,
    secrets: Sequence[str | None] = (),
) -> ProviderError:
    """The ProviderError for an error the provider reported inside a stream, by its
    error type or code (both APIs use similar words)."""
    text = redact(detail or "unknown error", secrets)
    kind = (kind or "").lower()
    message = f"{label} stream error ({kind or 'error'}): {text}"
    if "rate_limit" in kind:
        return ProviderRateLimited(message, provider=provider)
    if "auth" in kind or "permission" in kind:
        return ProviderAuthError(message, provider=provider)
    if "overloaded" in kind or "server_error" in kind or kind == "api_error":
        return ProviderUnavailable(message, provider=provider)
    if "invalid" in kind:
        return ProviderBadRequest(message, provider=provider)
    return ProviderError(message, provider=provider)
