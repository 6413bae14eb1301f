"""Steering with a pydantic-ai agent as the provider: a message delivered at the step
boundary after the agent's run reaches the next run as its prompt, after what the agent
answered (not the original question again)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import httpx
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from bridge.providers.pydantic_ai import AgentProvider, to_agent_messages
from protocol.messages import UIMessage
from tests.bridge_server import BridgeFactory, chat_body
from tests.session_client import read_stream

ENTERED = threading.Event()
GATE = threading.Event()
RUNS: list[list[ModelMessage]] = []
TEXT_PART = {"type": "text", "text": "Shorter"}


async def _model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    RUNS.append(list(messages))
    if len(RUNS) == 1:
        ENTERED.set()
        await asyncio.to_thread(GATE.wait, 30)  # the test steers meanwhile
        yield "First answer."
        return
    yield "Steered answer."


def make_provider() -> AgentProvider:
    return AgentProvider(Agent(FunctionModel(stream_function=_model, model_name="steered")))


def _prompts(messages: list[ModelMessage]) -> list[tuple[str, str]]:
    """(kind, text) of each message: `user` prompts and `model` text."""
    out: list[tuple[str, str]] = []
    for message in messages:
        for part in message.parts:
            if isinstance(message, ModelRequest) and isinstance(part, UserPromptPart):
                out.append(("user", str(part.content)))
            elif isinstance(message, ModelResponse) and hasattr(part, "content"):
                out.append(("model", str(part.content)))
    return out


def test_agent_messages_put_a_steering_message_where_it_was_delivered() -> None:
    messages = [
        UIMessage.model_validate(m)
        for m in (
            {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hello"}]},
            {
                "id": "a1",
                "role": "assistant",
                "parts": [
                    {"type": "text", "text": "First answer."},
                    {
                        "type": "steering-message",
                        "id": "s1",
                        "parts": [{"type": "text", "text": "Shorter"}],
                    },
                ],
            },
        )
    ]
    history, prompt = to_agent_messages(messages)
    assert prompt == "Shorter"
    assert _prompts(history) == [("user", "Hello"), ("model", "First answer.")]
    # Without steering: the question is the prompt, as before.
    history, prompt = to_agent_messages(messages[:1])
    assert (history, prompt) == ([], "Hello")


async def test_agent_steering_reaches_the_next_run_as_its_prompt(
    bridge_factory: BridgeFactory,
) -> None:
    RUNS.clear()
    ENTERED.clear()
    GATE.clear()
    server = bridge_factory(
        bridge_providers=["agent=tests.test_agent_steering:make_provider"],
        bridge_model="agent:steered",
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        answer = asyncio.create_task(
            read_stream(client, "POST", "/api/chat?client=7", json=chat_body("ag", "Hello"))
        )
        assert await asyncio.to_thread(ENTERED.wait, 10)
        steer = await client.post(
            "/api/chat/ag/steer",
            json={
                "message": {
                    "id": "s1",
                    "role": "user",
                    "parts": [{"type": "text", "text": "Shorter"}],
                }
            },
        )
        assert steer.status_code == 202
        # Queued in the store: the step boundary after the agent's run reads it.
        GATE.set()
        result = await answer
        record = (await client.get("/api/chat/ag/steer/s1")).json()
    assert record["state"] == "delivered"
    assert "steering-message" in result.types
    assert result.text() == "First answer.Steered answer."
    assert len(RUNS) == 2
    assert _prompts(RUNS[1]) == [
        ("user", "Hello"),
        ("model", "First answer."),
        ("user", "Shorter"),
    ]
