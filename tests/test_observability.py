"""Metrics move with real chats, spans cover a generation, its steps, provider calls and
tools (OpenTelemetry's in-memory exporter), and log records carry the chat, generation and
user they concern."""

from __future__ import annotations

import io
import logging
import re

import httpx
import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge.observe.logs import ContextFilter, JsonFormatter
from tests.bridge_server import BridgeFactory, chat_body

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)  # once per process: the global provider
    return _EXPORTER


def series(text: str, name: str, labels: str = "") -> float | None:
    """The value of one series in a Prometheus exposition, None when it is not there."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of a series that must be there: a missing one fails the test (a renamed
    metric or label must not read as 0)."""
    value = series(text, name, labels)
    assert value is not None, f"no series {name}{{{labels}}} in:\n{text}"
    return value


def post(url: str, chat_id: str, text: str) -> None:
    response = httpx.post(f"{url}/api/chat", json=chat_body(chat_id, text), timeout=30)
    assert response.status_code == 200, response.text


def test_metrics_move_with_chats_and_can_be_turned_off(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=0)
    before = httpx.get(f"{server.url}/metrics").text
    # A labelled counter has no series until its first count.
    assert series(before, "bridge_generations_total", 'outcome="finished"') is None
    assert metric(before, "bridge_chunks_total") == 0
    post(server.url, "m1", "hello")
    post(server.url, "m2", "hello again")
    resumed = httpx.get(f"{server.url}/api/chat/m2/stream")
    assert resumed.status_code == 200  # ended just now: replayed within the grace period
    after = httpx.get(f"{server.url}/metrics").text
    assert metric(after, "bridge_generations_total", 'outcome="finished"') == 2
    assert metric(after, "bridge_chunks_total") > 10
    assert metric(after, "bridge_time_to_first_token_seconds_count") == 2
    assert metric(after, "bridge_generation_duration_seconds_count") == 2
    assert metric(after, "bridge_readers_live", 'transport="sse"') == 0  # all readers left
    assert metric(after, "bridge_generations_running") == 0
    # Store operations are timed: the writer's batched appends, the begin of each chat.
    assert metric(after, "bridge_store_operation_seconds_count", 'operation="append_many"') > 0
    assert (
        metric(after, "bridge_store_operation_seconds_count", 'operation="begin_generation"') == 2
    )
    limited = bridge_factory(bridge_rate_limit_per_minute=1)
    with httpx.Client(base_url=limited.url, timeout=30) as browser:  # one identity (cookie)
        assert browser.post("/api/chat", json=chat_body("r1", "hello")).status_code == 200
        refused = browser.post("/api/chat", json=chat_body("r2", "hello"))
    assert refused.status_code == 429
    limits = httpx.get(f"{limited.url}/metrics").text
    assert (
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in limits.splitlines()
            if line.startswith("bridge_limits_hit_total{")
        )
        >= 1
    )
    off = bridge_factory(bridge_metrics=False)
    assert httpx.get(f"{off.url}/metrics").status_code == 404


def test_spans_of_a_generation_with_a_tool(
    bridge_factory: BridgeFactory, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    server = bridge_factory(bridge_tools="bridge.tools.examples", bridge_demo_token_delay_ms=0)
    post(server.url, "traced", "What is the weather in Paris?")
    finished = {span.name: span for span in spans.get_finished_spans()}
    generation = finished["generation scripted"]
    assert generation.attributes is not None
    assert generation.attributes["gen_ai.conversation.id"] == "traced"
    assert generation.attributes["gen_ai.provider.name"] == "demo"
    steps = [s for s in spans.get_finished_spans() if s.name == "step"]
    assert len(steps) == 2  # the tool call, then the answer
    calls = [s for s in spans.get_finished_spans() if s.name == "chat scripted"]
    assert len(calls) == 2
    tool = finished["execute_tool get_weather"]
    assert tool.attributes is not None and tool.attributes["gen_ai.tool.name"] == "get_weather"
    # All in the generation's trace, each step a child of the generation.
    trace_id = generation.context.trace_id
    assert {s.context.trace_id for s in [*steps, *calls, tool]} == {trace_id}
    assert all(
        s.parent is not None and s.parent.span_id == generation.context.span_id for s in steps
    )


def test_log_records_carry_the_chat_and_generation(bridge_factory: BridgeFactory) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    runner_log = logging.getLogger("bridge.generation.runner")
    runner_log.addHandler(handler)
    level = runner_log.level
    runner_log.setLevel(logging.INFO)
    try:
        server = bridge_factory(bridge_demo_token_delay_ms=0)
        post(server.url, "logged", "hello")
        # The end is logged after the last chunk: wait for the stored answer's end.
        httpx.get(f"{server.url}/api/chat/logged/messages")
    finally:
        runner_log.removeHandler(handler)
        runner_log.setLevel(level)
    records = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    ended = [r for r in records if r.get("outcome") == "finished"]
    assert ended, records
    assert ended[0]["chat_id"] == "logged"
    assert ended[0]["generation_id"].startswith("gen_")
    assert ended[0]["user"]
    assert ended[0]["level"] == "info" and "duration_seconds" in ended[0]
