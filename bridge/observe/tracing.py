"""OpenTelemetry spans for a generation, each step, each provider call and each tool call.

Only the OpenTelemetry API is a dependency: without an SDK every span is a no-op that
costs a function call. With `opentelemetry-sdk` installed (the `[otel]` extra), the
standard variables configure export (`OTEL_TRACES_EXPORTER=otlp|console`,
`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_BSP_*`, ...): the app's start-up
calls `configure_at_startup`, in every worker process. A tracer provider set before
(by the embedding application, or by `opentelemetry-instrument`, which also instruments
FastAPI) is left alone, so spans are never exported twice.

A generation outlives the HTTP request that started it, so its span is a root linked to
the request's span (not its child): the request's trace stays short, and the generation's
trace holds every step however long it runs. Attribute names follow the GenAI semantic
conventions (`gen_ai.*`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

logger = logging.getLogger("bridge.tracing")

_tracer = trace.get_tracer("aisdk-bridge")


def request_link() -> list[Link]:
    """A link to the span current now (the HTTP request's), if there is one."""
    context = trace.get_current_span().get_span_context()
    return [Link(context)] if context.is_valid else []


@contextmanager
def generation_span(
    *, chat_id: str, generation_id: str, model_id: str, links: list[Link], takeover: bool = False
) -> Iterator[Span]:
    provider, _, model = model_id.partition(":")
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.conversation.id": chat_id,
        "bridge.generation.id": generation_id,
        "bridge.takeover": takeover,
    }
    # A fresh root: detach from the request's context, keep a link to it.
    token = otel_context.attach(otel_context.Context())
    try:
        with _tracer.start_as_current_span(
            f"generation {model}", kind=SpanKind.INTERNAL, links=links, attributes=attributes
        ) as span:
            yield span
    finally:
        otel_context.detach(token)


@contextmanager
def step_span(step: int) -> Iterator[Span]:
    with _tracer.start_as_current_span("step", attributes={"bridge.step": step}) as span:
        yield span


@contextmanager
def provider_span(model_id: str) -> Iterator[Span]:
    provider, _, model = model_id.partition(":")
    with _tracer.start_as_current_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        },
    ) as span:
        yield span


def record_usage(
    span: Span, *, input_tokens: int | None, output_tokens: int | None, finish_reason: str | None
) -> None:
    if input_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    if output_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
    if finish_reason is not None:
        span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])


@contextmanager
def tool_span(tool_name: str, tool_call_id: str) -> Iterator[Span]:
    with _tracer.start_as_current_span(
        f"execute_tool {tool_name}",
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool_name,
            "gen_ai.tool.call.id": tool_call_id,
        },
    ) as span:
        yield span


def mark_error(span: Span, description: str) -> None:
    span.set_status(Status(StatusCode.ERROR, description))


def configure_at_startup() -> bool:
    """Configure the SDK from the `OTEL_*` variables unless a tracer provider is set already
    (or `OTEL_SDK_DISABLED=true`). Returns whether it installed one. Safe to call again."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False  # someone chose already: their provider exports the bridge's spans
    installed = configure_from_environment()
    if installed:
        logger.info("OpenTelemetry: exporting spans (%s)", os.environ["OTEL_TRACES_EXPORTER"])
    return installed


def configure_from_environment() -> bool:
    """Install an SDK tracer provider when `OTEL_TRACES_EXPORTER` asks for one and the SDK is
    installed. Returns whether it did. `none` or unset: leave the global provider alone."""
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n and n != "none"]
    if not names:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError:
        logger.warning(
            "OTEL_TRACES_EXPORTER is set but opentelemetry-sdk is not installed "
            "(install the [otel] extra)"
        )
        return False
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                    OTLPSpanExporter,
                )
            except ImportError:
                logger.warning(
                    "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http"
                )
                continue
            exporters.append(OTLPSpanExporter())
        else:
            logger.warning("unsupported OTEL_TRACES_EXPORTER %r (use otlp or console)", name)
    if not exporters:
        return False
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself; the
    # bridge's name only when neither names the service.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource.create({"service.name": "aisdk-bridge"}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        # Batched: the schedule and sizes come from OTEL_BSP_*; flushed at exit.
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True
