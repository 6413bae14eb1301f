"""A client that sends its request headers slowly, or not at all (slowloris), loses its
connection after BRIDGE_HEADER_TIMEOUT_SECONDS (`python -m bridge`, a process of its own);
a normal request, an idle keep-alive connection and an open WebSocket are not cut by it.

The clock of these tests is the server's own: a connection left with half its headers is
closed by the bound, and that close is the event the other checks wait on (never a sleep).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.bridge_process import BridgeProcess
from tests.ws_client import RawSocket, send_frame, ws_url

BOUND = 1.0
"""The header timeout of the bridge under test (seconds)."""
GENEROUS = 30.0
"""How long a test waits for the server to act before it fails (never an upper limit on the
bound itself: a loaded machine may be slow)."""
HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture(scope="module")
def bridge() -> Iterator[BridgeProcess]:
    process = BridgeProcess(
        {
            "BRIDGE_HEADER_TIMEOUT_SECONDS": str(BOUND),
            "BRIDGE_STORE": "memory",
            "BRIDGE_DEMO_TOKEN_DELAY_MS": "1",
            "BRIDGE_HEARTBEAT_SECONDS": "0.2",
        },
        name="slow-headers",
    )
    try:
        process.spawn().wait_ready()
        # Its start-up completes a moment before uvicorn listens.
        assert process.wait_line("Uvicorn running on", GENEROUS), process.output()
        yield process
    finally:
        process.close()


def _connect(bridge: BridgeProcess) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", bridge.port), timeout=GENEROUS)
    connection.settimeout(GENEROUS)
    return connection


def _read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a `TimeoutError` after
    GENEROUS seconds: the server never closed it)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_header_timeout_closes_a_connection_with_half_its_headers(bridge: BridgeProcess) -> None:
    with _connect(bridge) as slow:
        slow.sendall(HALF_REQUEST)
        answer = _read_until_closed(slow)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"code":"header_timeout"' in answer
    # The server goes on serving everyone else.
    assert httpx.get(f"{bridge.url}/healthz", timeout=GENEROUS).status_code == 200


def test_header_timeout_closes_a_connection_that_sends_nothing(bridge: BridgeProcess) -> None:
    with _connect(bridge) as silent:
        assert _read_until_closed(silent) == b""


def test_header_timeout_bounds_a_trickle_of_header_bytes(bridge: BridgeProcess) -> None:
    """Bytes that keep coming do not extend the bound: it runs from the request's start."""
    deadline = time.monotonic() + GENEROUS
    with _connect(bridge) as slow:
        slow.sendall(HALF_REQUEST)
        slow.settimeout(0.05)  # the pace of the trickle: one byte per 50 ms at most
        try:
            while time.monotonic() < deadline:
                slow.sendall(b"a")
                with contextlib.suppress(TimeoutError):
                    slow.recv(1, socket.MSG_PEEK)  # the answer (or the close) has come
                    break
        except (BrokenPipeError, ConnectionResetError):
            return  # closed while a byte was on its way: the bound held
        slow.settimeout(GENEROUS)
        assert _read_until_closed(slow).startswith(b"HTTP/1.1 408 ")


def test_header_timeout_leaves_an_idle_keep_alive_connection_open(bridge: BridgeProcess) -> None:
    with httpx.Client(base_url=bridge.url, timeout=GENEROUS) as client:
        assert client.get("/healthz").status_code == 200
        # A slow connection opened now is closed by the header bound while the keep-alive
        # connection idles (uvicorn's keep-alive timeout, 5 s, is longer than the bound).
        with _connect(bridge) as slow:
            slow.sendall(HALF_REQUEST)
            assert _read_until_closed(slow).startswith(b"HTTP/1.1 408 ")
        again = client.get("/healthz", extensions={"trace": _forbid_new_connection})
        assert again.status_code == 200


def _forbid_new_connection(event: str, info: dict[str, object]) -> None:
    # httpcore traces `connection.connect_tcp` only when it opens a new connection: the
    # second request must ride the first one's (still open) connection.
    assert not event.startswith("connection.connect_tcp"), "the keep-alive connection was cut"


async def test_header_timeout_leaves_an_open_websocket_working(bridge: BridgeProcess) -> None:
    socket_ = await RawSocket.open(ws_url(bridge.url))
    async with socket_:
        slow = await asyncio.to_thread(_connect, bridge)
        with slow:
            slow.sendall(HALF_REQUEST)
            answer = await asyncio.to_thread(_read_until_closed, slow)
        assert answer.startswith(b"HTTP/1.1 408 ")
        reply = await socket_.request(send_frame("r1", "slow-headers-ws"), within=GENEROUS)
    assert reply.final == "end", reply.frames


def test_header_timeout_leaves_a_streaming_response_alone(bridge: BridgeProcess) -> None:
    """A response being sent is never cut by the bound (it applies to headers only): a live
    tail still sends its keep-alives after a slow connection opened later was closed."""
    url = f"{bridge.url}/api/chat/slow-headers-tail/live"
    with httpx.stream("GET", url, timeout=GENEROUS) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        with _connect(bridge) as slow:
            slow.sendall(HALF_REQUEST)
            assert _read_until_closed(slow).startswith(b"HTTP/1.1 408 ")
        # StopIteration here: the stream was cut.
        assert next(line for line in lines if line.startswith(":"))
