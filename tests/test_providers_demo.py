"""The scripted `demo:` provider."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from bridge.providers.base import (
    ModelRequest,
    ReasoningDelta,
    ReasoningStart,
    Source,
    StepFinished,
    StreamOpened,
    TextDelta,
    TextStart,
    ToolCall,
    ToolInputDelta,
    ToolInputStart,
    ToolSpec,
)
from bridge.providers.demo import LONG_ANSWER, DemoProvider, example_input, plan_reply
from bridge.settings import Settings
from protocol.messages import FileUIPart, TextUIPart, UIMessage
from tests.fakes import collect, message, of_type

WEATHER = ToolSpec(
    "get_weather",
    "Weather",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
DELETE = ToolSpec(
    "delete_file",
    "Delete a file",
    {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)


def provider() -> DemoProvider:
    return DemoProvider(token_delay=0)


def ask(text: str, tools: tuple[ToolSpec, ...] = (), history: tuple[Any, ...] = ()) -> ModelRequest:
    return ModelRequest(model="scripted", messages=[*history, message("user", text)], tools=tools)


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in of_type(events, TextDelta))


async def test_plain_answer_is_labelled_and_streamed_token_by_token() -> None:
    events = await collect(provider().stream(ask("Hello there")))

    assert isinstance(events[0], StreamOpened)
    assert isinstance(events[1], ReasoningStart)
    assert of_type(events, ReasoningDelta)
    text = text_of(events)
    assert "Demo model" in text
    assert "Hello there" in text
    deltas = of_type(events, TextDelta)
    assert len(deltas) > 10  # one word per delta
    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.finish_reason == "stop"
    assert finished.usage.output_tokens == len(deltas) + len(of_type(events, ReasoningDelta))
    assert not of_type(events, Source)


async def test_long_answer() -> None:
    events = await collect(provider().stream(ask("Write something long please")))

    deltas = of_type(events, TextDelta)
    assert 350 <= len(deltas) <= 500
    assert text_of(events).count("\n\n") >= 5  # several paragraphs


async def test_sources() -> None:
    events = await collect(provider().stream(ask("Answer with sources")))

    (source,) = of_type(events, Source)
    assert source.source_type == "url"
    assert source.url is not None
    assert source.url.startswith("https://")


async def test_weather_tool_round_trip() -> None:
    events = await collect(provider().stream(ask("What's the weather in Berlin?", (WEATHER,))))

    (start,) = of_type(events, ToolInputStart)
    (call,) = of_type(events, ToolCall)
    assert start == ToolInputStart(call.tool_call_id, "get_weather")
    assert "".join(d.delta for d in of_type(events, ToolInputDelta)) == call.input_text
    assert json.loads(call.input_text) == {"city": "Berlin"}
    assert not of_type(events, TextStart)
    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.finish_reason == "tool-calls"

    # the runner executed it; the in-progress assistant message carries the output
    assistant = message(
        "assistant",
        {"type": "step-start"},
        {
            "type": "tool-get_weather",
            "toolCallId": call.tool_call_id,
            "state": "output-available",
            "input": {"city": "Berlin"},
            "output": {"temperature": 18, "conditions": "cloudy"},
        },
    )
    request = ask("What's the weather in Berlin?", (WEATHER,))
    follow_up = ModelRequest(
        model="scripted", messages=[*request.messages, assistant], tools=(WEATHER,)
    )
    events = await collect(provider().stream(follow_up))

    text = text_of(events)
    assert "get_weather" in text
    assert "cloudy" in text
    assert not of_type(events, ToolCall)
    finished = events[-1]
    assert isinstance(finished, StepFinished)
    assert finished.finish_reason == "stop"


async def test_delete_tool_and_denial() -> None:
    events = await collect(provider().stream(ask("Please delete notes.txt", (DELETE,))))

    (call,) = of_type(events, ToolCall)
    assert (call.tool_name, json.loads(call.input_text)) == ("delete_file", {"path": "notes.txt"})

    denied = message(
        "assistant",
        {"type": "step-start"},
        {
            "type": "tool-delete_file",
            "toolCallId": call.tool_call_id,
            "state": "output-denied",
            "input": {"path": "notes.txt"},
            "approval": {"id": "a1", "approved": False},
        },
    )
    events = await collect(
        provider().stream(
            ModelRequest(
                model="s",
                messages=[message("user", "Please delete notes.txt"), denied],
                tools=(DELETE,),
            )
        )
    )

    assert "did not run" in text_of(events)
    assert "denied" in text_of(events)


async def test_use_any_tool_with_an_input_from_its_schema() -> None:
    tool = ToolSpec(
        "lookup_order",
        "Find an order",
        {
            "type": "object",
            "properties": {
                "order_id": {"type": "integer"},
                "region": {"type": "string", "enum": ["eu", "us"]},
                "express": {"type": "boolean"},
                "note": {"type": "string"},
                "optional": {"type": "string"},
            },
            "required": ["order_id", "region", "express", "note"],
        },
    )

    events = await collect(provider().stream(ask('Please use lookup_order for "urgent"', (tool,))))

    (call,) = of_type(events, ToolCall)
    assert call.tool_name == "lookup_order"
    assert json.loads(call.input_text) == {
        "order_id": 1,
        "region": "eu",
        "express": True,
        "note": "urgent",
    }


async def test_use_a_tool_without_schema_sends_an_empty_object() -> None:
    tool = ToolSpec("ping", "Ping", {"type": "object"})

    events = await collect(provider().stream(ask("use ping", (tool,))))

    (call,) = of_type(events, ToolCall)
    assert call.input_text == "{}"


async def test_tools_not_offered_are_not_called() -> None:
    events = await collect(provider().stream(ask("What's the weather? use delete_file")))

    assert not of_type(events, ToolCall)
    assert "Demo model" in text_of(events)


async def test_tool_call_ids_are_unique_in_the_conversation() -> None:
    history = (
        message("user", "weather in Rome"),
        message(
            "assistant",
            {
                "type": "tool-get_weather",
                "toolCallId": "demo-call-1",
                "state": "output-available",
                "input": {},
                "output": 1,
            },
            "Done.",
        ),
    )
    events = await collect(provider().stream(ask("weather in Oslo", (WEATHER,), history)))

    (call,) = of_type(events, ToolCall)
    assert call.tool_call_id == "demo-call-2"


async def test_deterministic() -> None:
    first = await collect(provider().stream(ask("Same input", (WEATHER,))))
    second = await collect(provider().stream(ask("Same input", (WEATHER,))))

    assert first == second


async def test_token_delay_paces_the_stream() -> None:
    demo = DemoProvider(token_delay=0.01)
    started = time.monotonic()
    events = await collect(demo.stream(ask("Hi")))
    elapsed = time.monotonic() - started

    tokens = len(of_type(events, TextDelta)) + len(of_type(events, ReasoningDelta))
    assert elapsed >= tokens * 0.01 * 0.8


async def test_stop_ends_the_stream_at_once() -> None:
    demo = DemoProvider(token_delay=30)  # a token every 30 s
    stream = demo.stream(ask("Hi"))
    first = await anext(stream)
    assert isinstance(first, StreamOpened)
    await anext(stream)  # reasoning start

    started = time.monotonic()
    task = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.aclose()
    assert time.monotonic() - started < 1


def test_example_input_handles_nested_and_typed_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "count": {"type": ["integer", "null"], "minimum": 3},
            "tags": {"type": "array"},
            "options": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
        "required": ["city", "count", "tags", "options"],
    }

    assert example_input(schema, "Send /tmp/report.pdf to Lyon") == {
        "city": "Lyon",
        "count": 3,
        "tags": [],
        "options": {"path": "/tmp/report.pdf"},
    }


def test_demo_long_answer_describes_the_default_settings() -> None:
    """The long answer tells a first-time user where their chats are kept: it must say
    what the settings do by default, and name only public endpoints."""
    fields = Settings.model_fields
    assert fields["bridge_store"].default == "auto"  # auto without REDIS_URL: SQLite
    assert f"`{fields['bridge_data_dir'].default}/bridge.sqlite3`" in LONG_ANSWER
    assert "SQLite" in LONG_ANSWER and "memory" not in LONG_ANSWER
    assert fields["bridge_log_ttl_seconds"].default == 24 * 3600  # "after a day"
    assert fields["bridge_history_ttl_seconds"].default == 30 * 24 * 3600  # "for a month"
    assert "after a day" in LONG_ANSWER and "for a month" in LONG_ANSWER
    assert "/api/chat/${chatId}/stream" in LONG_ANSWER
    assert "bridge.follow" not in LONG_ANSWER


def test_demo_answer_names_the_files_of_the_message() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="  # 8 bytes
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"  # 9 bytes
    user = UIMessage(
        id="u1",
        role="user",
        parts=[
            TextUIPart(text="what is in these?"),
            FileUIPart(media_type="image/png", url=png, filename="dot.png"),
            FileUIPart(media_type="application/pdf", url=pdf, filename="note.pdf"),
        ],
    )
    text = plan_reply(ModelRequest(model="demo:x", messages=[user])).text
    named = "**dot.png** (image/png, 8 bytes), **note.pdf** (application/pdf, 9 bytes)"
    assert f"Attached: {named}." in text
