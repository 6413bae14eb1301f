"""`openai:` (Responses API) driven through the real `openai` SDK against the fake server."""

from __future__ import annotations

import asyncio
import json
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
from bridge.providers._errors import redact
from bridge.providers._files import parse_data_url
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
from bridge.providers.openai_responses import OpenAIResponsesProvider, is_reasoning_model
from tests.fakes import (
    Citation,
    Finish,
    Hang,
    HttpError,
    OpenAIFake,
    ParallelToolCalls,
    Reasoning,
    ResponseFailed,
    StreamError,
    Text,
    collect,
    message,
    of_type,
)
from tests.fakes import ToolCall as FakeToolCall
from tests.fakes import Usage as FakeUsage

API_KEY = "sk-proj-SECRETSECRETSECRET1234"
PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0xLjQK"
WEATHER = ToolSpec(
    "get_weather",
    "Current weather of a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(scope="module")
def fake() -> Iterator[OpenAIFake]:
    with OpenAIFake() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: OpenAIFake) -> None:
    fake.reset()
    fake.api_key = None


@pytest.fixture
async def provider(fake: OpenAIFake) -> AsyncIterator[OpenAIResponsesProvider]:
    provider = OpenAIResponsesProvider(
        api_key=API_KEY, base_url=fake.base_url, max_retries=0, timeout=10
    )
    yield provider
    await provider.aclose()


def ask(text: str = "Hi", model: str = "gpt-4.1-mini", **kwargs: Any) -> ModelRequest:
    return ModelRequest(model=model, messages=[message("user", text)], **kwargs)


# --------------------------------------------------------------------------- events


