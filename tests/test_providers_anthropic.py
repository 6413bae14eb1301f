"""`anthropic:` (Messages API) through the real `anthropic` SDK against the fake server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bridge.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from bridge.providers.anthropic import AnthropicProvider
from bridge.providers.base import (
    ModelRequest,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    Source,
    StepFinished,
    StreamOpened,
    TextDelta,
    TextEnd,
    TextStart,
    ToolCall,
    ToolInputDelta,
    ToolInputStart,
    ToolSpec,
    Usage,
)
from tests.fakes import (
    AnthropicFake,
    Citation,
    Finish,
    Hang,
    HttpError,
    ParallelToolCalls,
    Reasoning,
    RedactedReasoning,
    StreamError,
    Text,
    collect,
    message,
    of_type,
)
from tests.fakes import ToolCall as FakeToolCall
from tests.fakes import Usage as FakeUsage
from tests.support.waiting import until

API_KEY = "sk-ant-api03-SECRETSECRETSECRET-AAAA"
PNG_B64 = "iVBORw0KGgo="
PDF_B64 = "JVBERi0xLjQK"
WEATHER = ToolSpec(
    "get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}
)


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: AnthropicFake) -> None:
    fake.reset()
    fake.api_key = None


@pytest.fixture
async def provider(fake: AnthropicFake) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(api_key=API_KEY, base_url=fake.url, max_retries=0)
    yield provider
    await provider.aclose()


def ask(text: str = "Hi", **kwargs: Any) -> ModelRequest:
    return ModelRequest(model="claude-sonnet-4-6", messages=[message("user", text)], **kwargs)


# --------------------------------------------------------------------------- events


async def test_text_and_usage(fake: AnthropicFake, provider: AnthropicProvider) -> None:
    fake.enqueue([Text(["Hello", " there"]), FakeUsage(20, 5, cached_tokens=8)])

    events = await collect(provider.stream(ask()))

    opened = events[0]
    assert isinstance(opened, StreamOpened)
    assert opened.response_id is not None
    assert opened.response_id.startswith("msg_")
    assert opened.model == "claude-sonnet-4-6"
    start = events[1]
    assert isinstance(start, TextStart)
    assert events[2:] == [
        TextDelta(start.id, "Hello"),
        TextDelta(start.id, " there"),
        TextEnd(start.id),
        # input = uncached + cache reads; cached = cache reads
        StepFinished("stop", Usage(28, 5, None, 8), raw_finish_reason="end_turn"),
    ]
    request = fake.last_request
    sent_key = request.headers.get("x-api-key") or request.headers["authorization"][7:]
    assert sent_key == API_KEY
    assert request.path == "/v1/messages"
    assert request.body["max_tokens"] == 4096  # required by the API: the default


async def test_thinking_keeps_the_signature(
    fake: AnthropicFake, provider: AnthropicProvider
) -> None:
    fake.enqueue(
        [
            Reasoning(["Let me ", "think."], signature="EqQBCkYIBRgCKkA-signature"),
            RedactedReasoning("opaque-redacted"),
            Text("Answer."),
            FakeUsage(10, 30, reasoning_tokens=12),
        ]
    )

    events = await collect(provider.stream(ask()))

    starts = of_type(events, ReasoningStart)
    ends = of_type(events, ReasoningEnd)
    assert len(starts) == len(ends) == 2
    assert "".join(d.delta for d in of_type(events, ReasoningDelta)) == "Let me think."
    assert ends[0].provider_metadata == {"anthropic": {"signature": "EqQBCkYIBRgCKkA-signature"}}
    assert ends[1].provider_metadata == {"anthropic": {"redactedData": "opaque-redacted"}}
    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.usage.reasoning_tokens == 12


async def test_tool_use_input_streams(fake: AnthropicFake, provider: AnthropicProvider) -> None:
    fake.enqueue(
        [
            Text("Checking."),
            ParallelToolCalls(
                [
                    FakeToolCall("get_weather", ['{"city": ', '"Paris"}'], call_id="toolu_1"),
                    FakeToolCall("get_weather", '{"city": "Rome"}', call_id="toolu_2"),
                ]
            ),
        ]
    )

    events = await collect(provider.stream(ask(tools=[WEATHER])))

    assert of_type(events, ToolInputStart) == [
        ToolInputStart("toolu_1", "get_weather"),
        ToolInputStart("toolu_2", "get_weather"),
    ]
    # the API's empty first input piece is not passed on
    assert [(d.tool_call_id, d.delta) for d in of_type(events, ToolInputDelta)] == [
        ("toolu_1", '{"city": '),
        ("toolu_1", '"Paris"}'),
        ("toolu_2", '{"city": "Rome"}'),
    ]
    assert [(c.tool_call_id, c.input_text) for c in of_type(events, ToolCall)] == [
        ("toolu_1", '{"city": "Paris"}'),
        ("toolu_2", '{"city": "Rome"}'),
    ]
    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert (finished.finish_reason, finished.raw_finish_reason) == ("tool-calls", "tool_use")


async def test_tool_call_without_input_deltas(
    fake: AnthropicFake, provider: AnthropicProvider
) -> None:
    fake.enqueue([FakeToolCall("get_time", [], call_id="toolu_9")])

    events = await collect(provider.stream(ask()))

    (call,) = of_type(events, ToolCall)
    assert call.input_text == "{}"


async def test_citations_become_sources(fake: AnthropicFake, provider: AnthropicProvider) -> None:
    fake.enqueue(
        [
            Text("According to the page"),
            Citation("https://example.com/page", "The page"),
            Citation("https://example.com/page", "The page"),
            Citation(None, "report.txt", cited_text="42", document_index=0),
            Text(" it is 42."),
        ]
    )

    events = await collect(provider.stream(ask()))

    sources = of_type(events, Source)
    assert [(s.source_type, s.url, s.title) for s in sources] == [
        ("url", "https://example.com/page", "The page"),
        ("document", None, "report.txt"),
    ]
    assert sources[1].media_type == "text/plain"
    assert len(of_type(events, TextStart)) == 1  # citations stay in the text block


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content-filter"),
        ("tool_use", "tool-calls"),
        ("pause_turn", "stop"),  # as the AI SDK reports it
    ],
)
async def test_finish_reasons(
    fake: AnthropicFake, provider: AnthropicProvider, reason: str, expected: str
) -> None:
    fake.enqueue([Text("x"), Finish(reason)])

    events = await collect(provider.stream(ask()))

    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert (finished.finish_reason, finished.raw_finish_reason) == (expected, reason)


# --------------------------------------------------------------------------- request


def conversation() -> list[Any]:
    return [
        message("system", "Use metric units."),
        message(
            "user",
            {"type": "file", "mediaType": "image/png", "url": f"data:image/png;base64,{PNG_B64}"},
            {"type": "file", "mediaType": "image/jpeg", "url": "https://img.test/cat.jpg"},
            {
                "type": "file",
                "mediaType": "application/pdf",
                "url": f"data:application/pdf;base64,{PDF_B64}",
                "filename": "r.pdf",
            },
            {
                "type": "file",
                "mediaType": "text/plain",
                "url": "data:text/plain,hello%20world",
                "filename": "notes.txt",
            },
            "Weather in Paris and Berlin?",
        ),
        message("user", "Please hurry."),  # consecutive user messages are merged
        message(
            "assistant",
            {"type": "step-start"},
            {
                "type": "reasoning",
                "text": "Two cities.",
                "providerMetadata": {"anthropic": {"signature": "sig-1"}},
            },
            {"type": "reasoning", "text": "no signature: dropped"},
            {
                "type": "reasoning",
                "text": "",
                "providerMetadata": {"anthropic": {"redactedData": "redacted-1"}},
            },
            {"type": "text", "text": "Checking both."},
            {
                "type": "tool-get_weather",
                "toolCallId": "toolu_1",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": {"temp": 21},
            },
            {
                "type": "tool-get_weather",
                "toolCallId": "toolu_2",
                "state": "output-error",
                "input": {"city": "Berlin"},
                "errorText": "service down",
            },
            {
                "type": "tool-get_weather",
                "toolCallId": "toolu_3",
                "state": "input-available",
                "input": {"city": "Oslo"},
            },  # no result yet: not sent
            {"type": "step-start"},
            {"type": "text", "text": "Paris is 21°C."},
            {
                "type": "tool-delete_file",
                "toolCallId": "toolu_4",
                "state": "output-denied",
                "input": {"path": "a.txt"},
                "approval": {"id": "ap1", "approved": False},
            },
        ),
    ]


async def test_multi_turn_conversation_is_converted(
    fake: AnthropicFake, provider: AnthropicProvider
) -> None:
    request = ModelRequest(
        model="claude-sonnet-4-6",
        messages=conversation(),
        system="Be brief.",
        tools=[WEATHER],
        max_output_tokens=1000,
        temperature=0.3,
    )
    await collect(provider.stream(request))

    body = fake.last_request.body
    assert body["system"] == "Be brief.\n\nUse metric units."
    assert body["max_tokens"] == 1000
    assert body["temperature"] == 0.3
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather", "input_schema": WEATHER.input_schema}
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                },
                {"type": "image", "source": {"type": "url", "url": "https://img.test/cat.jpg"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
                },
                {
                    "type": "document",
                    "title": "notes.txt",
                    "source": {"type": "text", "media_type": "text/plain", "data": "hello world"},
                },
                {"type": "text", "text": "Weather in Paris and Berlin?"},
                {"type": "text", "text": "Please hurry."},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two cities.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "redacted-1"},
                {"type": "text", "text": "Checking both."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Berlin"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"temp":21}'},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "service down",
                    "is_error": True,
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Paris is 21°C."},
                {
                    "type": "tool_use",
                    "id": "toolu_4",
                    "name": "delete_file",
                    "input": {"path": "a.txt"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_4",
                    "content": "The user denied this tool call.",
                    "is_error": True,
                },
            ],
        },
    ]


async def test_final_assistant_text_loses_trailing_whitespace(
    fake: AnthropicFake, provider: AnthropicProvider
) -> None:
    messages = [message("user", "Hi"), message("assistant", "Hello   \n")]
    await collect(provider.stream(ModelRequest(model="claude", messages=messages)))

    assert fake.last_request.body["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello"}],
    }


async def test_thinking_budget(fake: AnthropicFake) -> None:
    provider = AnthropicProvider(
        api_key=API_KEY, base_url=fake.url, max_retries=0, thinking_budget=2048
    )
    try:
        await collect(provider.stream(ask(temperature=0.7, max_output_tokens=1000)))
    finally:
        await provider.aclose()

    body = fake.last_request.body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 3048
    assert "temperature" not in body  # not allowed with thinking


# --------------------------------------------------------------------------- errors


async def test_bad_key(fake: AnthropicFake, provider: AnthropicProvider) -> None:
    fake.api_key = "sk-ant-the-right-one"

    with pytest.raises(ProviderAuthError) as caught:
        await collect(provider.stream(ask()))

    assert caught.value.upstream_status == 401
    assert API_KEY not in caught.value.message
    assert "invalid x-api-key" in caught.value.message


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, ProviderRateLimited),
        (500, ProviderUnavailable),
        (529, ProviderUnavailable),
        (400, ProviderBadRequest),
        (403, ProviderAuthError),
    ],
)
async def test_http_errors(
    fake: AnthropicFake, provider: AnthropicProvider, status: int, error: type[ProviderError]
) -> None:
    fake.enqueue([HttpError(status)])

    with pytest.raises(error) as caught:
        await collect(provider.stream(ask()))

    assert type(caught.value) is error
    assert caught.value.upstream_status == status


async def test_error_event_mid_stream(fake: AnthropicFake, provider: AnthropicProvider) -> None:
    fake.enqueue([Text("Partial"), StreamError("Overloaded", "overloaded_error")])
    events: list[Any] = []

    with pytest.raises(ProviderUnavailable, match="Overloaded"):
        await collect(provider.stream(ask()), into=events)

    assert isinstance(events[0], StreamOpened)
    assert of_type(events, TextDelta)


async def test_stream_cut_before_message_stop(
    fake: AnthropicFake, provider: AnthropicProvider
) -> None:
    fake.enqueue([Text("Partial"), Hang()])
    stream = provider.stream(ask())
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    fake.stop()  # the server goes away mid-stream
    try:
        with pytest.raises(ProviderError):
            async for _ in stream:
                pass
    finally:
        url = fake.url
        fake.start()
        assert fake.url == url


# --------------------------------------------------------------------------- cancellation


async def test_stop_closes_the_upstream_stream(
    fake: AnthropicFake, provider: AnthropicProvider
) -> None:
    fake.enqueue([Reasoning("Hmm"), Text("Hello"), Hang()])
    stream = provider.stream(ask())

    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()

    assert await fake.wait_for_disconnect()
    assert fake.completed == 0


async def test_cancelled_task_closes_the_upstream_stream(
    fake: AnthropicFake, provider: AnthropicProvider
) -> None:
    fake.enqueue([Text("Hello"), Hang()])
    task = asyncio.create_task(collect(provider.stream(ask())))
    await until(lambda: fake.requests, 5, "the request reaching the fake")
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fake.wait_for_disconnect()
