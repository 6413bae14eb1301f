"""Identity: static tokens, JWTs (HS secret, RSA keys from a JWKS served locally), an
embedding app's own Auth, anonymous identity cookies, tokens kept out of logs, and the user
id reaching tools (issue 11, item 3)."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.exceptions import InvalidStatus

from bridge.access.identity import ANONYMOUS_COOKIE, CallableAuth
from bridge.access.redaction import TokenRedactingFilter
from bridge.app import create_app
from bridge.errors import Unauthorized
from tests.bridge_server import BridgeFactory, chat_body, make_settings, sse_events
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import LiveServer, Text, ToolCall
from tests.ws_client import RawSocket, ws_url

SECRET = "a-local-test-secret-of-enough-length-for-hs256"


def hs_token(claims: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    body = {"exp": int(time.time()) + 300, **claims}
    return jwt.encode(body, secret, algorithm="HS256", headers=headers or None)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def chats_status(server: LiveServer, headers: dict[str, str]) -> int:
    return httpx.get(f"{server.url}/api/chats", headers=headers, timeout=10).status_code


def test_jwt_with_an_hs_secret_names_the_user(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(
        bridge_jwt_secret=SECRET,
        bridge_jwt_issuer="https://issuer.test",
        bridge_jwt_audience="bridge",
        bridge_demo_token_delay_ms=0,
    )
    alice = bearer(hs_token({"sub": "alice", "iss": "https://issuer.test", "aud": "bridge"}))
    bob = bearer(hs_token({"sub": "bob", "iss": "https://issuer.test", "aud": "bridge"}))
    response = httpx.post(
        f"{server.url}/api/chat", json=chat_body("jwt-chat", "hi"), headers=alice, timeout=30
    )
    assert response.status_code == 200
    assert [
        c["id"] for c in httpx.get(f"{server.url}/api/chats", headers=alice).json()["chats"]
    ] == ["jwt-chat"]
    assert httpx.get(f"{server.url}/api/chats", headers=bob).json() == {"chats": []}
    # Someone else's chat answers as an unused id would.
    theirs = httpx.get(f"{server.url}/api/chat/jwt-chat/messages", headers=bob)
    unused = httpx.get(f"{server.url}/api/chat/never-used/messages", headers=bob)
    assert theirs.status_code == unused.status_code == 200
    assert theirs.json()["messages"] == unused.json()["messages"] == []


@pytest.mark.parametrize(
    "token",
    [
        hs_token({"sub": "a", "iss": "https://issuer.test", "aud": "bridge"}, secret="wrong" * 10),
        hs_token({"sub": "a", "iss": "https://evil.test", "aud": "bridge"}),
        hs_token({"sub": "a", "iss": "https://issuer.test", "aud": "elsewhere"}),
        hs_token({"sub": "a", "iss": "https://issuer.test", "aud": "bridge", "exp": 1}),
        hs_token({"iss": "https://issuer.test", "aud": "bridge"}),
        jwt.encode({"sub": "a", "iss": "https://issuer.test", "aud": "bridge"}, SECRET),  # no exp
        jwt.encode({"sub": "a", "exp": 2**40}, None, algorithm="none"),
        "not.a.jwt",
    ],
    ids=["bad-signature", "issuer", "audience", "expired", "no-user", "no-exp", "alg-none", "junk"],
)
def test_jwt_that_does_not_verify_is_401(bridge_factory: BridgeFactory, token: str) -> None:
    server = bridge_factory(
        bridge_jwt_secret=SECRET,
        bridge_jwt_issuer="https://issuer.test",
        bridge_jwt_audience="bridge",
    )
    assert chats_status(server, bearer(token)) == 401


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey) -> Iterator[tuple[LiveServer, list[int]]]:
    """A JWKS endpoint on loopback; the list counts its fetches."""
    public = rsa_key.public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    jwks = {
        "keys": [
            {
                "kty": "RSA",
                "kid": "k1",
                "alg": "RS256",
                "use": "sig",
                "n": b64(public.n),
                "e": b64(public.e),
            }
        ]
    }
    fetches: list[int] = []

    async def serve(request: Request) -> JSONResponse:
        fetches.append(1)
        return JSONResponse(jwks)

    server = LiveServer(Starlette(routes=[Route("/jwks.json", serve)]))
    server.start()
    yield server, fetches
    server.stop()


def test_jwt_from_a_jwks_url_names_the_user_and_is_cached(
    bridge_factory: BridgeFactory,
    rsa_key: rsa.RSAPrivateKey,
    jwks_server: tuple[LiveServer, list[int]],
) -> None:
    keys, fetches = jwks_server
    server = bridge_factory(
        bridge_jwt_jwks_url=f"{keys.url}/jwks.json", bridge_jwt_user_claim="email"
    )
    claims = {"email": "carol@example.test", "exp": int(time.time()) + 300}
    token = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "k1"})
    for _ in range(3):
        assert chats_status(server, bearer(token)) == 200
    assert len(fetches) == 1
    # Algorithm confusion: the public key used as an HMAC secret.
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = base64.urlsafe_b64encode(pem).decode()
    confused = hs_token({"email": "carol@example.test"}, secret=forged, kid="k1")
    unknown_kid = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "k9"})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_key = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "k1"})
    for bad in (confused, unknown_kid, wrong_key):
        assert chats_status(server, bearer(bad)) == 401


def test_query_token_works_only_on_the_websocket_handshake(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_auth_tokens=["t1:alice"])
    response = httpx.get(f"{server.url}/api/chats?token=t1", timeout=10)
    assert response.status_code == 401
    assert "WebSocket" in response.json()["error"]["message"]
    assert chats_status(server, bearer("t1")) == 200


async def test_query_token_opens_a_websocket(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_auth_tokens=["t1:alice"])
    async with await RawSocket.open(ws_url(server.url, "/api/chat?token=t1")):
        pass
    with pytest.raises(InvalidStatus):
        await websockets.connect(ws_url(server.url, "/api/chat?token=t2"))


def test_tokens_in_request_lines_are_redacted_in_logs(bridge_factory: BridgeFactory) -> None:
    bridge_factory()  # create_app installs the filter
    access = logging.getLogger("uvicorn.access")
    assert any(isinstance(f, TokenRedactingFilter) for f in access.filters)
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/chat?x=1&token=s3cr3t&y=2", "1.1", 101),
        None,
    )
    for installed in access.filters:
        assert not isinstance(installed, logging.Filter) or installed.filter(record)
    line = record.getMessage()
    assert "s3cr3t" not in line and "token=[redacted]&y=2" in line


def test_anonymous_browsers_each_list_only_their_own_chats(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_secret_key="k" * 32, bridge_demo_token_delay_ms=0)
    with (
        httpx.Client(base_url=server.url, timeout=30) as first,
        httpx.Client(base_url=server.url, timeout=30) as second,
    ):
        assert first.post("/api/chat", json=chat_body("mine", "my secret")).status_code == 200
        cookie = first.cookies.get(ANONYMOUS_COOKIE)
        assert cookie
        assert [c["id"] for c in first.get("/api/chats").json()["chats"]] == ["mine"]
        assert second.get("/api/chats").json() == {"chats": []}
        forged = httpx.get(
            f"{server.url}/api/chats",
            cookies={ANONYMOUS_COOKIE: cookie.rsplit(".", 1)[0] + ".0000"},
        )
        assert forged.json() == {"chats": []}
        # Anonymous identities prove nothing: a chat id is the key (README).
        assert second.get("/api/chat/mine/messages").json()["messages"]


def test_embedding_app_auth_reaches_tools(openai_fake: OpenAIFake) -> None:
    async def by_header(connection: HTTPConnection) -> str:
        user = connection.headers.get("x-app-user")
        if not user:
            raise Unauthorized("sign in first")
        return user

    settings = make_settings(
        openai_api_key="test-key",
        openai_base_url=openai_fake.base_url,
        bridge_model="openai:gpt-test",
        bridge_tools="tests.security_tools",
    )
    server = LiveServer(create_app(settings, auth=CallableAuth(by_header)))
    server.start()
    try:
        openai_fake.enqueue([ToolCall("whoami", "{}", call_id="call_who")])
        openai_fake.enqueue([Text("Done.")])
        body = chat_body("who", "who am I?")
        refused = httpx.post(f"{server.url}/api/chat", json=body, timeout=30)
        assert refused.status_code == 401
        response = httpx.post(
            f"{server.url}/api/chat", json=body, headers={"x-app-user": "dana"}, timeout=30
        )
        assert response.status_code == 200
        outputs = [data for _, data in sse_events(response) if "tool-output-available" in data]
        assert outputs and "you are dana" in outputs[0]
    finally:
        server.stop()
