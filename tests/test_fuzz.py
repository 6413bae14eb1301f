"""Hostile input never gets a 5xx, a hang or a crash.

Every route of the OpenAPI schema (the chat request body is declared there, though the
routes parse it themselves) is fuzzed with schemathesis against a live bridge; the routes
the schema leaves out (the Durable Streams read API's write methods, /metrics) get hostile
requests of their own; the routes that read a chat's logs (stream, poll, live tail, the
Durable Streams reads, a steering message's outcome) are fuzzed again on a chat that has a
generation, so the hostile parameters reach a real log; and random and malformed WebSocket
frames of every type are thrown at a live socket. A test fails on a route or a frame type
none of these reaches, so a new one is fuzzed from the start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
import schemathesis
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from bridge.app import create_app
from tests.bridge_server import chat_body, make_settings
from tests.fakes.server import LiveServer
from tests.test_gate import frame_types, route_entries
from tests.ws_client import ws_url

EXAMPLES = 30
FUZZED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
"""Every fuzzer's settings: repeatable (derandomized, no example database), no deadline."""


@pytest.fixture(scope="module")
def fuzzed_bridge() -> Iterator[LiveServer]:
    app = create_app(
        make_settings(
            bridge_demo_token_delay_ms=0,
            bridge_tools="bridge.tools.examples",
            bridge_max_poll_wait_seconds=0.2,
            bridge_heartbeat_seconds=0.5,
            bridge_rate_limit_per_minute=0,
        )
    )
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


def _operations() -> dict[str, Any]:
    """The schema's operations, read from an app built with the same settings (no server
    needed to generate cases)."""
    document = create_app(make_settings()).openapi()
    api = schemathesis.openapi.from_dict(document)
    return {result.ok().label: result.ok() for result in api.get_all_operations()}


OPERATIONS = _operations()
SCHEMALESS = {
    "PUT /api/ds/chat/{chat_id}/generation/{generation_id}",
    "POST /api/ds/chat/{chat_id}/generation/{generation_id}",
    "DELETE /api/ds/chat/{chat_id}/generation/{generation_id}",
    "PUT /api/ds/chat/{chat_id}/live",
    "POST /api/ds/chat/{chat_id}/live",
    "DELETE /api/ds/chat/{chat_id}/live",
    "GET /metrics",
}
"""Routes the schema leaves out, fuzzed by `test_routes_outside_the_schema_...`."""
FUZZED_FRAMES = ["send", "resume", "abort", "steer", "live"]


def test_fuzz_reaches_every_route_and_frame_type() -> None:
    routes = set(route_entries()) - {"WEBSOCKET /api/chat"}  # the frames below
    assert sorted(routes - set(OPERATIONS) - SCHEMALESS) == []
    assert set(FUZZED_FRAMES) == frame_types()


