"""A steering message's id names one message: a request reusing it with the same content is
a retry (it changes nothing and answers the first one's record), one with other content is
refused (409 `steering_id_reused`), while the message waits and after its delivery (the
producer rewrites the record then: the content's digest goes with it)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests import gated_tools
from tests.bridge_server import BridgeFactory, openai_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import LiveServer, Text, ToolCall
from tests.test_steering import Posting, gate_name, steer, steering_body

TOOLS = "tests.gated_tools"


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, fake: OpenAIFake) -> LiveServer:
    return bridge_factory(**openai_settings(fake, bridge_tools=TOOLS))


def _outcome(server: LiveServer, chat_id: str, steering_id: str) -> httpx.Response:
    url = f"{server.url}/api/chat/{chat_id}/steer/{steering_id}?wait=20"
    return httpx.get(url, timeout=30)


def test_steering_ids_same_content_is_a_retry_other_content_is_409(
    bridge: LiveServer, fake: OpenAIFake
) -> None:
    gate = gate_name()
    fake.enqueue([Text("Checking."), ToolCall("hold", orjson.dumps({"gate": gate}).decode())])
    fake.enqueue([Text("Short answer.")])
    posting = Posting(bridge, "ids", "Tell me everything")
    posting.start()
    assert gated_tools.entered(gate).wait(10)

    first = steer(bridge, "ids", steering_body("Be brief"))
    assert first.status_code == 202, first.text
    retry = steer(bridge, "ids", steering_body("Be brief"))
    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json()
    other = steer(bridge, "ids", steering_body("Be long"))
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "steering_id_reused"
    # Another mode is the same message (a retry): the content decides.
    assert steer(bridge, "ids", steering_body("Be brief", mode="interrupt")).status_code == 200

    gated_tools.open_gate(gate)
    chunks = posting.finish()
    delivered = [c for c in chunks if c["type"] == "steering-message"]
    assert [c["parts"] for c in delivered] == [[{"type": "text", "text": "Be brief"}]]
    outcome = _outcome(bridge, "ids", "s1")
    assert outcome.status_code == 200
    assert outcome.json()["state"] == "delivered"

    # The delivered record (written by the producer) still knows the content.
    late = steer(bridge, "ids", steering_body("Be long"))
    assert late.status_code == 409, late.text
    assert late.json()["error"]["code"] == "steering_id_reused"
    again = steer(bridge, "ids", steering_body("Be brief"))
    assert again.status_code == 200, again.text
    assert again.json()["state"] == "delivered"
