"""Several OpenAI-compatible servers at once (BRIDGE_ENDPOINTS), each `<name>:<model>`, with
its own base URL, key and API flavour, through the real `openai` SDK."""

from __future__ import annotations

import httpx
import orjson
import pytest

from bridge.settings import Endpoint
from tests.bridge_server import BridgeFactory, chat_body, sse_events
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Text


def test_two_named_endpoints_serve_side_by_side(
    bridge_factory: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_KEY", "local-key")
    monkeypatch.setenv("HOSTED_KEY", "hosted-key")
    with OpenAIFake(api_key="local-key") as local, OpenAIFake(api_key="hosted-key") as hosted:
        server = bridge_factory(
            bridge_endpoints={
                "local": Endpoint(base_url=local.base_url, api="chat", api_key_env="LOCAL_KEY"),
                "hosted": Endpoint(
                    base_url=hosted.base_url, api="responses", api_key_env="HOSTED_KEY"
                ),
            },
            bridge_models=["local:llama-3", "hosted:gpt-x"],
        )
        local.enqueue([Text("from the local server")])
        hosted.enqueue([Text("from the hosted server")])
        texts = {}
        for chat_id, model in [("c-local", "local:llama-3"), ("c-hosted", "hosted:gpt-x")]:
            response = httpx.post(
                f"{server.url}/api/chat", json=chat_body(chat_id, "hi", model=model), timeout=30
            )
            assert response.status_code == 200, response.text
            chunks = [orjson.loads(d) for _, d in sse_events(response) if d != "[DONE]"]
            texts[model] = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
            assert chunks[-1]["messageMetadata"]["model"] == model
        assert texts == {
            "local:llama-3": "from the local server",
            "hosted:gpt-x": "from the hosted server",
        }
        # Each server got its own flavour, model name and key.
        assert [r.path for r in local.requests] == ["/v1/chat/completions"]
        assert [r.path for r in hosted.requests] == ["/v1/responses"]
        assert local.requests[0].body["model"] == "llama-3"
        assert hosted.requests[0].body["model"] == "gpt-x"
        assert local.requests[0].headers["authorization"] == "Bearer local-key"
        assert hosted.requests[0].headers["authorization"] == "Bearer hosted-key"


def test_endpoint_settings_reject_unknown_fields_and_flavours() -> None:
    with pytest.raises(ValueError, match="api"):
        Endpoint.model_validate({"base_url": "http://x", "api": "completions"})
    with pytest.raises(ValueError, match="extra"):
        Endpoint.model_validate({"base_url": "http://x", "key": "secret"})


def test_azure_deployment_is_served_through_the_azure_client(bridge_factory: BridgeFactory) -> None:
    with OpenAIFake(api_key="azure-key") as azure:
        server = bridge_factory(
            azure_openai_api_key="azure-key",
            azure_openai_endpoint=azure.url,
            openai_api_version="2024-10-21",
            bridge_models=["azure:my-gpt"],
        )
        azure.enqueue([Text("from azure")])
        response = httpx.post(
            f"{server.url}/api/chat", json=chat_body("c-az", "hi", model="azure:my-gpt"), timeout=30
        )
        assert response.status_code == 200, response.text
        chunks = [orjson.loads(d) for _, d in sse_events(response) if d != "[DONE]"]
        assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == "from azure"
        request = azure.requests[0]
        assert request.path == "/openai/deployments/my-gpt/chat/completions"
        assert request.headers["api-key"] == "azure-key"