def test_the_schema_declares_the_chat_body(fuzzed_bridge: LiveServer) -> None:
    document = httpx.get(f"{fuzzed_bridge.url}/openapi.json").json()
    body = document["paths"]["/api/chat"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/ChatRequest")
    assert "UIMessage" in document["components"]["schemas"]


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_route_answers_hostile_input_without_a_5xx(
    fuzzed_bridge: LiveServer, label: str
) -> None:
    operation = OPERATIONS[label]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @FUZZED
    @given(case=cases)
    def answer_without_a_5xx(case: Any) -> None:
        response = case.call(base_url=fuzzed_bridge.url, timeout=15)
        assert response.status_code < 500, (label, response.status_code, response.text[:300])

    answer_without_a_5xx()


REAL_CHAT = "fz-real"
"""A chat of the fuzzed bridge with an ended generation (`real_generation`)."""


@pytest.fixture(scope="module")
def real_generation(fuzzed_bridge: LiveServer) -> str:
    response = httpx.post(
        f"{fuzzed_bridge.url}/api/chat", json=chat_body(REAL_CHAT, "hello"), timeout=30
    )
    assert response.status_code == 200, response.text
    return str(response.headers["x-bridge-generation-id"])


_query_text = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["-1", "0", "now", "-2", "1e3", "9" * 40, str(2**63), "a:b", "0:0", "0_0"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
_queries = st.dictionaries(
    st.sampled_from(["offset", "live", "cursor", "generation", "wait", "protocol", "client"]),
    st.one_of(_query_text, st.sampled_from(["sse", "long-poll", "text", "ui", "7"])),
    max_size=4,
)
_headers = st.dictionaries(
    st.sampled_from(["if-none-match", "last-event-id", "x-bridge-client", "accept"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    max_size=3,
)


def _real_paths(generation_id: str) -> list[tuple[str, str]]:
    chat = f"/api/chat/{REAL_CHAT}"
    ds = f"/api/ds/chat/{REAL_CHAT}"
    return [
        ("GET", f"{chat}/stream"),
        ("GET", f"{chat}/poll"),
        ("GET", f"{chat}/live"),
        ("GET", f"{chat}/steer/s1"),
        ("GET", f"{chat}/steer/{'x' * 256}"),
        ("GET", f"{ds}/generation/{generation_id}"),
        ("HEAD", f"{ds}/generation/{generation_id}"),
        ("GET", f"{ds}/generation/{generation_id}x"),
        ("GET", f"{ds}/live"),
        ("HEAD", f"{ds}/live"),
    ]


def _status_of(url: str, method: str, params: Any, headers: Any) -> int:
    """The status of a request whose answer may be a stream that never ends (a live tail):
    read no further than the status line and headers."""
    with httpx.stream(method, url, params=params, headers=headers, timeout=15) as response:
        return response.status_code


@settings(FUZZED, max_examples=3 * EXAMPLES)
@given(which=st.integers(min_value=0), params=_queries, headers=_headers)
def test_log_readers_of_a_real_chat_answer_hostile_parameters_without_a_5xx(
    fuzzed_bridge: LiveServer, real_generation: str, which: int, params: Any, headers: Any
) -> None:
    paths = _real_paths(real_generation)
    method, path = paths[which % len(paths)]
    status = _status_of(f"{fuzzed_bridge.url}{path}", method, params, headers)
    assert status < 500, (method, path, params, headers, status)


@FUZZED
@given(
    route=st.sampled_from(sorted(SCHEMALESS)),
    chat_id=st.one_of(st.just(REAL_CHAT), st.text(max_size=30)),
    body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www"]),
)
def test_routes_outside_the_schema_answer_hostile_input_without_a_5xx(
    fuzzed_bridge: LiveServer, route: str, chat_id: str, body: bytes, content_type: str
) -> None:
    method, path = route.split(" ", 1)
    path = path.replace("{chat_id}", quote(chat_id or "x", safe=""))
    path = path.replace("{generation_id}", "gen")
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.request(
        method, f"{fuzzed_bridge.url}{path}", content=body, headers=headers, timeout=15
    )
    assert response.status_code < 500, (route, response.status_code, response.text[:300])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_frames = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=64),
    _json.map(lambda value: json.dumps(value)),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from([*FUZZED_FRAMES, "ping", "nope", ""]),
            "requestId": st.one_of(st.text(max_size=10), st.integers(), st.none()),
            "id": st.one_of(st.sampled_from(["fz", REAL_CHAT, "a b", "x" * 300]), st.integers()),
        },
        optional={
            "messages": st.lists(_json, max_size=3),
            "message": _json,
            "lastSequence": st.one_of(st.integers(), st.just(2**64), st.text(max_size=5)),
            "trigger": st.text(max_size=10),
            "body": _json,
            "generationId": st.text(max_size=10),
            "mode": st.one_of(st.sampled_from(["queue", "interrupt", "turn"]), _json),
            "cursor": st.one_of(_query_text, _json),
        },
    ).map(lambda frame: json.dumps(frame)),
)


async def _throw(url: str, frame: str | bytes) -> int | None:
    """Send one frame; the close code the server answered with (None: still open)."""
    async with websockets.connect(url) as socket:
        await socket.send(frame)
        with anyio.move_on_after(1.0):
            try:
                while True:
                    await socket.recv()
            except websockets.ConnectionClosed:
                return socket.close_code
    return None


@FUZZED
@given(frame=_frames)
def test_hostile_websocket_frames_never_crash_the_server(
    fuzzed_bridge: LiveServer, frame: str | bytes
) -> None:
    code = anyio.run(_throw, ws_url(fuzzed_bridge.url), frame)
    assert code in (None, 1000, 1008), code
    assert httpx.get(f"{fuzzed_bridge.url}/healthz", timeout=5).status_code == 200