async def test_text_stream(fake: OpenAIFake, provider: OpenAIResponsesProvider) -> None:
    fake.enqueue([Text(["Hello", ", ", "world"]), FakeUsage(input_tokens=9, output_tokens=3)])

    events = await collect(provider.stream(ask()))

    opened = events[0]
    assert isinstance(opened, StreamOpened)
    assert opened.response_id is not None
    assert opened.response_id.startswith("resp_")
    start = events[1]
    assert isinstance(start, TextStart)
    assert events[2:5] == [
        TextDelta(start.id, "Hello"),
        TextDelta(start.id, ", "),
        TextDelta(start.id, "world"),
    ]
    assert events[5] == TextEnd(start.id, provider_metadata={"openai": {"itemId": start.id}})
    finished = events[6]
    assert isinstance(finished, StepFinished)
    assert finished.finish_reason == "stop"
    assert finished.usage == Usage(9, 3, 0, 0)
    assert len(events) == 7
    assert fake.last_request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_reasoning_summary_parts_keep_item_id_and_encrypted_content(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    fake.enqueue(
        [
            Reasoning("First part."),
            Reasoning("Second part.", continues=True, encrypted_content="gAAA-encrypted"),
            Text("Answer."),
        ]
    )

    events = await collect(provider.stream(ask(model="o4-mini")))

    starts = of_type(events, ReasoningStart)
    ends = of_type(events, ReasoningEnd)
    item_id = starts[0].id.split(":")[0]
    assert [s.id for s in starts] == [f"{item_id}:0", f"{item_id}:1"]
    assert "".join(d.delta for d in of_type(events, ReasoningDelta)) == "First part.Second part."
    assert ends[0].provider_metadata == {"openai": {"itemId": item_id}}
    assert ends[1].provider_metadata == {
        "openai": {"itemId": item_id, "encryptedContent": "gAAA-encrypted"}
    }
    # the first block ends before the second starts
    assert events.index(ends[0]) < events.index(starts[1])
    assert fake.last_request.body["reasoning"] == {"summary": "auto"}


async def test_reasoning_and_temperature_depend_on_the_model(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    await collect(provider.stream(ask(model="gpt-4.1-mini", temperature=0.2)))
    await collect(provider.stream(ask(model="gpt-5-mini", temperature=0.2)))

    plain, reasoning = (r.body for r in fake.requests)
    assert plain["temperature"] == 0.2
    assert "reasoning" not in plain
    assert reasoning["reasoning"] == {"summary": "auto"}
    assert "temperature" not in reasoning  # reasoning models reject it
    assert is_reasoning_model("o3")
    assert is_reasoning_model("gpt-5")
    assert not is_reasoning_model("gpt-5-chat-latest")
    assert not is_reasoning_model("gpt-4o")


async def test_tool_call_input_streams(fake: OpenAIFake, provider: OpenAIResponsesProvider) -> None:
    fake.enqueue([FakeToolCall("get_weather", ['{"ci', 'ty": "Pa', 'ris"}'], call_id="call_1")])

    events = await collect(provider.stream(ask(tools=[WEATHER])))

    assert of_type(events, ToolInputStart) == [ToolInputStart("call_1", "get_weather")]
    assert [d.delta for d in of_type(events, ToolInputDelta)] == ['{"ci', 'ty": "Pa', 'ris"}']
    (call,) = of_type(events, ToolCall)
    assert (call.tool_call_id, call.tool_name, call.input_text) == (
        "call_1",
        "get_weather",
        '{"city": "Paris"}',
    )
    assert call.provider_metadata is not None
    assert call.provider_metadata["openai"]["itemId"].startswith("fc_")
    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.finish_reason == "tool-calls"
    assert events.index(call) < len(events) - 1


async def test_parallel_tool_calls(fake: OpenAIFake, provider: OpenAIResponsesProvider) -> None:
    fake.enqueue(
        [
            Text("Checking both."),
            ParallelToolCalls(
                [
                    FakeToolCall("get_weather", '{"city":"Paris"}', call_id="c1"),
                    FakeToolCall("get_weather", '{"city":"Berlin"}', call_id="c2"),
                ]
            ),
        ]
    )

    events = await collect(provider.stream(ask(tools=[WEATHER])))

    calls = of_type(events, ToolCall)
    assert [(c.tool_call_id, c.input_text) for c in calls] == [
        ("c1", '{"city":"Paris"}'),
        ("c2", '{"city":"Berlin"}'),
    ]
    assert of_type(events, TextEnd)  # the text block was closed
    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.finish_reason == "tool-calls"


async def test_url_citations_become_sources(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    fake.enqueue(
        [
            Text("See the docs."),
            Citation("https://example.com/a", "Page A"),
            Citation("https://example.com/a", "Page A"),  # cited twice: one source
            Citation("https://example.com/b", "Page B"),
        ]
    )

    events = await collect(provider.stream(ask()))

    sources = of_type(events, Source)
    assert [(s.source_type, s.url, s.title) for s in sources] == [
        ("url", "https://example.com/a", "Page A"),
        ("url", "https://example.com/b", "Page B"),
    ]
    assert len({s.id for s in sources}) == 2


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("max_output_tokens", "length"), ("content_filter", "content-filter")],
)
async def test_incomplete_finish_reasons(
    fake: OpenAIFake, provider: OpenAIResponsesProvider, reason: str, expected: str
) -> None:
    fake.enqueue([Text("Partial"), Finish(reason), FakeUsage(input_tokens=4, output_tokens=1)])

    events = await collect(provider.stream(ask()))

    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert (finished.finish_reason, finished.raw_finish_reason) == (expected, reason)
    assert finished.usage.input_tokens == 4
    assert of_type(events, TextEnd)


async def test_usage_with_reasoning_and_cached_tokens(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    fake.enqueue([Text("x"), FakeUsage(100, 50, reasoning_tokens=30, cached_tokens=64)])

    events = await collect(provider.stream(ask()))

    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.usage == Usage(100, 50, 30, 64)
    assert finished.usage.total_tokens == 150


# --------------------------------------------------------------------------- request


def conversation() -> list[Any]:
    return [
        message(
            "user",
            {"type": "file", "mediaType": "image/png", "url": PNG},
            {"type": "file", "mediaType": "application/pdf", "url": PDF, "filename": "r.pdf"},
            {"type": "file", "mediaType": "image/jpeg", "url": "https://img.test/cat.jpg"},
            "Weather in Paris and Berlin?",
            message_id="u1",
        ),
        message(
            "assistant",
            {"type": "step-start"},
            {
                "type": "reasoning",
                "text": "Two cities.",
                "providerMetadata": {"openai": {"itemId": "rs_1"}},
            },
            {
                "type": "tool-get_weather",
                "toolCallId": "call_1",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": {"temp": 21},
                "callProviderMetadata": {"openai": {"itemId": "fc_1"}},
            },
            {
                "type": "tool-get_weather",
                "toolCallId": "call_2",
                "state": "output-error",
                "input": {"city": "Berlin"},
                "errorText": "service down",
            },
            {"type": "step-start"},
            {
                "type": "text",
                "text": "Paris: 21°C. Berlin failed.",
                "providerMetadata": {"openai": {"itemId": "msg_1"}},
            },
            message_id="a1",
        ),
        message("user", "Delete notes.txt, old.txt and x.txt", message_id="u2"),
        message(
            "assistant",
            {"type": "step-start"},
            {
                "type": "tool-delete_file",
                "toolCallId": "call_3",
                "state": "output-denied",
                "input": {"path": "notes.txt"},
                "approval": {"id": "ap1", "approved": False, "reason": "keep it"},
            },
            {
                "type": "tool-delete_file",
                "toolCallId": "call_4",
                "state": "approval-responded",
                "input": {"path": "old.txt"},
                "approval": {"id": "ap2", "approved": True},
            },
            {
                "type": "dynamic-tool",
                "toolName": "delete_file",
                "toolCallId": "call_5",
                "state": "approval-responded",
                "input": {"path": "x.txt"},
                "approval": {"id": "ap3", "approved": False},
            },
            {"type": "data-progress", "data": {"done": 1}},
            message_id="a2",
        ),
    ]


async def test_multi_turn_conversation_is_converted(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    request = ModelRequest(
        model="gpt-4.1",
        messages=conversation(),
        system="Be brief.",
        tools=[WEATHER],
        max_output_tokens=321,
        temperature=0.5,
    )
    await collect(provider.stream(request))

    body = fake.last_request.body
    assert body["model"] == "gpt-4.1"
    assert body["stream"] is True
    assert body["instructions"] == "Be brief."
    assert body["max_output_tokens"] == 321
    assert body["temperature"] == 0.5
    assert body["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": WEATHER.input_schema,
            "strict": False,
        }
    ]
    assert body["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_image", "image_url": PNG, "detail": "auto"},
                {"type": "input_file", "filename": "r.pdf", "file_data": PDF},
                {"type": "input_image", "image_url": "https://img.test/cat.jpg", "detail": "auto"},
                {"type": "input_text", "text": "Weather in Paris and Berlin?"},
            ],
        },
        # step 1: reasoning (kept: the call after it has its item id), calls, then outputs
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Two cities."}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
            "id": "fc_1",
        },
        {
            "type": "function_call",
            "call_id": "call_2",
            "name": "get_weather",
            "arguments": '{"city":"Berlin"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temp":21}'},
        {"type": "function_call_output", "call_id": "call_2", "output": "service down"},
        # step 2
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "Paris: 21°C. Berlin failed.", "annotations": []}
            ],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Delete notes.txt, old.txt and x.txt"}],
        },
        # denied calls are answered; the approved one (not executed yet) is not sent
        {
            "type": "function_call",
            "call_id": "call_3",
            "name": "delete_file",
            "arguments": '{"path":"notes.txt"}',
        },
        {
            "type": "function_call",
            "call_id": "call_5",
            "name": "delete_file",
            "arguments": '{"path":"x.txt"}',
        },
        {
            "type": "function_call_output",
            "call_id": "call_3",
            "output": "The user denied this tool call. Reason: keep it",
        },
        {
            "type": "function_call_output",
            "call_id": "call_5",
            "output": "The user denied this tool call.",
        },
    ]


