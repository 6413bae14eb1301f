"""A provider that drops the connection mid-answer, on every provider path: the provider
raises `ProviderUnavailable` (never an unclassified transport error), and through the app
the runner retries the step with `reset-step`, so the stored answer holds the full text
exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore2
import httpx
import httpx2
import pytest

from bridge.errors import ProviderError, ProviderUnavailable
from bridge.providers._stream import is_transport_failure, transport_error
from bridge.providers.anthropic import AnthropicProvider
from bridge.providers.base import (
    EventError,
    ModelRequest,
    Provider,
    StepFinished,
    StreamOpened,
    TextDelta,
)
from bridge.providers.openai_chat import OpenAIChatProvider
from bridge.providers.openai_responses import OpenAIResponsesProvider
from tests.bridge_server import BridgeFactory, chat_body
from tests.fakes import (
    AnthropicFake,
    Cut,
    OpenAIFake,
    RawBytes,
    ScriptedFake,
    Text,
    collect,
    message,
    of_type,
)
from tests.session_client import StreamResult, read_stream

PATHS = ["openai", "openai-chat", "anthropic"]
ANSWER = "The whole answer, in one piece."


@dataclass
class Upstream:
    kind: str
    fake: ScriptedFake
    settings: dict[str, Any]

    def provider(self, **options: Any) -> Provider:
        if self.kind == "anthropic":
            return AnthropicProvider(
                api_key="test-key", base_url=self.fake.url, max_retries=0, **options
            )
        base_url = self.fake.url + "/v1"
        if self.kind == "openai-chat":
            return OpenAIChatProvider(
                api_key="test-key", base_url=base_url, max_retries=0, **options
            )
        return OpenAIResponsesProvider(
            api_key="test-key", base_url=base_url, max_retries=0, **options
        )


@pytest.fixture(params=PATHS)
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    kind = request.param
    fake: ScriptedFake = AnthropicFake() if kind == "anthropic" else OpenAIFake()
    fake.start()
    if kind == "anthropic":
        settings = {
            "anthropic_api_key": "test-key",
            "anthropic_base_url": fake.url,
            "bridge_model": "anthropic:claude-test",
        }
    else:
        settings = {
            "openai_api_key": "test-key",
            "openai_base_url": fake.url + "/v1",
            "bridge_model": f"{kind}:gpt-test",
        }
    yield Upstream(kind, fake, settings)
    fake.stop()


def ask() -> ModelRequest:
    return ModelRequest(model="test-model", messages=[message("user", "Hi")])


# --------------------------------------------------------------------------- provider


@pytest.mark.parametrize("reset", [False, True], ids=["truncated-body", "connection-reset"])
async def test_provider_drop_mid_answer_is_provider_unavailable(
    upstream: Upstream, reset: bool
) -> None:
    upstream.fake.enqueue([Text("The whole answer"), Cut(reset=reset)])
    provider = upstream.provider()
    events: list[Any] = []
    try:
        with pytest.raises(ProviderUnavailable, match="dropped mid-stream") as caught:
            await collect(provider.stream(ask()), into=events)
    finally:
        await provider.aclose()
    assert isinstance(events[0], StreamOpened)
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == "The whole answer"
    assert caught.value.provider == upstream.kind
    assert upstream.fake.cuts == 1


async def test_provider_body_ending_before_the_final_event_is_provider_unavailable(
    upstream: Upstream,
) -> None:
    """A body that ends cleanly but before the API's final event is a drop too."""
    upstream.fake.enqueue([Text("Cut short"), Cut()])
    provider = upstream.provider()
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(provider.stream(ask()))
    finally:
        await provider.aclose()
    assert isinstance(caught.value, ProviderUnavailable)


# --------------------------------------------------------------------------- through the app


async def post(client: httpx.AsyncClient, url: str, chat_id: str) -> StreamResult:
    # `client=7`: this reader applies `reset-step` as ai 7 does (text_after_last_reset).
    url = f"{url}/api/chat?client=7"
    return await read_stream(client, "POST", url, json=chat_body(chat_id, "hi"))


def text_after_last_reset(result: StreamResult) -> str:
    """The answer as a client shows it: `reset-step` drops the attempt before it."""
    chunks = result.chunks
    resets = [i for i, chunk in enumerate(chunks) if chunk["type"] == "reset-step"]
    start = resets[-1] + 1 if resets else 0
    return "".join(str(c["delta"]) for c in chunks[start:] if c["type"] == "text-delta")


@pytest.mark.parametrize("reset", [False, True], ids=["truncated-body", "connection-reset"])
async def test_drop_mid_answer_is_retried_and_stored_exactly_once(
    bridge_factory: BridgeFactory, upstream: Upstream, reset: bool
) -> None:
    server = bridge_factory(**upstream.settings, bridge_step_retries=1)
    upstream.fake.enqueue([Text("The whole answer, in"), Cut(reset=reset)])
    upstream.fake.enqueue([Text(ANSWER)])
    chat_id = f"drop-{upstream.kind}-{reset}"
    async with httpx.AsyncClient(timeout=30) as client:
        result = await post(client, server.url, chat_id)
        history = (await client.get(f"{server.url}/api/chat/{chat_id}/messages")).json()

    assert result.status == 200
    assert result.done
    assert result.types.count("reset-step") == 1
    assert "error" not in result.types
    assert result.chunks[-1]["type"] == "finish"
    assert result.chunks[-1]["finishReason"] == "stop"
    assert text_after_last_reset(result) == ANSWER
    stored = history["messages"][-1]
    assert stored["role"] == "assistant"
    assert [p["text"] for p in stored["parts"] if p["type"] == "text"] == [ANSWER]
    assert upstream.fake.cuts == 1
    assert len(upstream.fake.requests) == 2


