"""The lean HTTP/1.1 transport of the provider SDKs (`bridge/providers/_http.py`), against
local servers on real sockets that script their answers byte by byte."""

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
from types import ModuleType

import httpx
import httpx2
import openai
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.errors import ProviderUnavailable
from bridge.providers._http import LeanTransport
from bridge.providers._http_client import sdk_http_client
from bridge.providers.base import ModelRequest, TextDelta
from bridge.providers.openai_chat import OpenAIChatProvider
from bridge.providers.registry import ProviderRegistry
from bridge.settings import Settings
from tests.fakes import collect, message

# Bounds a test that would otherwise hang if the transport held bytes back.
LIMIT = 10.0


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


CHUNKED = "Transfer-Encoding: chunked"
SSE = "Content-Type: text/event-stream"


@asynccontextmanager
async def lean_client(**options: object) -> AsyncIterator[tuple[httpx2.AsyncClient, LeanTransport]]:
    transport = LeanTransport(**options)  # type: ignore[arg-type]
    async with httpx2.AsyncClient(transport=transport, timeout=LIMIT) as client:
        yield client, transport


# --------------------------------------------------------------------------- streaming


async def test_lean_http_body_events_arrive_as_sent() -> None:
    """The reader gets each event before the server sends the next one."""
    read = [asyncio.Event() for _ in range(3)]

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", CHUNKED, SSE))
        for i in range(3):
            await peer.send(chunk(b"data: %d\n\n" % i))
            await read[i].wait()
        await peer.send(b"0\r\n\r\n")

    async with (
        raw_server(handler) as server,
        lean_client() as (client, _),
        asyncio.timeout(LIMIT),
        client.stream("POST", server.url(), json={"stream": True}) as response,
    ):
        got = []
        async for data in response.aiter_bytes():
            got.append(data)
            read[len(got) - 1].set()
    assert got == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
    request = server.requests[0]
    assert request.startswith(b"POST /v1/stream HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 15\r\n" in request
    assert request.endswith(b'{"stream":true}')


async def test_lean_http_keep_alive_reuses_one_connection() -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(head("200 OK", "Content-Length: 2") + b"ok")

    async with raw_server(handler) as server:
        async with lean_client() as (client, _):
            for _ in range(2):
                assert (await client.get(server.url("/models?limit=1"))).text == "ok"
            assert server.connections == 1
            assert len(server.requests) == 2
            assert server.requests[1].startswith(b"GET /models?limit=1 HTTP/1.1\r\n")
        # Closing the transport closes the pooled connection.
        await asyncio.wait_for(server.closed_by_client.wait(), LIMIT)


async def test_lean_http_stale_kept_alive_connection_is_retried_once() -> None:
    """A pooled connection the server dropped before answering: the request is sent again
    on a new connection."""

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", "Content-Length: 1") + b"1")
        if peer.server.connections == 1:
            await peer.read_request()  # read, then dropped unanswered
            peer.writer.close()
            return
        while await peer.read_request() is not None:
            await peer.send(head("200 OK", "Content-Length: 1") + b"2")

    async with raw_server(handler) as server, lean_client() as (client, _):
        assert (await client.post(server.url(), content=b"a")).text == "1"
        assert (await client.post(server.url(), content=b"b")).text == "1"
    assert server.connections == 2
    assert len(server.requests) == 3


BODIES = {
    "chunked": head("200 OK", CHUNKED) + chunk(b"hello ") + chunk(b"world") + b"0\r\n\r\n",
    "content-length": head("200 OK", "Content-Length: 11") + b"hello world",
    "close-delimited": head("200 OK", "Connection: close") + b"hello world",
}


@pytest.mark.parametrize("framing", list(BODIES))
async def test_lean_http_reads_each_body_framing(framing: str) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(BODIES[framing])
        if framing == "close-delimited":
            peer.writer.close()

    async with raw_server(handler) as server, lean_client() as (client, transport):
        response = await client.post(server.url(), content=b"{}")
        assert response.status_code == 200
        assert response.content == b"hello world"
        idle = sum(len(connections) for connections in transport._idle.values())
        assert idle == (0 if framing == "close-delimited" else 1)


async def test_lean_http_large_body_arrives_whole() -> None:
    """Bodies past the read buffer's limit (reading paused, then resumed) arrive intact."""
    body = bytes(range(256)) * (16 * 1024)  # 4 MiB

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(head("200 OK", f"Content-Length: {len(body)}") + body)

    async with raw_server(handler) as server, lean_client() as (client, _):
        for _ in range(2):
            response = await client.get(server.url())
            assert response.content == body
    assert server.connections == 1


async def test_lean_http_no_content_has_no_body() -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(head("204 No Content"))

    async with raw_server(handler) as server, lean_client() as (client, _):
        for _ in range(2):
            response = await client.post(server.url(), content=b"{}")
            assert (response.status_code, response.content) == (204, b"")
    assert server.connections == 1


async def test_lean_http_early_close_returns_nothing_to_the_pool() -> None:
    sent_first = asyncio.Event()

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(head("200 OK", CHUNKED) + chunk(b"first"))
            sent_first.set()
            if await peer.reader.read() == b"":
                return

    async with raw_server(handler) as server, lean_client() as (client, transport):
        for _ in range(2):
            async with client.stream("POST", server.url(), content=b"{}") as response:
                async for data in response.aiter_bytes():
                    assert data == b"first"
                    break
            assert not any(transport._idle.values())
            assert not transport._active
    assert server.connections == 2


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("reset", "error"),
    [(False, httpx2.RemoteProtocolError), (True, httpx2.ReadError)],
    ids=["eof", "reset"],
)
async def test_lean_http_body_cut_mid_answer_is_a_transport_error(
    reset: bool, error: type[Exception]
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", CHUNKED) + chunk(b"data: half"))
        peer.reset() if reset else peer.writer.close()

    async with raw_server(handler) as server, lean_client() as (client, transport):
        async with client.stream("POST", server.url(), content=b"{}") as response:
            with pytest.raises(error):
                async for _ in response.aiter_bytes():
                    pass
        assert not any(transport._idle.values())


async def test_lean_http_body_cut_through_a_provider_is_provider_unavailable() -> None:
    event = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    delta = {"index": 0, "delta": {"role": "assistant", "content": "Half"}, "finish_reason": None}
    first = b"data: " + orjson.dumps({**event, "choices": [delta]}) + b"\n\n"

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", CHUNKED, SSE) + chunk(first))
        peer.writer.close()

    async with raw_server(handler) as server:
        provider = OpenAIChatProvider(
            api_key="k", base_url=server.url("/v1"), max_retries=0, http="lean"
        )
        events: list[object] = []
        try:
            request = ModelRequest(model="m", messages=[message("user", "Hi")])
            with pytest.raises(ProviderUnavailable, match="dropped mid-stream"):
                await collect(provider.stream(request), into=events)
        finally:
            await provider.aclose()
    assert [e.delta for e in events if isinstance(e, TextDelta)] == ["Half"]


async def test_lean_http_read_timeout() -> None:
    done = asyncio.Event()

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", CHUNKED) + chunk(b"data: 1"))
        await done.wait()

    async with raw_server(handler) as server, lean_client() as (client, _):
        timeout = httpx2.Timeout(LIMIT, read=0.2)
        try:
            async with client.stream("POST", server.url(), timeout=timeout) as response:
                with pytest.raises(httpx2.ReadTimeout):
                    async for _ in response.aiter_bytes():
                        pass
        finally:
            done.set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_lean_http_refused_port_is_a_connect_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    async with lean_client() as (client, _):
        with pytest.raises(httpx2.ConnectError):
            await client.post(url, content=b"{}")
    sdk = openai.AsyncOpenAI(
        api_key="k", base_url=url, max_retries=0, http_client=sdk_http_client(openai, "lean")
    )
    try:
        with pytest.raises(openai.APIConnectionError):
            await sdk.models.list()
    finally:
        await sdk.close()


async def test_lean_http_error_status_body_is_read_whole() -> None:
    error = {"error": {"message": "slow down", "type": "rate_limit", "code": "rate_limited"}}
    body = orjson.dumps(error)

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("429 Too Many Requests", CHUNKED, "Content-Type: application/json"))
        await peer.send(chunk(body[:10]))
        await peer.send(chunk(body[10:]) + b"0\r\n\r\n")

    async with raw_server(handler) as server:
        sdk = openai.AsyncOpenAI(
            api_key="k",
            base_url=server.url("/v1"),
            max_retries=0,
            http_client=sdk_http_client(openai, "lean"),
        )
        try:
            with pytest.raises(openai.RateLimitError) as caught:
                await sdk.models.list()
        finally:
            await sdk.close()
    assert caught.value.body == error["error"]


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


