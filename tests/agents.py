"""A pydantic-ai agent for the tests, on pydantic-ai's own FunctionModel (no network): it
thinks, says a few words, runs its own `lookup` tool, then answers from the result.

`GATE` holds the agent's second model call until a test opens it, so a test can read (or
drop) the stream in the middle of the answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import (
    AgentInfo,
    DeltaThinkingCalls,
    DeltaThinkingPart,
    DeltaToolCall,
    DeltaToolCalls,
    FunctionModel,
)

from bridge.providers.pydantic_ai import AgentProvider

GATE = threading.Event()
GATE.set()  # open unless a test closes it
LOOKUPS: list[str] = []


async def _model(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls | DeltaThinkingCalls]:
    returned = [
        part
        for message in messages
        for part in getattr(message, "parts", [])
        if isinstance(part, ToolReturnPart)
    ]
    if not returned:
        yield {0: DeltaThinkingPart(content="The user wants the weather; ")}
        yield {0: DeltaThinkingPart(content="I will look it up.")}
        yield "Let me "
        yield "check. "
        yield {2: DeltaToolCall(name="lookup", json_args='{"city": ', tool_call_id="call-1")}
        yield {2: DeltaToolCall(json_args='"Paris"}')}
        return
    # The second model call waits for the test (in another thread) to open the gate.
    await asyncio.to_thread(GATE.wait, 30)
    for word in ["It ", "is ", str(returned[-1].content), "."]:
        yield word


agent = Agent(FunctionModel(stream_function=_model, model_name="weather-agent"))


@agent.tool_plain
def lookup(city: str) -> str:
    """Look up the weather of a city."""
    LOOKUPS.append(city)
    return f"sunny in {city}"


def make_provider() -> AgentProvider:
    return AgentProvider(agent, name="agent")
