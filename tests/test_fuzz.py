"""Hostile input never gets a 5xx, a hang or a crash (issue 11, item 6).

Every route of the OpenAPI schema (the chat request body is declared there, though the
routes parse it themselves) is fuzzed with schemathesis against a live bridge, and random
and malformed WebSocket frames are thrown at a live socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import schemathesis
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from bridge.app import create_app
from tests.bridge_server import make_settings
from tests.fakes.server import LiveServer
from tests.ws_client import ws_url

EXAMPLES = 30


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

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=cases)
    def answer_without_a_5xx(case: Any) -> None:
        response = case.call(base_url=fuzzed_bridge.url, timeout=15)
        assert response.status_code < 500, (label, response.status_code, response.text[:300])

    answer_without_a_5xx()


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
            "type": st.sampled_from(["send", "resume", "abort", "nope", ""]),
            "requestId": st.one_of(st.text(max_size=10), st.integers(), st.none()),
            "id": st.one_of(st.sampled_from(["fz", "a b", "x" * 300]), st.integers()),
        },
        optional={
            "messages": st.lists(_json, max_size=3),
            "message": _json,
            "lastSequence": st.one_of(st.integers(), st.just(2**64), st.text(max_size=5)),
            "trigger": st.text(max_size=10),
            "body": _json,
            "generationId": st.text(max_size=10),
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


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
@given(frame=_frames)
def test_hostile_websocket_frames_never_crash_the_server(
    fuzzed_bridge: LiveServer, frame: str | bytes
) -> None:
    code = anyio.run(_throw, ws_url(fuzzed_bridge.url), frame)
    assert code in (None, 1000, 1008), code
    assert httpx.get(f"{fuzzed_bridge.url}/healthz", timeout=5).status_code == 200
