"""The model settings work as written: BRIDGE_MODELS alone picks the default, /api/models
lists what this process serves, a provider registered in code needs no listing, and a
listed provider without its key stops the start-up with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from bridge.app import create_app
from bridge.providers.demo import DemoProvider
from bridge.providers.registry import ModelConfigError, ProviderRegistry
from tests.bridge_server import chat_body, make_settings, sse_events

ROOT = Path(__file__).resolve().parents[1]
LOCAL = "http://127.0.0.1"  # a loopback name: anonymous mode answers to no other host


def finish_model(response: httpx.Response) -> str:
    chunks = [orjson.loads(data) for _, data in sse_events(response) if data != "[DONE]"]
    return str(chunks[-1]["messageMetadata"]["model"])


def test_model_settings_models_alone_make_the_first_the_default() -> None:
    settings = make_settings(bridge_models=["demo:first", "demo:second"])
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        listed = client.get("/api/models").json()
        assert listed["default"] == "demo:first"
        assert [m["id"] for m in listed["models"]] == ["demo:first", "demo:second"]
        # A request naming no model (every stock useChat request) is served the default.
        answer = client.post("/api/chat", json=chat_body("no-model", "hi"))
        assert answer.status_code == 200
        assert finish_model(answer) == "demo:first"
        picked = client.post("/api/chat", json=chat_body("picked", "hi", model="demo:second"))
        assert picked.status_code == 200
        assert finish_model(picked) == "demo:second"
        refused = client.post("/api/chat", json=chat_body("other", "hi", model="demo:third"))
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "model_not_allowed"


def test_model_settings_an_explicit_default_is_allowed_beside_the_list() -> None:
    settings = make_settings(bridge_model="demo:main", bridge_models=["demo:alt"])
    registry = ProviderRegistry.from_settings(settings)
    assert registry.default_model == "demo:main"
    assert registry.allowed_models == ["demo:main", "demo:alt"]


def test_model_settings_a_provider_registered_in_code_needs_no_listing() -> None:
    settings = make_settings(bridge_models=["demo:scripted"])
    mine = DemoProvider(token_delay=0)
    with TestClient(create_app(settings, providers={"mine": mine}), base_url=LOCAL) as client:
        answer = client.post("/api/chat", json=chat_body("code", "hi", model="mine:any-model"))
        assert answer.status_code == 200
        assert finish_model(answer) == "mine:any-model"
        # Built-in providers stay behind the allowlist.
        other = client.post("/api/chat", json=chat_body("c2", "hi", model="demo:unlisted"))
        assert other.status_code == 400


@pytest.mark.parametrize(
    ("env", "hint"),
    [
        ({"BRIDGE_MODELS": "demo:scripted,anthropic:claude-sonnet-4-5"}, "ANTHROPIC_API_KEY"),
        ({"BRIDGE_MODEL": "openai:gpt-4.1-mini"}, "OPENAI_API_KEY"),
        ({"BRIDGE_MODELS": "mistral:large"}, 'unknown provider "mistral"'),
    ],
)
def test_model_settings_a_model_without_its_provider_fails_at_start_up(
    env: dict[str, str], hint: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelConfigError, match=hint):
        ProviderRegistry.from_settings(make_settings(**{k.lower(): v for k, v in env.items()}))
    # `python -m bridge` says it in one line and exits before serving anything.
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BRIDGE_", "OPENAI_", "ANTHROPIC_", "AZURE_")) and k != "REDIS_URL"
    }
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "--port", "0"],
        cwd=tmp_path,  # no .env here
        env={**clean, "PYTHONPATH": str(ROOT), "BRIDGE_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("aisdk-bridge: BRIDGE_MODEL / BRIDGE_MODELS name models")
    assert hint in result.stderr
    assert "Traceback" not in result.stderr
