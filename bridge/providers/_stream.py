"""Reading a provider's event stream from the raw HTTP body, with the HTTP stack's
failures mapped to the bridge's errors at this boundary.

The SDKs make the request (auth, base URL, retries of the request, errors of a non-2xx
answer); the body is then read here rather than through the SDKs' typed streams, whose
per-event model building was most of the bridge's CPU. Reading the body ourselves also
means their failures are ours to classify: a body cut mid-answer (connection reset, a
chunked body that ends early, a read timeout) is raised as `ProviderUnavailable`, which
the runner retries with `reset-step`, whatever HTTP stack the SDK uses: `httpx2` (current
`openai` and `anthropic`), their aiohttp transport, `httpx` (older releases), and the
socket and TLS errors that leak past them.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol

import anyio
import orjson

from bridge.errors import ProviderError, ProviderUnavailable
from bridge.providers._deadline import Deadline
from bridge.providers._sse import DEFAULT_MAX_EVENT_BYTES, EventTooLarge, SSEDecoder, SSEEvent

_LOW_LEVEL_FAILURES: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionResetError, BrokenPipeError, … where the HTTP stack lets them by
    ssl.SSLError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
)
_HTTP_LIBRARIES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2", "aiohttp"})
_HTTP_FAILURE_BASES = frozenset(
    # httpx(2): TransportError (network, protocol, timeouts) and DecodingError (a
    # compressed body cut short); httpcore(2): the bases of the same failures; aiohttp
    # (what the SDKs' aiohttp transport lets by unmapped): its connection and payload
    # errors.
    {
        "TransportError",
        "DecodingError",
        "NetworkError",
        "ProtocolError",
        "TimeoutException",
        "ClientConnectionError",
        "ClientPayloadError",
    }
)


def _http_library_bases(exc: BaseException) -> set[str]:
    """The names of `exc`'s classes that come from one of the HTTP libraries."""
    return {
        kind.__name__
        for kind in type(exc).__mro__
        if kind.__module__.partition(".")[0] in _HTTP_LIBRARIES
    }


def is_transport_failure(exc: BaseException) -> bool:
    """Whether `exc` means the connection failed while the body was read. The HTTP
    libraries are recognised by their exception classes' modules rather than imported:
    the bridge must not import (or require) an HTTP library the installed SDKs do not use."""
    return isinstance(exc, _LOW_LEVEL_FAILURES) or bool(
        _http_library_bases(exc) & _HTTP_FAILURE_BASES
    )


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "TimeoutException" in _http_library_bases(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def timed_out(exc: BaseException) -> bool:
    """Whether a failure the SDK reports as a timeout is one. The SDKs' aiohttp transport
    maps every connection error it does not know (an untrusted certificate, a refused
    connection) to a connect timeout; the cause it keeps tells them apart."""
    return not any(
        isinstance(cause, (ssl.SSLError, ConnectionRefusedError))
        or "Certificate" in type(cause).__name__
        for cause in _chain(exc)
    )


def transport_error(exc: BaseException, *, provider: str, label: str) -> ProviderUnavailable:
    """The bridge's error for a failure of the connection while the stream was read."""
    if is_timeout(exc):
        detail = "reading the stream timed out"
    else:
        detail = f"the connection dropped mid-stream ({type(exc).__name__})"
    return ProviderUnavailable(f"{label} failed: {detail}", provider=provider)


class RawBody(Protocol):
    """The raw HTTP response (httpx2's or httpx's `Response`) of a streaming request."""

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


async def read_sse(
    response: RawBody,
    deadline: Deadline,
    *,
    provider: str,
    label: str,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> AsyncGenerator[list[SSEEvent], None]:
    """The events of the response body, one list per network read that completed any.
    Raises `ProviderUnavailable` when the connection fails or the deadline passes, and a
    `ProviderError` for an event larger than `max_event_bytes`."""
    decoder = SSEDecoder(max_event_bytes)
    body = response.aiter_bytes()
    try:
        while True:
            try:
                chunk = await deadline.next(body)
            except TimeoutError as exc:
                raise deadline.error(provider=provider, label=label) from exc
            except Exception as exc:
                if is_transport_failure(exc):
                    raise transport_error(exc, provider=provider, label=label) from exc
                raise
            if chunk is None:
                if events := decoder.close():
                    yield events
                return
            try:
                events = decoder.feed(chunk)
            except EventTooLarge as exc:
                raise event_too_large(exc.limit, provider=provider, label=label) from exc
            if events:
                yield events
    finally:
        deadline.close()
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()


MALFORMED = (orjson.JSONDecodeError, AttributeError, TypeError)
"""What reading an event of the wrong shape raises: not JSON, or JSON of other types than
the API documents (the event readers expect objects where the API sends objects)."""


def parse_event(data: bytes, *, provider: str, label: str) -> dict[str, Any]:
    """An event's JSON object."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise malformed_event(data, provider=provider, label=label) from exc
    if not isinstance(value, dict):
        raise malformed_event(data, provider=provider, label=label)
    return value


def event_too_large(limit: int, *, provider: str, label: str) -> ProviderError:
    """An event past the size cap: not retried, the same request would get it again."""
    return ProviderError(
        f"{label} sent an event larger than {limit} bytes, the limit "
        "(BRIDGE_PROVIDER_MAX_EVENT_BYTES)",
        provider=provider,
    )


def unreadable_event_text(data: bytes, *, label: str) -> str:
    """What the client is shown for an event that is not what the API documents."""
    return f"{label} sent an event the bridge cannot read ({len(data)} bytes)"


def malformed_event(data: bytes, *, provider: str, label: str) -> ProviderError:
    """An event that is not what the API documents: not retried, as a server that sends
    one will likely send it again."""
    return ProviderError(
        f"{label} sent an event the bridge cannot read ({len(data)} bytes)", provider=provider
    )
