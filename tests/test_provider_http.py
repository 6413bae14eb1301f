"""The provider SDKs' own HTTP stacks as the bridge configures them
(`bridge/providers/_sdk_http.py`, BRIDGE_PROVIDER_HTTP): limits and timeouts, a custom CA
bundle and an environment proxy, against local servers on real sockets."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.errors import ProviderError
from bridge.providers._sdk_http import CONNECT_TIMEOUT, CONNECTION_LIMITS, ProviderHTTP
from bridge.providers.base import ModelRequest, TextDelta
from bridge.providers.openai_chat import OpenAIChatProvider
from bridge.providers.registry import ProviderRegistry
from bridge.settings import Settings
from tests.fakes import collect, message

MODES: list[ProviderHTTP] = ["aiohttp", "httpx"]


@dataclass
class Peer:
    """The server side of one connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: RawServer

    async def read_request(self) -> bytes | None:
        """The next request's head and body (None when the client closed)."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        self.server.requests.append(head + body)
        return head + body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def reset(self) -> None:
        """Close with a TCP reset rather than a clean FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.close()


Handler = Callable[[Peer], Awaitable[None]]


@dataclass
class RawServer:
    handler: Handler
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        peer = Peer(reader, writer, self)
        try:
            await self.handler(peer)
            if not writer.is_closing() and await reader.read() == b"":
                self.closed_by_client.set()
        except asyncio.CancelledError:
            # Cancelled by raw_server's exit; ending normally keeps asyncio's stream
            # callback (3.11) from logging the cancelled task as an error.
            pass
        except ConnectionError:
            pass  # the client went away: what some tests do on purpose
        finally:
            writer.close()
            self.tasks.discard(task)

    def url(self, path: str = "/v1/stream", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def raw_server(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[RawServer]:
    state = RawServer(handler)
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0, ssl=tls)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        try:
            yield state
        finally:
            # The handlers still running (waiting on a client that is gone) end here.
            for task in list(state.tasks):
                task.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)


def head(status: str = "200 OK", *headers: str) -> bytes:
    return f"HTTP/1.1 {status}\r\n{''.join(h + chr(13) + chr(10) for h in headers)}\r\n".encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE = "Content-Type: text/event-stream"
ANSWER = (
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"Hello over the wire"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
    b'"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


async def answer_chat(peer: Peer) -> None:
    while await peer.read_request() is not None:
        await peer.send(head("200 OK", SSE, f"Content-Length: {len(ANSWER)}") + ANSWER)


async def ask(provider: OpenAIChatProvider) -> str:
    try:
        events = await collect(provider.stream(ModelRequest("m", [message("user", "Hi")])))
    finally:
        await provider.aclose()
    return "".join(event.delta for event in events if isinstance(event, TextDelta))


def clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# --------------------------------------------------------------------------- wiring


@pytest.mark.parametrize("mode", MODES)
async def test_provider_http_setting_picks_each_sdk_stack(mode: ProviderHTTP) -> None:
    settings = Settings(
        _env_file=None,
        openai_base_url="http://127.0.0.1:9/v1",
        anthropic_api_key="k",
        azure_openai_api_key="k",
        azure_openai_endpoint="https://example.invalid",
        bridge_provider_http=mode,
    )
    registry = ProviderRegistry.from_settings(settings)
    client_class = "DefaultAioHttpClient" if mode == "aiohttp" else "DefaultAsyncHttpxClient"
    expected: dict[str, Any] = {
        "openai": getattr(openai, client_class),
        "anthropic": getattr(anthropic, client_class),
    }
    try:
        for name in ("openai", "openai-chat", "anthropic", "azure"):
            sdk_client = registry.providers[name]._client  # type: ignore[attr-defined]
            sdk = "anthropic" if name == "anthropic" else "openai"
            assert type(sdk_client._client) is expected[sdk], name
            assert sdk_client.timeout.connect == CONNECT_TIMEOUT, name
            assert sdk_client.timeout.read == settings.provider_timeout_seconds, name
            transport = sdk_client._client._transport
            if mode == "aiohttp":
                assert type(transport).__name__ == "AiohttpTransport"
                assert transport.limits == CONNECTION_LIMITS
            else:
                assert transport._pool._max_connections == CONNECTION_LIMITS.max_connections
    finally:
        await registry.aclose()


def test_provider_http_setting_refuses_an_unknown_stack() -> None:
    with pytest.raises(ValueError, match="bridge_provider_http"):
        Settings(_env_file=None, bridge_provider_http="lean")


# --------------------------------------------------------------------------- TLS, proxies


def _self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.mark.parametrize("mode", MODES)
async def test_provider_http_trusts_a_custom_ca_bundle_from_ssl_cert_file(
    mode: ProviderHTTP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_pem, key_pem = _self_signed()
    cert_file, key_file = tmp_path / "ca.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    clear_proxies(monkeypatch)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    def provider() -> OpenAIChatProvider:
        return OpenAIChatProvider(
            api_key="k", base_url=server.url("/v1", scheme="https"), max_retries=0, http=mode
        )

    async with raw_server(answer_chat, tls=server_tls) as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        assert await ask(provider()) == "Hello over the wire"
        # Without the bundle the system's CAs do not trust the self-signed certificate.
        monkeypatch.delenv("SSL_CERT_FILE")
        with pytest.raises(ProviderError, match="could not connect"):
            await ask(provider())
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_provider_http_goes_through_the_environment_proxy(
    mode: ProviderHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with raw_server(answer_chat) as proxy:
        clear_proxies(monkeypatch)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        provider = OpenAIChatProvider(
            api_key="k", base_url="http://upstream.invalid/v1", max_retries=0, http=mode
        )
        assert await ask(provider) == "Hello over the wire"
    # The proxy got the request in absolute form: it is the one that reaches the upstream.
    assert proxy.requests[0].startswith(b"POST http://upstream.invalid/v1/chat/completions ")
    body = orjson.loads(proxy.requests[0].split(b"\r\n\r\n", 1)[1])
    assert body["stream"] is True


@pytest.mark.parametrize("mode", MODES)
async def test_provider_http_no_proxy_reaches_the_host_directly(
    mode: ProviderHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with raw_server(answer_chat) as upstream, raw_server(answer_chat) as proxy:
        clear_proxies(monkeypatch)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        provider = OpenAIChatProvider(
            api_key="k", base_url=upstream.url("/v1"), max_retries=0, http=mode
        )
        assert await ask(provider) == "Hello over the wire"
    assert proxy.requests == []
    assert upstream.requests[0].startswith(b"POST /v1/chat/completions ")
