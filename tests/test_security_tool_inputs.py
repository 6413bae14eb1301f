"""Tool inputs are validated against the tool's declaration before its approval policy and
before it runs (finite numbers, declared ranges); the policy fails closed; the demo
model's text matching stays linear in the message."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import orjson
import pytest
from pydantic import Field

from bridge.tools import tool
from bridge.tools.examples import transfer_money
from tests.bridge_server import BridgeFactory, chat_body, sse_events
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Text, ToolCall

TOOLS = "bridge.tools.examples"


def _chunks(response: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(data) for _, data in sse_events(response) if data != "[DONE]"]


@pytest.mark.parametrize(
    "arguments",
    [
        '{"amount": "NaN", "to": "eve"}',
        '{"amount": -500, "to": "eve"}',
        '{"amount": "Infinity", "to": "eve"}',
    ],
)
def test_transfer_money_with_a_dodging_amount_never_runs_unapproved(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake, arguments: str
) -> None:
    server = bridge_factory(
        openai_api_key="test-key",
        openai_base_url=openai_fake.base_url,
        bridge_model="openai:gpt-test",
        bridge_tools=TOOLS,
    )
    openai_fake.enqueue([ToolCall("transfer_money", arguments, call_id="c1")])
    openai_fake.enqueue([Text("I could not send it.")])
    response = httpx.post(f"{server.url}/api/chat", json=chat_body("nan-money", "pay"), timeout=30)
    chunks = _chunks(response)
    kinds = [chunk["type"] for chunk in chunks]
    assert response.status_code == 200
    assert "tool-input-error" in kinds or "tool-output-error" in kinds
    outputs = [c for c in chunks if c["type"] == "tool-output-available"]
    assert not any("sent" in str(c.get("output")) for c in outputs)


def test_approval_policy_sees_validated_arguments() -> None:
    assert transfer_money.requires_approval({"amount": "150", "to": "eve"}) is True
    assert transfer_money.requires_approval({"amount": 50, "to": "eve"}) is False
    # Not valid: never runs (execution refuses the same input), whatever the policy says.
    assert transfer_money.requires_approval({"amount": "NaN", "to": "eve"}) is False
    with pytest.raises(ValueError, match="amount"):
        transfer_money.validate({"amount": "NaN", "to": "eve"})


def test_approval_policy_that_raises_asks() -> None:
    def broken(arguments: dict[str, Any]) -> bool:
        raise KeyError("limit")

    @tool(needs_approval=broken)
    async def pay(amount: Annotated[float, Field(gt=0)]) -> str:
        return "paid"

    assert pay.requires_approval({"amount": 5}) is True


def test_demo_model_path_matching_is_linear(bridge_processes: Any) -> None:
    """A message shaped for the old backtracking pattern (a long run of word characters
    with no `name.ext` in it) is answered at once; the old pattern held the process's event
    loop for hours on it (a process of its own: the regex holds the GIL)."""
    bridge = bridge_processes(BRIDGE_TOOLS=TOOLS, BRIDGE_DEMO_TOKEN_DELAY_MS="0")
    text = "delete " + "a" * 1_000_000
    response = httpx.post(f"{bridge.url}/api/chat", json=chat_body("regex", text), timeout=60)
    chunks = _chunks(response)
    assert response.status_code == 200
    requests = [c for c in chunks if c["type"] == "tool-approval-request"]
    inputs = [c for c in chunks if c["type"] == "tool-input-available"]
    assert requests and inputs[0]["input"] == {"path": "notes.txt"}