async def test_drop_with_no_retry_left_ends_with_a_provider_error_chunk(
    bridge_factory: BridgeFactory, upstream: Upstream
) -> None:
    server = bridge_factory(**upstream.settings, bridge_step_retries=0)
    upstream.fake.enqueue([Text("The whole answer, in"), Cut(reset=True)])
    chat_id = f"drop-final-{upstream.kind}"
    async with httpx.AsyncClient(timeout=30) as client:
        result = await post(client, server.url, chat_id)

    assert result.done
    errors = [chunk["errorText"] for chunk in result.chunks if chunk["type"] == "error"]
    assert len(errors) == 1
    assert "dropped mid-stream" in errors[0]  # classified, not "An internal error occurred."
    assert result.chunks[-1]["finishReason"] == "error"


# --------------------------------------------------------------------------- malformed events

WRONG_SHAPE = {
    "openai": b'data: {"type":"response.output_item.added","item":[1]}\n\n',
    "openai-chat": b'data: {"choices":[42]}\n\n',
    "anthropic": (
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,"delta":"text"}\n\n'
    ),
}


@pytest.mark.parametrize("shape", ["not-json", "not-an-object", "wrong-shape"])
async def test_provider_malformed_event_is_an_error_of_the_step_which_goes_on(
    upstream: Upstream, shape: str
) -> None:
    """An event the bridge cannot read is reported where it came (an `EventError`, shown
    as an `error` chunk) and the rest of the answer still arrives, as in the AI SDK's
    providers: never an HTTP 502, never an internal error."""
    name = b"event: content_block_delta\n" if upstream.kind == "anthropic" else b""
    raw = {
        "not-json": name + b"data: {not json\n\n",
        "not-an-object": name + b"data: [1, 2]\n\n",
        "wrong-shape": WRONG_SHAPE[upstream.kind],
    }[shape]
    upstream.fake.enqueue([Text("Hello"), RawBytes(raw), Text(" and after")])
    provider = upstream.provider()
    try:
        events = await collect(provider.stream(ask()))
    finally:
        await provider.aclose()
    errors = of_type(events, EventError)
    assert len(errors) == 1
    assert "cannot read" in errors[0].text
    text = "".join(event.delta for event in of_type(events, TextDelta))
    assert text.endswith(" and after")
    assert isinstance(events[0], StreamOpened)
    assert isinstance(events[-1], StepFinished)


async def test_provider_malformed_first_event_still_opens_the_stream(upstream: Upstream) -> None:
    """Before it, nothing was streamed: were it raised, the client would get a 502."""
    name = b"event: message_start\n" if upstream.kind == "anthropic" else b""
    upstream.fake.enqueue([RawBytes(name + b"data: {broken\n\n"), Text("Hello")])
    provider = upstream.provider()
    try:
        events = await collect(provider.stream(ask()))
    finally:
        await provider.aclose()
    assert isinstance(events[0], StreamOpened)
    assert isinstance(events[1], EventError)


async def test_provider_event_past_the_size_cap_is_a_clear_provider_error(
    upstream: Upstream,
) -> None:
    name = b"event: content_block_delta\n" if upstream.kind == "anthropic" else b""
    huge = name + b"data: " + b"x" * 300_000 + b"\n\n"
    upstream.fake.enqueue([Text("Hello"), RawBytes(huge), Text("never read")])
    provider = upstream.provider(max_event_bytes=256 * 1024)
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(provider.stream(ask()))
    finally:
        await provider.aclose()
    assert not isinstance(caught.value, ProviderUnavailable)  # not retried: it would recur
    assert "larger than 262144 bytes" in caught.value.message
    assert "BRIDGE_PROVIDER_MAX_EVENT_BYTES" in caught.value.message


# --------------------------------------------------------------------------- classification


def _failures() -> list[BaseException]:
    return [
        httpx2.RemoteProtocolError("incomplete chunked read"),
        httpx2.ReadError("reset"),
        httpx2.DecodingError("truncated gzip"),
        httpcore2.ReadError("reset"),
        httpx.RemoteProtocolError("incomplete chunked read"),  # SDKs on the older httpx
        httpx.ReadError("reset"),
        ConnectionResetError(104, "Connection reset by peer"),
        anyio.EndOfStream(),
    ]


@pytest.mark.parametrize("exc", _failures(), ids=lambda exc: f"{type(exc).__module__}.{exc!r}")
def test_transport_failures_of_every_http_library_are_recognised(exc: BaseException) -> None:
    assert is_transport_failure(exc)
    error = transport_error(exc, provider="p", label="P")
    assert isinstance(error, ProviderUnavailable)
    assert "dropped mid-stream" in error.message


def test_transport_timeouts_are_reported_as_timeouts() -> None:
    for exc in (httpx2.ReadTimeout("slow"), httpx.ReadTimeout("slow")):
        assert is_transport_failure(exc)
        assert "timed out" in transport_error(exc, provider="p", label="P").message


def test_other_exceptions_are_not_transport_failures() -> None:
    request = httpx2.Request("GET", "http://127.0.0.1/")
    response = httpx2.Response(500, request=request)
    for exc in (
        ValueError("a bug"),
        KeyError("a bug"),
        httpx2.StreamClosed(),
        httpx2.HTTPStatusError("500", request=request, response=response),
    ):
        assert not is_transport_failure(exc), exc
