"""Who is calling: static bearer tokens, JWTs, an embedding app's own check, or (for
development only) a signed anonymous identity per browser.

Every scheme answers one question, `await auth.user_for(connection) -> user id`, or
raises Unauthorized. Tokens travel in `Authorization: Bearer ...`; `?token=` is accepted
only on the WebSocket handshake (browsers cannot set headers there) and never on HTTP
routes, where it would end up in access logs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.errors import Unauthorized
from bridge.settings import Settings

if TYPE_CHECKING:
    from bridge.access.jwt_tokens import JwtVerifier

logger = logging.getLogger("bridge.access.identity")

ANONYMOUS_PREFIX = "anon:"
ANONYMOUS_COOKIE = "bridge_anon"
_ANONYMOUS_SCOPE_KEY = "bridge.anonymous_id"
_COOKIE_MAX_AGE = 365 * 24 * 3600


@runtime_checkable
class Auth(Protocol):
    """The caller's user id, or Unauthorized. An embedding app may supply its own:
    `create_app(auth=MyAuth())`, or `create_app(auth=CallableAuth(my_dependency))`."""

    async def user_for(self, connection: HTTPConnection) -> str: ...


class CallableAuth:
    """An `async def (connection) -> user` (e.g. the app's own session check) as an Auth."""

    def __init__(self, check: Callable[[HTTPConnection], Awaitable[str]]) -> None:
        self._check = check

    async def user_for(self, connection: HTTPConnection) -> str:
        user = await self._check(connection)
        if not user:
            raise Unauthorized("not signed in")
        return user


LEGACY_ANONYMOUS = "anonymous"
"""The one shared user of earlier versions' anonymous mode, still found as chat owner."""


def is_anonymous(user: str | None) -> bool:
    return user is not None and (user.startswith(ANONYMOUS_PREFIX) or user == LEGACY_ANONYMOUS)


def bearer_token(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if connection.scope["type"] == "websocket":
        return connection.query_params.get("token") or None
    return None


class TokenAuth:
    """Bearer tokens: `BRIDGE_AUTH_TOKENS` (`token:user` pairs) and/or JWTs."""

    def __init__(self, pairs: list[str], jwt: JwtVerifier | None = None) -> None:
        self._users: dict[str, str] = {}
        self._jwt = jwt
        for pair in pairs:
            token, _, user = pair.partition(":")
            if not token or not user:
                raise ValueError("BRIDGE_AUTH_TOKENS entries must look like token:user")
            self._users[token] = user

    async def user_for(self, connection: HTTPConnection) -> str:
        token = bearer_token(connection)
        if token is None:
            if connection.scope["type"] == "http" and "token" in connection.query_params:
                raise Unauthorized(
                    "`?token=` is accepted only on the WebSocket handshake; "
                    "send `Authorization: Bearer <token>`"
                )
            raise Unauthorized("missing bearer token")
        for known, user in self._users.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return user
        if self._jwt is not None:
            return await self._jwt.user_for(token)
        raise Unauthorized("invalid bearer token")


class AnonymousAuth:
    """Development mode: each browser is its own user, named by a signed cookie that
    AnonymousCookieMiddleware hands out. Nobody lists anyone else's chats; a chat id is the
    only key to a chat (see README, "Security model")."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def sign(self, identity: str) -> str:
        mac = hmac.new(self.key, identity.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{identity}.{mac}"

    def verify(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie or len(cookie) > 200:
            return None
        identity, _, _mac = cookie.rpartition(".")
        return identity if hmac.compare_digest(self.sign(identity), cookie) else None

    async def user_for(self, connection: HTTPConnection) -> str:
        identity = self.verify(connection.cookies.get(ANONYMOUS_COOKIE))
        if identity is None:
            identity = connection.scope.get(_ANONYMOUS_SCOPE_KEY) or new_anonymous_id()
        return ANONYMOUS_PREFIX + identity


def new_anonymous_id() -> str:
    return secrets.token_urlsafe(16)


class AnonymousCookieMiddleware:
    """Gives a caller without a valid identity cookie a new identity, in the request's
    scope and as a `Set-Cookie` on the answer (HttpOnly, SameSite=Lax: a cross-site
    request never carries it, so it cannot act as the browser's user)."""

    def __init__(self, app: ASGIApp, auth: AnonymousAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        if self.auth.verify(connection.cookies.get(ANONYMOUS_COOKIE)) is not None:
            await self.app(scope, receive, send)
            return
        identity = new_anonymous_id()
        scope[_ANONYMOUS_SCOPE_KEY] = identity
        secure = "; Secure" if scope.get("scheme") in ("https", "wss") else ""
        cookie = (
            f"{ANONYMOUS_COOKIE}={self.auth.sign(identity)}; Path=/; Max-Age={_COOKIE_MAX_AGE}; "
            f"HttpOnly; SameSite=Lax{secure}"
        ).encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"set-cookie", cookie)],
                }
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def make_auth(settings: Settings, custom: Auth | None = None) -> tuple[Auth, AnonymousAuth | None]:
    """The auth the settings ask for; the anonymous one (second) when nothing is set."""
    if custom is not None:
        return custom, None
    jwt: JwtVerifier | None = None
    if settings.bridge_jwt_secret or settings.bridge_jwt_jwks_url:
        # Imported only when used: PyJWT and its crypto backend are heavy for a plain start.
        from bridge.access.jwt_tokens import JwtVerifier

        jwt = JwtVerifier.from_settings(settings)
    if settings.bridge_auth_tokens or jwt is not None:
        return TokenAuth(settings.bridge_auth_tokens, jwt), None
    if settings.bridge_secret_key:
        key = settings.bridge_secret_key.encode()
    else:
        key = secrets.token_bytes(32)
        logger.warning(
            "BRIDGE_SECRET_KEY is unset: anonymous identities are signed with a random key "
            "of this process; they end when it restarts and differ between processes"
        )
    logger.warning(
        "ANONYMOUS MODE: no BRIDGE_AUTH_TOKENS, BRIDGE_JWT_SECRET or BRIDGE_JWT_JWKS_URL. "
        "Every browser gets an unverified identity cookie and anyone who knows a chat id can "
        "read and continue that chat. For development only: do not expose this server."
    )
    anonymous = AnonymousAuth(key)
    return anonymous, anonymous
