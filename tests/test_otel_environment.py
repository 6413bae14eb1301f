"""OpenTelemetry from the environment alone: `python -m bridge` with the SDK installed and
`OTEL_TRACES_EXPORTER=console` prints its spans; a tracer provider set before the app
starts (the embedding app's, `opentelemetry-instrument`'s) is kept, and spans go out once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.bridge_server import chat_body
from tests.support.bridge_process import BridgeProcess

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_SECONDS = 30.0


def test_otel_environment_console_exporter_prints_the_generation_spans(
    bridge_processes: Any,
) -> None:
    bridge: BridgeProcess = bridge_processes(
        OTEL_TRACES_EXPORTER="console",
        OTEL_SERVICE_NAME="bridge-under-test",
        OTEL_BSP_SCHEDULE_DELAY="50",  # ms: export soon after the spans end
        BRIDGE_STORE="memory",
        BRIDGE_MODEL="demo:scripted",
        BRIDGE_DEMO_TOKEN_DELAY_MS="0",
    )
    answer = httpx.post(f"{bridge.url}/api/chat", json=chat_body("traced", "hi"), timeout=60)
    assert answer.status_code == 200
    generation_id = answer.headers["x-bridge-generation-id"]
    # The spans' JSON is read line by line: wait for the lines asserted on below.
    assert bridge.wait_line(f'"bridge.generation.id": "{generation_id}"', DEADLINE_SECONDS)
    assert bridge.wait_line('"name": "chat scripted"', DEADLINE_SECONDS)
    assert bridge.wait_line('"service.name": "bridge-under-test"', DEADLINE_SECONDS)
    log = bridge.output()
    names = [line.strip() for line in log.splitlines() if line.strip().startswith('"name"')]
    assert f'"bridge.generation.id": "{generation_id}"' in log, log[-3000:]
    assert names.count('"name": "generation scripted",') == 1
    assert '"name": "step",' in names
    assert '"name": "chat scripted",' in names
    assert '"service.name": "bridge-under-test"' in log


SCRIPT = r"""
import json, os, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
if sys.argv[1] == "preset":
    trace.set_tracer_provider(provider)  # as opentelemetry-instrument does before the app

from fastapi.testclient import TestClient
from bridge.app import create_app
from bridge.observe import tracing
from tests.bridge_server import chat_body, make_settings

app = create_app(make_settings(bridge_demo_token_delay_ms=0))
with TestClient(app, base_url="http://127.0.0.1") as client:
    answer = client.post("/api/chat", json=chat_body("c", "hi"))
    assert answer.status_code == 200, answer.text
installed = trace.get_tracer_provider()
names = [span.name for span in exporter.get_finished_spans()]
print(json.dumps({"kept": installed is provider, "names": names,
                  "again": tracing.configure_at_startup()}))
"""


def run_script(mode: str, **env: str) -> tuple[dict[str, Any], str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BRIDGE_"))}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), "OTEL_BSP_SCHEDULE_DELAY": "50", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    return json.loads(last), result.stdout


def test_otel_environment_keeps_a_provider_set_before_and_exports_once() -> None:
    outcome, stdout = run_script("preset", OTEL_TRACES_EXPORTER="console")
    assert outcome["kept"] is True
    assert outcome["names"].count("generation scripted") == 1
    assert outcome["again"] is False
    # The console exporter the variables ask for was not installed beside it.
    assert '"name": "generation scripted"' not in stdout


def test_otel_environment_sdk_disabled_installs_nothing() -> None:
    outcome, stdout = run_script("unset", OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true")
    assert outcome["kept"] is False
    assert outcome["names"] == []
    assert '"name": "generation scripted"' not in stdout
