"""JWT bearer tokens: an HMAC secret (BRIDGE_JWT_SECRET) or the keys of a JWKS URL
(BRIDGE_JWT_JWKS_URL, fetched and cached), issuer and audience checks, the user id from a
configurable claim."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import httpx
import jwt

from bridge.errors import Unauthorized
from bridge.settings import Settings

logger = logging.getLogger("bridge.access.jwt")

HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"]
# Keys from a JWKS are public keys: an HMAC algorithm there would let anyone who reads the
# JWKS sign tokens (algorithm confusion), so only asymmetric ones are accepted.
ASYMMETRIC_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]
# An unknown `kid` refreshes the JWKS, but not more often than this: random kids must not
# turn the bridge into a hammer on the identity provider.
MIN_REFRESH_SECONDS = 10.0
JWKS_TIMEOUT_SECONDS = 5.0


class JwksCache:
    def __init__(self, url: str, cache_seconds: float) -> None:
        self._url = url
        self._cache_seconds = cache_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -float("inf")
        self._lock = anyio.Lock()

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        if age > self._cache_seconds or (kid not in self._keys and age > MIN_REFRESH_SECONDS):
            await self._refresh()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        key = self._keys.get(kid or "")
        if key is None:
            raise Unauthorized("the token's signing key is unknown")
        return key

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at <= MIN_REFRESH_SECONDS:
                return  # another request refreshed meanwhile
            try:
                async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS) as client:
                    response = await client.get(self._url)
                    response.raise_for_status()
                    keys = jwt.PyJWKSet.from_dict(response.json()).keys
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                self._fetched_at = time.monotonic()  # keep the old keys, retry later
                if not self._keys:
                    # The JWKS URL and the failure are for the operator, not the caller.
                    logger.warning("the JWKS at %s could not be fetched: %s", self._url, exc)
                    raise Unauthorized("the signing keys are unavailable") from None
                return
            self._keys = {key.key_id or "": key for key in keys}
            self._fetched_at = time.monotonic()


class JwtVerifier:
    def __init__(
        self,
        *,
        secret: str | None,
        jwks: JwksCache | None,
        issuer: str | None,
        audience: str | None,
        user_claim: str,
    ) -> None:
        self._secret = secret
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._user_claim = user_claim

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier | None:
        if not settings.bridge_jwt_secret and not settings.bridge_jwt_jwks_url:
            return None
        jwks = None
        if settings.bridge_jwt_jwks_url:
            jwks = JwksCache(settings.bridge_jwt_jwks_url, settings.bridge_jwks_cache_seconds)
        return cls(
            secret=settings.bridge_jwt_secret,
            jwks=jwks,
            issuer=settings.bridge_jwt_issuer,
            audience=settings.bridge_jwt_audience,
            user_claim=settings.bridge_jwt_user_claim,
        )

    async def user_for(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("invalid bearer token") from None
        algorithm = header.get("alg")
        key: Any
        if algorithm in HMAC_ALGORITHMS and self._secret:
            key, allowed = self._secret, HMAC_ALGORITHMS
        elif algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            key, allowed = (
                await self._jwks.key_for(kid if isinstance(kid, str) else None),
                [algorithm],
            )
        else:
            raise Unauthorized(f"tokens signed with {str(algorithm)[:20]!r} are not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=allowed,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid bearer token: {exc}") from None
        user = claims.get(self._user_claim)
        if isinstance(user, int) and not isinstance(user, bool):
            user = str(user)
        if not isinstance(user, str) or not user:
            raise Unauthorized(f"the token has no `{self._user_claim}` claim naming the user")
        return user
