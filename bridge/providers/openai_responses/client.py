"""`openai:<model>`: the OpenAI Responses API. The official SDK makes the request (auth,
base URL, retries, errors of a non-2xx answer); the event stream is read from the raw body
(`with_streaming_response`) and parsed with orjson, at a fraction of the CPU of the SDK's
typed events.

Item ids (`msg_…`, `rs_…`, `fc_…`) are handed back in `providerMetadata.openai.itemId`, so
the next request can refer to the reasoning items of earlier steps (the API keeps them
when `store` is on, its default): reasoning models work better when they see their own
reasoning across tool calls.

Also home of what both OpenAI providers share: the client and the error mapping.

This module: the provider (the SDK call, the stream read) and the error mapping; the
request is built in `request.py`, the stream's events mapped in `events.py`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, aclosing

import openai
from openai import AsyncOpenAI, omit

from bridge.errors import ProviderError
from bridge.providers._deadline import Deadline
from bridge.providers._errors import error_for_status, stream_error
from bridge.providers._sdk_http import ProviderHTTP, sdk_http_client, sdk_timeout
from bridge.providers._sse import DEFAULT_MAX_EVENT_BYTES
from bridge.providers._stream import (
    MALFORMED,
    RawBody,
    read_sse,
    timed_out,
    unreadable_event_text,
)
from bridge.providers.base import (
    EventError,
    ModelRequest,
    ProviderEvent,
    StreamOpened,
)
from bridge.providers.openai_responses.events import LABEL, NAME, _read_event, _str, _StreamState
from bridge.providers.openai_responses.request import (
    ReasoningSummary,
    _include,
    _reasoning,
    is_reasoning_model,
    to_input_items,
    to_tools,
)

# --------------------------------------------------------------------------- shared


def make_openai_client(
    *,
    api_key: str,
    base_url: str | None,
    timeout: float | None,
    max_retries: int,
    http: ProviderHTTP = "aiohttp",
) -> AsyncOpenAI:
    return AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=sdk_timeout(timeout),
        max_retries=max_retries,
        http_client=sdk_http_client(openai, http),
    )


def openai_error(
    exc: openai.OpenAIError, *, provider: str, secrets: Sequence[str]
) -> ProviderError:
    """Map an SDK error. Messages are built from the parsed error body, never from
    `str(exc)`, which quotes the whole body (and with it, for a 401, part of the key)."""
    if isinstance(exc, openai.APITimeoutError) and timed_out(exc):
        return error_for_status(None, "request timed out", provider=provider, label=LABEL)
    if isinstance(exc, openai.APIConnectionError):  # (a timeout is one too)
        return error_for_status(
            None, "could not connect to the API", provider=provider, label=LABEL
        )
    if isinstance(exc, openai.APIStatusError):
        return error_for_status(
            exc.status_code,
            _body_message(exc.body),
            provider=provider,
            label=LABEL,
            secrets=secrets,
        )
    if isinstance(exc, openai.APIError):
        # An error object inside the stream (`data: {"error": {...}}`).
        return stream_error(
            exc.type or exc.code,
            _body_message(exc.body) or exc.message,
            provider=provider,
            label=LABEL,
            secrets=secrets,
        )
    return ProviderError(f"{LABEL} client error: {type(exc).__name__}", provider=provider)


def _body_message(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return body if isinstance(body, str) and body else None


# --------------------------------------------------------------------------- provider


class OpenAIResponsesProvider:
    name = NAME

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float | None = 600.0,
        max_retries: int = 2,
        reasoning_summary: ReasoningSummary | None = "auto",
        client: AsyncOpenAI | None = None,
        http: ProviderHTTP = "aiohttp",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._max_event_bytes = max_event_bytes
        self._client = client or make_openai_client(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, http=http
        )
        self._secrets = [api_key]
        self._timeout = timeout
        self._reasoning_summary = reasoning_summary

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        deadline = Deadline(self._timeout)
        reasoning = is_reasoning_model(request.model)
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    self._client.responses.with_streaming_response.create(
                        model=request.model,
                        input=to_input_items(request),
                        instructions=request.system or omit,
                        tools=to_tools(request) or omit,
                        include=_include(request) or omit,
                        max_output_tokens=request.max_output_tokens or omit,
                        temperature=(
                            omit
                            if reasoning or request.temperature is None
                            else request.temperature
                        ),
                        reasoning=_reasoning(
                            reasoning, self._reasoning_summary, request.options.reasoning_effort
                        ),
                        background=True if request.options.background else omit,
                        stream=True,
                    )
                )
            except openai.OpenAIError as exc:
                raise openai_error(exc, provider=self.name, secrets=self._secrets) from exc
            async for event in self._read(stack, response.http_response, request, deadline):
                yield event

    def reattaches(self, request: ModelRequest) -> bool:
        """Background mode (BRIDGE_MODEL_OPTIONS `background`): the API keeps the response
        and goes on generating it without the client."""
        return request.options.background

    async def reattach(
        self, request: ModelRequest, response_id: str
    ) -> AsyncGenerator[ProviderEvent, None]:
        """A background response's events again, from its first (GET
        /v1/responses/{id}?stream=true): the same response, nothing generated anew. Read
        from the start, the events rebuild the step's state as the first reader had it."""
        deadline = Deadline(self._timeout)
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    self._client.responses.with_streaming_response.retrieve(
                        response_id, stream=True
                    )
                )
            except openai.OpenAIError as exc:
                raise openai_error(exc, provider=self.name, secrets=self._secrets) from exc
            async for event in self._read(stack, response.http_response, request, deadline):
                yield event

    async def _read(
        self, stack: AsyncExitStack, body: RawBody, request: ModelRequest, deadline: Deadline
    ) -> AsyncGenerator[ProviderEvent, None]:
        """The response's event stream as provider events."""
        state = _StreamState(frozenset(tool.name for tool in request.tools))
        opened = False
        # After the final event the loop reads on to the end of the body, which lets
        # the connection go back to the pool rather than be closed.
        # Closed by the stack (before the response) however the loop is left.
        stream = await stack.enter_async_context(
            aclosing(
                read_sse(
                    body,
                    deadline,
                    provider=self.name,
                    label=LABEL,
                    max_event_bytes=self._max_event_bytes,
                )
            )
        )
        async for events in stream:
            for _, data in events:
                if state.finished or data.startswith(b"[DONE]"):
                    continue
                event = _read_event(data)
                if not opened:
                    opened = True
                    created = event.get("response") if event is not None else None
                    response_id = created.get("id") if isinstance(created, dict) else None
                    yield StreamOpened(response_id=_str(response_id) or None, model=request.model)
                produced = None
                if event is not None:
                    try:
                        produced = state.handle(event)
                    except MALFORMED:
                        produced = None
                if produced is None:
                    # As the AI SDK does: the event is reported, the step goes on.
                    yield EventError(unreadable_event_text(data, label=LABEL))
                    continue
                for out in produced:
                    yield out
        if state.finished:
            return
        raise error_for_status(
            None,
            "the stream ended before the response completed",
            provider=self.name,
            label=LABEL,
        )