async def test_lean_http_tls_with_a_trusted_self_signed_cert(tmp_path: Path) -> None:
    cert_pem, key_pem = _self_signed()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    server_tls.set_alpn_protocols(["http/1.1"])
    client_tls = ssl.create_default_context(cadata=cert_pem.decode())
    client_tls.set_alpn_protocols(["http/1.1"])

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            protocol = peer.writer.get_extra_info("ssl_object").selected_alpn_protocol()
            answer = protocol.encode()
            await peer.send(head("200 OK", f"Content-Length: {len(answer)}") + answer)

    async with raw_server(handler, tls=server_tls) as server:
        async with lean_client(ssl_context=client_tls) as (client, _):
            for _ in range(2):
                response = await client.post(server.url(scheme="https"), content=b"{}")
                assert response.text == "http/1.1"
        assert server.connections == 1
        # The default context (the system's CAs) does not trust the self-signed cert.
        async with lean_client() as (client, _):
            with pytest.raises(httpx2.ConnectError):
                await client.post(server.url(scheme="https"), content=b"{}")


async def test_lean_http_client_honours_environment_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def proxy(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(head("200 OK", "Content-Length: 7") + b"proxied")

    async with raw_server(proxy) as server:
        for name in ("ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.port}")
        client = sdk_http_client(openai, "lean")
        assert client is not None
        async with client:
            response = await client.get("http://upstream.invalid/v1/models")
    assert response.text == "proxied"
    assert server.requests[0].startswith(b"GET http://upstream.invalid/v1/models HTTP/1.1")


async def test_lean_http_other_methods_go_to_the_default_transport() -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(head("200 OK", "Content-Length: 0"))

    async with raw_server(handler) as server, lean_client() as (client, transport):
        response = await client.delete(server.url())
        assert response.status_code == 200
        assert transport._fallback is not None
        assert not any(transport._idle.values())


# --------------------------------------------------------------------------- wiring


@pytest.mark.parametrize("mode", ["lean", "sdk"])
async def test_lean_http_setting_picks_each_sdk_client_transport(mode: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        openai_base_url="http://127.0.0.1:9/v1",
        anthropic_api_key="k",
        azure_openai_api_key="k",
        azure_openai_endpoint="https://example.invalid",
        bridge_provider_http=mode,
    )
    registry = ProviderRegistry.from_settings(settings)
    try:
        for name in ("openai", "openai-chat", "anthropic", "azure"):
            http_client = registry.providers[name]._client._client  # type: ignore[attr-defined]
            assert isinstance(http_client._transport, LeanTransport) is (mode == "lean"), name
    finally:
        await registry.aclose()


def test_lean_http_sdk_on_httpx_keeps_its_default_client() -> None:
    """An SDK release whose client is an `httpx` one (not `httpx2`) gets its default."""
    older_sdk = ModuleType("older_sdk")
    older_sdk.DefaultAsyncHttpxClient = httpx.AsyncClient  # type: ignore[attr-defined]
    assert sdk_http_client(older_sdk, "lean") is None
    assert sdk_http_client(openai, "sdk") is None
    assert sdk_http_client(openai, "lean") is not None
