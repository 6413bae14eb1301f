"""What a browser may reach: the host names the server answers to (DNS rebinding), the
origins that may open a WebSocket (cross-site WebSocket hijacking), and `*` origins served
without the browser's credentials on every transport (README, "Security model")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from urllib.parse import urlsplit

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.settings import Settings

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""What an anonymous bridge answers to by default: a page of another site that rebinds its
own name to 127.0.0.1 sends its name in `Host`, never one of these."""

OriginVerdict = Literal["same", "listed", "any", "refused"]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def allowed_hosts(settings: Settings, anonymous: bool) -> frozenset[str] | None:
    """The host names to answer to, lower case; None: any."""
    listed = [host.strip().lower() for host in settings.bridge_allowed_hosts if host.strip()]
    if "*" in listed:
        return None
    if listed:
        return frozenset(listed)
    return frozenset(LOOPBACK_HOSTS) if anonymous else None


def host_name(host_header: str) -> str:
    """`Host` without its port (`[::1]:8000` -> `::1`), lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _origin_key(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, default ports filled in; None when not http(s)."""
    scheme = scheme.lower()
    if scheme == "ws":
        scheme = "http"
    elif scheme == "wss":
        scheme = "https"
    if scheme not in _DEFAULT_PORTS or not netloc:
        return None
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, (parts.hostname or "").lower(), port


def origin_verdict(
    scope: Scope,
    allowed: Sequence[str],
    trusted_proxies: Sequence[str] = (),
) -> OriginVerdict:
    """How a WebSocket handshake's `Origin` is admitted: the page's own origin (scheme, host
    and port all equal; the host as a trusted proxy forwards it in `X-Forwarded-Host`),
    listed in BRIDGE_CORS_ORIGINS, only by `*` (served without credentials), or refused.
    Browsers always send Origin on a handshake and never let a page forge it; a handshake
    without one is not from a browser (nothing to protect: no ambient credentials)."""
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    if origin is None:
        return "same"
    origin_parts = urlsplit(origin)
    key = _origin_key(origin_parts.scheme, origin_parts.netloc)
    if key is None:
        return "any" if "*" in allowed else "refused"
    scheme = str(scope.get("scheme", "http"))
    hosts = [headers.get("host")]
    client = scope.get("client")
    peer = client[0] if client else None
    if peer is not None and ("*" in trusted_proxies or peer in trusted_proxies):
        forwarded = headers.get("x-forwarded-host")
        if forwarded:
            hosts.append(forwarded.split(",", 1)[0].strip())
    if any(host and _origin_key(scheme, host) == key for host in hosts):
        return "same"
    listed = {_origin_key(urlsplit(o).scheme, urlsplit(o).netloc) for o in allowed if o != "*"}
    if key in listed:
        return "listed"
    return "any" if "*" in allowed else "refused"


def trusted_proxies(settings: Settings) -> list[str]:
    return [ip.strip() for ip in settings.bridge_forwarded_allow_ips.split(",") if ip.strip()]


class BrowserGuard:
    """Every HTTP request and WebSocket handshake: a `Host` not allowed is answered 400
    before anything else runs; a cross-site handshake admitted only by a `*` origin loses
    its cookies before identity is asked (a `*` origin never carries credentials)."""

    def __init__(self, app: ASGIApp, settings: Settings, anonymous: bool) -> None:
        self.app = app
        self.hosts = allowed_hosts(settings, anonymous)
        self.origins = list(settings.bridge_cors_origins)
        self.trusted = trusted_proxies(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.hosts is not None:
            host = host_name(Headers(scope=scope).get("host", ""))
            if host not in self.hosts:
                await _refuse_host(scope, send)
                return
        if (
            scope["type"] == "websocket"
            and "*" in self.origins
            and origin_verdict(scope, self.origins, self.trusted) == "any"
        ):
            scope = {
                **scope,
                "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"cookie"],
            }
        await self.app(scope, receive, send)


_HOST_REFUSED = orjson.dumps(
    {
        "error": {
            "code": "host_not_allowed",
            "message": "this server does not answer to that host name (BRIDGE_ALLOWED_HOSTS)",
        }
    }
)


async def _refuse_host(scope: Scope, send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(_HOST_REFUSED)),
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": _HOST_REFUSED})
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": 400, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": _HOST_REFUSED})
        return
    await send({"type": "websocket.close", "code": 1008, "reason": "host not allowed"})
