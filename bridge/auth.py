"""Who is calling. Without configured tokens every caller is `anonymous`."""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from bridge.errors import Unauthorized

ANONYMOUS = "anonymous"


class TokenAuth:
    """Bearer tokens from `BRIDGE_AUTH_TOKENS` (`token:user` pairs).

    Browsers cannot set headers on a WebSocket handshake, so `?token=` is accepted too."""

    def __init__(self, pairs: list[str]) -> None:
        self._users: dict[str, str] = {}
        for pair in pairs:
            token, _, user = pair.partition(":")
            if not token or not user:
                raise ValueError("BRIDGE_AUTH_TOKENS entries must look like token:user")
            self._users[token] = user

    def user_for(self, connection: HTTPConnection) -> str:
        if not self._users:
            return ANONYMOUS
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            token = connection.query_params.get("token", "")
        for known, user in self._users.items():
            if token and hmac.compare_digest(known.encode(), token.encode()):
                return user
        raise Unauthorized("missing or invalid bearer token")
