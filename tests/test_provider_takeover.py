"""After a takeover re-ran a step, the next model call sends back what the re-run call
returned, in the form the provider API requires: on the Responses path the reasoning item
by its id with its `encrypted_content`, followed by the function call by its item id; on
the Anthropic path the thinking block with its signature and the redacted thinking, as
they came. Nothing of the lost attempt (its reasoning item, its signature, its MCP
approval request) goes back.

Two bridge processes on one real Redis and a fake provider server: the first process is
SIGKILLed while the step's model call streams, the second takes the answer over when a
reader resumes on it, re-runs the step, runs the tool, and makes the next call.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.bridge_server import chat_body
from tests.fakes.anthropic_server import AnthropicFake
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import (
    Hang,
    RawBytes,
    Reasoning,
    RedactedReasoning,
    ScriptedFake,
    Text,
    ToolCall,
)
from tests.session_client import StreamResult, read_stream
from tests.support.bridge_process import BridgeProcess
from tests.support.redis import RedisServer
from tests.test_provider_tools import MCP_REQUEST, output_item

pytestmark = pytest.mark.redis

AI_7 = {"x-ai-sdk-level": "7"}
CALL = ToolCall("get_weather", '{"city":"Paris"}', call_id="call_weather")


@pytest.fixture
def anthropic_fake() -> Iterator[AnthropicFake]:
    fake = AnthropicFake()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def responses_fake() -> Iterator[OpenAIFake]:
    fake = OpenAIFake()
    fake.start()
    yield fake
    fake.stop()


def _env(redis_server: RedisServer, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_server.url,
        "BRIDGE_KEY_PREFIX": f"pt{uuid.uuid4().hex[:8]}",
        "BRIDGE_TOOLS": "bridge.tools.examples",
        "BRIDGE_LEASE_SECONDS": "1",
        "BRIDGE_HEARTBEAT_SECONDS": "0.5",
        "BRIDGE_TAKEOVER_SWEEP_SECONDS": "0",
        "BRIDGE_STEP_RETRIES": "0",
        **extra,
    }


def _responses_env(redis_server: RedisServer, fake: OpenAIFake) -> dict[str, str]:
    return _env(
        redis_server,
        BRIDGE_MODEL="openai:gpt-5-mini",
        OPENAI_API_KEY="sk-fake",
        OPENAI_BASE_URL=fake.base_url,
    )


async def _killed_and_resumed(
    client: httpx.AsyncClient, bridge_processes: Any, env: dict[str, str], chat: str, marker: bytes
) -> tuple[BridgeProcess, StreamResult]:
    """Start an answer on one process, SIGKILL it once `marker` streams, resume on a second
    process until the answer ends: the survivor and what the resumed reader read."""
    doomed: BridgeProcess = bridge_processes(**env)
    survivor: BridgeProcess = bridge_processes(**env)
    raw = b""
    async with client.stream(
        "POST", f"{doomed.url}/api/chat", json=chat_body(chat, "Weather in Paris?")
    ) as response:
        assert response.status_code == 200
        async for piece in response.aiter_raw():
            raw += piece
            if marker in raw:
                doomed.signal(signal.SIGKILL)
                break
    await asyncio.to_thread(doomed.process.wait, 10)
    resumed = await read_stream(client, "GET", f"{survivor.url}/api/chat/{chat}/stream")
    assert resumed.status == 200 and resumed.done
    assert resumed.types[-1] == "finish" and "error" not in resumed.types
    assert "reset-step" in resumed.types
    return survivor, resumed


async def _take_over(
    bridge_processes: Any, env: dict[str, str], fake: ScriptedFake
) -> dict[str, Any]:
    """The body of the model call after the step re-run by a takeover (the first process
    killed once the model's reasoning streams)."""
    async with httpx.AsyncClient(timeout=60, headers=AI_7) as client:
        await _killed_and_resumed(client, bridge_processes, env, "taken", b"reasoning-delta")
    # The lost attempt, the re-run step, the call after it: nothing else.
    assert len(fake.requests) == 3
    assert fake.pending == 0
    body: dict[str, Any] = fake.requests[2].body
    return body


async def test_provider_takeover_next_responses_call_sends_the_rerun_reasoning_and_call_ids(
    bridge_processes: Any, redis_server: RedisServer, responses_fake: OpenAIFake
) -> None:
    fake = responses_fake
    fake.enqueue([Reasoning("Lost thinking.", encrypted_content="enc-lost"), Hang()])
    fake.enqueue([Reasoning("Check the weather.", encrypted_content="enc-rerun"), CALL])
    fake.enqueue([Text("It is sunny in Paris.")])
    env = _responses_env(redis_server, fake)
    body = await _take_over(bridge_processes, env, fake)
    # The fake numbers its ids in order: the lost attempt's response (1) and reasoning
    # (2), the re-run's response (3), reasoning (4) and function call (5).
    lost, rerun = fake.requests[0].body, fake.requests[1].body
    assert rerun["input"] == lost["input"]  # the re-run asks the same question
    items = body["input"][len(lost["input"]) :]
    assert items[0] == {
        "type": "reasoning",
        "id": "rs_fake000004",
        "summary": [{"type": "summary_text", "text": "Check the weather."}],
        "encrypted_content": "enc-rerun",
    }
    assert items[1] == {
        "type": "function_call",
        "call_id": "call_weather",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "id": "fc_fake000005",
    }
    assert items[2]["type"] == "function_call_output"
    assert items[2]["call_id"] == "call_weather"
    assert '"city":"Paris"' in items[2]["output"]
    assert len(items) == 3


async def test_provider_takeover_next_anthropic_call_sends_the_rerun_thinking_as_it_came(
    bridge_processes: Any, redis_server: RedisServer, anthropic_fake: AnthropicFake
) -> None:
    fake = anthropic_fake
    fake.enqueue([Reasoning("Lost thinking.", signature="sig-lost"), Hang()])
    fake.enqueue(
        [
            Reasoning("Check the weather.", signature="sig-rerun"),
            RedactedReasoning("redacted-rerun"),
            CALL,
        ]
    )
    fake.enqueue([Text("It is sunny in Paris.")])
    env = _env(
        redis_server,
        BRIDGE_MODEL="anthropic:claude-sonnet-4-5",
        ANTHROPIC_API_KEY="sk-ant-fake",
        ANTHROPIC_BASE_URL=fake.url,
    )
    body = await _take_over(bridge_processes, env, fake)
    assert [message["role"] for message in body["messages"]] == ["user", "assistant", "user"]
    assistant, results = body["messages"][1], body["messages"][2]
    assert assistant["content"] == [
        {"type": "thinking", "thinking": "Check the weather.", "signature": "sig-rerun"},
        {"type": "redacted_thinking", "data": "redacted-rerun"},
        {
            "type": "tool_use",
            "id": "call_weather",
            "name": "get_weather",
            "input": {"city": "Paris"},
        },
    ]
    (result,) = results["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "call_weather"


def _mcp_request(item_id: str) -> RawBytes:
    return output_item({**MCP_REQUEST, "id": item_id}, 0)


async def test_provider_takeover_mcp_approval_of_the_lost_attempt_is_asked_again(
    bridge_processes: Any, redis_server: RedisServer, responses_fake: OpenAIFake
) -> None:
    """An MCP approval request of a step cut by the producer's death goes with the lost
    attempt (`reset-step`): the re-run step asks again, the turn waits for that one only,
    and its answer is the one the API gets."""
    fake = responses_fake
    fake.enqueue([_mcp_request("mcpr_lost"), Hang()])
    fake.enqueue([_mcp_request("mcpr_rerun")])
    fake.enqueue([Text("streamText streams.")])
    env = _responses_env(redis_server, fake)
    async with httpx.AsyncClient(timeout=60, headers=AI_7) as client:
        survivor, _ = await _killed_and_resumed(
            client, bridge_processes, env, "mcp", b"tool-approval-request"
        )
        history = (await client.get(f"{survivor.url}/api/chat/mcp/messages")).json()["messages"]
        assistant = history[-1]
        parts = [p for p in assistant["parts"] if p["type"].startswith("tool-")]
        assert [(p["toolCallId"], p["state"]) for p in parts] == [
            ("mcpr_rerun", "approval-requested")
        ]
        parts[0]["state"] = "approval-responded"
        parts[0]["approval"] = {**parts[0]["approval"], "approved": True}
        body = {
            "id": "mcp",
            "messages": history,
            "trigger": "submit-message",
            "messageId": assistant["id"],
        }
        answered = await client.post(f"{survivor.url}/api/chat", json=body)
        assert answered.status_code == 200
    assert len(fake.requests) == 3
    assert fake.requests[2].body["input"][1:] == [
        {"type": "item_reference", "id": "mcpr_rerun"},
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_rerun", "approve": True},
    ]
