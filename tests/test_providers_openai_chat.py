"""`openai-chat:` (Chat Completions, OpenAI-compatible servers) through the real `openai`
SDK against the fake server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited, ProviderUnavailable
from bridge.providers.base import (
    ModelRequest,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
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
from bridge.providers.openai_chat import OpenAIChatProvider
from tests.fakes import (
    Finish,
    Hang,
    HttpError,
    OpenAIFake,
    ParallelToolCalls,
    Reasoning,
    StreamError,
    Text,
    collect,
    message,
    of_type,
)
from tests.fakes import ToolCall as FakeToolCall
from tests.fakes import Usage as FakeUsage
from tests.support.waiting import until

API_KEY = "gsk_local-SECRETSECRETSECRET"
PNG = "data:image/png;base64,iVBORw0KGgo="
WEATHER = ToolSpec("get_weather", "Weather", {"type": "object", "properties": {}})


@pytest.fixture(scope="module")
def fake() -> Iterator[OpenAIFake]:
    with OpenAIFake() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: OpenAIFake) -> None:
    fake.reset()
    fake.api_key = None
    fake.chat_reasoning_field = "reasoning_content"


@pytest.fixture
async def provider(fake: OpenAIFake) -> AsyncIterator[OpenAIChatProvider]:
    provider = OpenAIChatProvider(api_key=API_KEY, base_url=fake.base_url, max_retries=0)
    yield provider
    await provider.aclose()


def ask(text: str = "Hi", **kwargs: Any) -> ModelRequest:
    return ModelRequest(model="llama3.2", messages=[message("user", text)], **kwargs)


async def test_text_and_usage(fake: OpenAIFake, provider: OpenAIChatProvider) -> None:
    fake.enqueue([Text(["Hel", "lo"]), FakeUsage(7, 2, reasoning_tokens=0, cached_tokens=3)])

    events = await collect(provider.stream(ask()))

    assert isinstance(events[0], StreamOpened)
    assert events[0].model == "llama3.2"
    start = events[1]
    assert isinstance(start, TextStart)
    assert events[2:] == [
        TextDelta(start.id, "Hel"),
        TextDelta(start.id, "lo"),
        TextEnd(start.id),
        StepFinished("stop", Usage(7, 2, 0, 3), raw_finish_reason="stop"),
    ]
    body = fake.last_request.body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert fake.last_request.path == "/v1/chat/completions"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_fields(fake: OpenAIFake, provider: OpenAIChatProvider, field: str) -> None:
    fake.chat_reasoning_field = field
    fake.enqueue([Reasoning(["Think", "ing"]), Text("Done")])

    events = await collect(provider.stream(ask()))

    (start,) = of_type(events, ReasoningStart)
    assert [d.delta for d in of_type(events, ReasoningDelta)] == ["Think", "ing"]
    (end,) = of_type(events, ReasoningEnd)
    # reasoning ends before the text starts
    assert events.index(end) < events.index(of_type(events, TextStart)[0])
    assert start.id == end.id


async def test_parallel_tool_calls_by_index(fake: OpenAIFake, provider: OpenAIChatProvider) -> None:
    fake.enqueue(
        [
            Text("Let me look."),
            ParallelToolCalls(
                [
                    FakeToolCall("get_weather", ['{"city":', '"Paris"}'], call_id="call_a"),
                    FakeToolCall("get_weather", ['{"city":', '"Rome"}'], call_id="call_b"),
                ]
            ),
        ]
    )

    events = await collect(provider.stream(ask(tools=[WEATHER])))

    assert of_type(events, ToolInputStart) == [
        ToolInputStart("call_a", "get_weather"),
        ToolInputStart("call_b", "get_weather"),
    ]
    deltas = [(d.tool_call_id, d.delta) for d in of_type(events, ToolInputDelta)]
    # interleaved on the wire, attributed to the right call
    assert deltas == [
        ("call_a", '{"city":'),
        ("call_b", '{"city":'),
        ("call_a", '"Paris"}'),
        ("call_b", '"Rome"}'),
    ]
    assert [(c.tool_call_id, c.input_text) for c in of_type(events, ToolCall)] == [
        ("call_a", '{"city":"Paris"}'),
        ("call_b", '{"city":"Rome"}'),
    ]
    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.finish_reason == "tool-calls"


async def test_tool_call_reported_with_stop_is_still_tool_calls(
    fake: OpenAIFake, provider: OpenAIChatProvider
) -> None:
    # Ollama answers tool calls with finish_reason "stop".
    fake.enqueue([FakeToolCall("get_weather", '{"city":"Oslo"}', call_id="c1"), Finish("stop")])

    events = await collect(provider.stream(ask(tools=[WEATHER])))

    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert (finished.finish_reason, finished.raw_finish_reason) == ("tool-calls", "stop")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("length", "length"),
        ("content_filter", "content-filter"),
        ("stop", "stop"),
        ("weird", "other"),
    ],
)
async def test_finish_reasons(
    fake: OpenAIFake, provider: OpenAIChatProvider, reason: str, expected: str
) -> None:
    fake.enqueue([Text("x"), Finish(reason)])

    events = await collect(provider.stream(ask()))

    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.finish_reason == expected


async def test_conversation_with_tools_images_and_system(
    fake: OpenAIFake, provider: OpenAIChatProvider
) -> None:
    messages = [
        message("system", "Extra rules."),
        message("user", {"type": "file", "mediaType": "image/png", "url": PNG}, "What is this?"),
        message(
            "assistant",
            {"type": "step-start"},
            {"type": "reasoning", "text": "not sent back"},
            {"type": "text", "text": "Checking."},
            {
                "type": "tool-get_weather",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": "sunny",
            },
            {
                "type": "tool-get_weather",
                "toolCallId": "c2",
                "state": "output-error",
                "input": {"city": "Nowhere"},
                "errorText": "unknown city",
            },
            {"type": "step-start"},
            {"type": "text", "text": "Sunny in Paris."},
        ),
        message("user", "Thanks"),
    ]
    request = ModelRequest(
        model="llama3.2",
        messages=messages,
        system="Be kind.",
        tools=[WEATHER],
        max_output_tokens=99,
        temperature=0.1,
    )
    await collect(provider.stream(request))

    body = fake.last_request.body
    assert body["max_tokens"] == 99
    assert body["temperature"] == 0.1
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": WEATHER.input_schema,
            },
        }
    ]
    assert body["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "system", "content": "Extra rules."},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "text", "text": "What is this?"},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Nowhere"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "unknown city"},
        {"role": "assistant", "content": "Sunny in Paris."},
        {"role": "user", "content": "Thanks"},
    ]


async def test_no_tools_and_no_limits_are_omitted(
    fake: OpenAIFake, provider: OpenAIChatProvider
) -> None:
    await collect(provider.stream(ask()))

    body = fake.last_request.body
    assert "tools" not in body
    assert "max_tokens" not in body
    assert "temperature" not in body


async def test_bad_key(fake: OpenAIFake, provider: OpenAIChatProvider) -> None:
    fake.api_key = "another-key-entirely"

    with pytest.raises(ProviderAuthError) as caught:
        await collect(provider.stream(ask()))

    assert API_KEY not in caught.value.message
    assert API_KEY[-4:] not in caught.value.message


@pytest.mark.parametrize(
    ("status", "error"), [(429, ProviderRateLimited), (500, ProviderUnavailable)]
)
async def test_http_errors(
    fake: OpenAIFake, provider: OpenAIChatProvider, status: int, error: type[ProviderError]
) -> None:
    fake.enqueue([HttpError(status)])

    with pytest.raises(error):
        await collect(provider.stream(ask()))


async def test_error_inside_the_stream(fake: OpenAIFake, provider: OpenAIChatProvider) -> None:
    fake.enqueue([Text("Par"), StreamError("model crashed", "server_error")])
    events: list[Any] = []

    with pytest.raises(ProviderError, match="model crashed"):
        await collect(provider.stream(ask()), into=events)

    assert of_type(events, TextDelta)


async def test_stop_closes_the_upstream_stream(
    fake: OpenAIFake, provider: OpenAIChatProvider
) -> None:
    fake.enqueue([Text("Hello"), Hang()])
    stream = provider.stream(ask())

    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()

    assert await fake.wait_for_disconnect()


async def test_cancel_while_waiting_for_tokens(
    fake: OpenAIFake, provider: OpenAIChatProvider
) -> None:
    fake.enqueue([Hang()])
    task = asyncio.create_task(collect(provider.stream(ask())))
    await until(lambda: fake.requests, 5, "the request reaching the fake")

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fake.wait_for_disconnect()