async def test_reasoning_without_its_following_item_id_is_dropped(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    messages = [
        message("user", "Hi"),
        message(
            "assistant",
            {"type": "step-start"},
            {
                "type": "reasoning",
                "text": "hmm",
                "providerMetadata": {"openai": {"itemId": "rs_9"}},
            },
            {"type": "text", "text": "Hello!"},  # no item id kept
            {
                "type": "reasoning",
                "text": "from Claude",
                "providerMetadata": {"anthropic": {"signature": "sig"}},
            },
        ),
        message("user", "And?"),
    ]
    await collect(provider.stream(ModelRequest(model="o4-mini", messages=messages)))

    assert fake.last_request.body["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"type": "message", "role": "assistant", "content": "Hello!"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "And?"}]},
    ]


async def test_text_file_and_unsupported_file(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    messages = [
        message(
            "user",
            {
                "type": "file",
                "mediaType": "text/plain",
                "url": "data:text/plain;base64,aGVsbG8=",
                "filename": "a.txt",
            },
            {
                "type": "file",
                "mediaType": "application/zip",
                "url": "data:application/zip;base64,UEs=",
                "filename": "b.zip",
            },
            "Read these",
        )
    ]
    await collect(provider.stream(ModelRequest(model="gpt-4.1", messages=messages)))

    content = fake.last_request.body["input"][0]["content"]
    assert content[0] == {"type": "input_text", "text": "[file a.txt (text/plain)]\nhello"}
    assert content[1]["type"] == "input_text"
    assert "b.zip" in content[1]["text"]
    assert "omitted" in content[1]["text"]


# --------------------------------------------------------------------------- errors


async def test_bad_key_is_an_auth_error_without_the_key(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    fake.api_key = "sk-the-right-key-0000"

    with pytest.raises(ProviderAuthError) as caught:
        await collect(provider.stream(ask()))

    assert caught.value.upstream_status == 401
    assert caught.value.provider == "openai"
    text = str(caught.value) + caught.value.message
    assert API_KEY not in text
    assert API_KEY[:12] not in text
    assert API_KEY[-4:] not in text
    assert "Incorrect API key" in text


async def test_error_quoting_the_full_key_is_redacted(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    fake.enqueue([HttpError(400, f"Key {API_KEY} cannot use this model")])

    with pytest.raises(ProviderBadRequest) as caught:
        await collect(provider.stream(ask()))

    assert API_KEY not in caught.value.message
    assert "[redacted]" in caught.value.message


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, ProviderRateLimited),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (404, ProviderBadRequest),
        (403, ProviderAuthError),
    ],
)
async def test_http_errors_map_to_provider_errors(
    fake: OpenAIFake, provider: OpenAIResponsesProvider, status: int, error: type[ProviderError]
) -> None:
    fake.enqueue([HttpError(status)])

    with pytest.raises(error) as caught:
        await collect(provider.stream(ask()))

    assert caught.value.upstream_status == status
    assert type(caught.value) is error


async def test_retries_follow_the_sdk_setting(fake: OpenAIFake) -> None:
    fake.enqueue([HttpError(500, headers={"retry-after-ms": "1"})])
    provider = OpenAIResponsesProvider(api_key=API_KEY, base_url=fake.base_url, max_retries=1)
    try:
        events = await collect(provider.stream(ask()))
    finally:
        await provider.aclose()

    assert len(fake.requests) == 2  # the 500, then the retry got the default answer
    assert of_type(events, TextDelta)


async def test_error_event_mid_stream(fake: OpenAIFake, provider: OpenAIResponsesProvider) -> None:
    fake.enqueue([Text("Partial"), StreamError("upstream exploded", "server_error")])
    events: list[Any] = []

    with pytest.raises(ProviderUnavailable) as caught:
        await collect(provider.stream(ask()), into=events)

    assert isinstance(events[0], StreamOpened)
    assert of_type(events, TextDelta)
    assert "upstream exploded" in caught.value.message


async def test_response_failed(fake: OpenAIFake, provider: OpenAIResponsesProvider) -> None:
    fake.enqueue([Text("a"), ResponseFailed("rate limited upstream", "rate_limit_exceeded")])

    with pytest.raises(ProviderRateLimited, match="rate limited upstream"):
        await collect(provider.stream(ask()))


# --------------------------------------------------------------------------- cancellation


async def test_aclose_closes_the_upstream_stream(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    fake.enqueue([Text("Hello"), Hang()])
    stream = provider.stream(ask())

    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()

    assert await fake.wait_for_disconnect()
    assert fake.disconnects == 1


async def test_cancelling_the_consumer_closes_the_upstream_stream(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    fake.enqueue([Text("Hello"), Hang()])
    got_text = asyncio.Event()

    async def consume() -> None:
        async for event in provider.stream(ask()):
            if isinstance(event, TextDelta):
                got_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_text.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await fake.wait_for_disconnect()


async def test_whole_stream_timeout(fake: OpenAIFake) -> None:
    # Tokens keep coming (no read ever times out) but the whole stream takes too long.
    fake.enqueue([Text(["tick "] * 50)], token_delay=0.05)
    provider = OpenAIResponsesProvider(
        api_key=API_KEY, base_url=fake.base_url, max_retries=0, timeout=0.5
    )
    try:
        with pytest.raises(ProviderUnavailable, match=r"did not finish within 0\.5 s"):
            await collect(provider.stream(ask()))
    finally:
        await provider.aclose()
    assert await fake.wait_for_disconnect()


async def test_many_tokens_stream_in_order(
    fake: OpenAIFake, provider: OpenAIResponsesProvider
) -> None:
    pieces = [f"t{i} " for i in range(3000)]
    fake.enqueue([Text(pieces)])

    events = await collect(provider.stream(ask()))

    assert "".join(d.delta for d in of_type(events, TextDelta)) == "".join(pieces)
    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.usage.output_tokens == 3000


def test_tool_schema_is_sent_unchanged() -> None:
    from bridge.providers.openai_responses import to_tool

    assert json.loads(json.dumps(to_tool(WEATHER)))["parameters"] == WEATHER.input_schema


# --------------------------------------------------------------------------- shared helpers


@pytest.mark.parametrize(
    ("url", "media_type", "data"),
    [
        ("data:image/png;base64,iVBORw0KGgo=", "image/png", "iVBORw0KGgo="),
        ("data:text/plain,hello%20world", "text/plain", "aGVsbG8gd29ybGQ="),
        ("data:;base64,aGk=", "text/plain", "aGk="),
        ("data:Text/Plain;charset=utf-8;base64,aGk=", "text/plain", "aGk="),
    ],
)
def test_parse_data_url(url: str, media_type: str, data: str) -> None:
    parsed = parse_data_url(url)

    assert parsed is not None
    assert (parsed.media_type, parsed.data) == (media_type, data)


def test_parse_data_url_rejects_other_urls() -> None:
    assert parse_data_url("https://example.com/a.png") is None
    assert parse_data_url("data:image/png;base64") is None


def test_redact() -> None:
    text = "key sk-proj-abc123DEF456 and sk-ant-api03-xyz***9876, custom s3cr3t-value"

    redacted = redact(text, ["s3cr3t-value"])

    assert "abc123" not in redacted
    assert "9876" not in redacted
    assert "s3cr3t" not in redacted
    assert redacted.count("[redacted]") == 3
