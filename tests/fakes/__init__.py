"""Fake provider servers that speak the real OpenAI and Anthropic streaming wire formats,
and `LiveServer`, which serves any ASGI app on a free loopback port.

    with OpenAIFake() as fake:
        fake.enqueue([Reasoning("Thinking…"), Text("Hello"), Usage(input_tokens=5)])
        fake.enqueue([ToolCall("get_weather", ['{"city":', '"Paris"}'])])
        fake.enqueue([HttpError(429)])
        fake.enqueue([Text("Hello"), Hang()])     # until the client disconnects
        fake.enqueue([Text("Hello"), Cut()])      # drop the connection mid-answer
        ...  # AsyncOpenAI(base_url=fake.base_url, ...)
        fake.requests[-1].body                   # what the SDK sent
        await fake.wait_for_disconnect()         # or fake.disconnects / fake.disconnected
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from protocol.messages import UIMessage
from tests.fakes.anthropic_server import AnthropicFake
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import (
    Citation,
    Cut,
    Delay,
    Finish,
    Hang,
    HttpError,
    LiveServer,
    ParallelToolCalls,
    RawBytes,
    Reasoning,
    RecordedRequest,
    RedactedReasoning,
    ResponseFailed,
    ScriptedFake,
    Step,
    StreamError,
    Text,
    ToolCall,
    Usage,
)

__all__ = [
    "AnthropicFake",
    "Citation",
    "Cut",
    "Delay",
    "Finish",
    "Hang",
    "HttpError",
    "LiveServer",
    "OpenAIFake",
    "ParallelToolCalls",
    "RawBytes",
    "Reasoning",
    "RecordedRequest",
    "RedactedReasoning",
    "ResponseFailed",
    "ScriptedFake",
    "Step",
    "StreamError",
    "Text",
    "ToolCall",
    "Usage",
    "collect",
    "message",
    "of_type",
]

E = TypeVar("E")


async def collect(events: AsyncIterator[E], into: list[E] | None = None) -> list[E]:
    """Every event of a provider stream, appended to `into` as they come (so a test still
    has them when the stream raises)."""
    received = [] if into is None else into
    async for event in events:
        received.append(event)
    return received


def of_type(events: list[Any], kind: type[E]) -> list[E]:
    return [event for event in events if isinstance(event, kind)]


def message(role: str, *parts: str | dict[str, Any], message_id: str | None = None) -> UIMessage:
    """A UIMessage; a str part is a text part."""
    return UIMessage.model_validate(
        {
            "id": message_id or f"{role}-{len(parts)}",
            "role": role,
            "parts": [{"type": "text", "text": p} if isinstance(p, str) else p for p in parts],
        }
    )
