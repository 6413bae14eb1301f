"""`anthropic:<model>`: the Anthropic Messages API. The SDK makes the request (auth,
retries, errors of a non-2xx answer); the event stream is read from the raw body
(`with_streaming_response`) and parsed with orjson, which costs a fraction of the SDK's
typed events. Leaving the `async with` closes the HTTP response, so a stop reaches
Anthropic at once.

Thinking blocks come back on later turns only with their signature (Anthropic verifies
it), which `ReasoningEnd` hands out as `providerMetadata.anthropic.signature`.

A taken-over step whose partial output is text only is continued with that text as an
assistant prefill (`accepts_prefill`), not generated again.

This module: the provider (the SDK call, the stream read) and the error mapping; the
request is built in `request.py`, the stream's events mapped in `events.py`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, aclosing
from typing import Any

import anthropic
from anthropic import AsyncAnthropic, omit
from anthropic.types import (
    ThinkingConfigEnabledParam,
)

from bridge.errors import ProviderError
from bridge.providers._deadline import Deadline
from bridge.providers._errors import error_for_status, stream_error
from bridge.providers._sdk_http import ProviderHTTP, sdk_http_client, sdk_timeout
from bridge.providers._sse import DEFAULT_MAX_EVENT_BYTES
from bridge.providers._stream import MALFORMED, read_sse, timed_out, unreadable_event_text
from bridge.providers.anthropic.events import _read_event, _StreamState
from bridge.providers.anthropic.request import _beta_headers, to_messages, to_tools
from bridge.providers.base import (
    EventError,
    ModelRequest,
    ProviderEvent,
)

LABEL = "Anthropic"
DEFAULT_MAX_TOKENS = 4096


def anthropic_error(
    exc: anthropic.AnthropicError, *, provider: str, secrets: Sequence[str]
) -> ProviderError:
    """Map an SDK error; messages come from the parsed body (`str(exc)` quotes it whole)."""
    if isinstance(exc, anthropic.APITimeoutError) and timed_out(exc):
        return error_for_status(None, "request timed out", provider=provider, label=LABEL)
    if isinstance(exc, anthropic.APIConnectionError):  # (a timeout is one too)
        return error_for_status(
            None, "could not connect to the API", provider=provider, label=LABEL
        )
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code < 400:
            # An `error` event inside a 200 stream (overloaded, api_error, …).
            return stream_error(
                exc.type, exc.api_message, provider=provider, label=LABEL, secrets=secrets
            )
        return error_for_status(
            exc.status_code, exc.api_message, provider=provider, label=LABEL, secrets=secrets
        )
    return ProviderError(f"{LABEL} client error: {type(exc).__name__}", provider=provider)


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float | None = 600.0,
        max_retries: int = 2,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        thinking_budget: int | None = None,
        client: AsyncAnthropic | None = None,
        http: ProviderHTTP = "aiohttp",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._max_event_bytes = max_event_bytes
        self._client = client or AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=sdk_timeout(timeout),
            max_retries=max_retries,
            http_client=sdk_http_client(anthropic, http),
        )
        self._secrets = [api_key]
        self._timeout = timeout
        self._default_max_tokens = default_max_tokens
        self._thinking_budget = thinking_budget

    async def aclose(self) -> None:
        await self._client.close()

    def accepts_prefill(self, request: ModelRequest) -> bool:
        """A final assistant message is a prefill: the model continues its text (sent
        without its trailing whitespace, which the API refuses; `request.py`). Not with
        extended thinking, which the API does not allow to be prefilled."""
        return not (request.options.thinking_budget or self._thinking_budget)

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        deadline = Deadline(self._timeout)
        system, messages = to_messages(request)
        max_tokens = request.max_output_tokens or self._default_max_tokens
        thinking: ThinkingConfigEnabledParam | None = None
        budget = request.options.thinking_budget or self._thinking_budget
        if budget:
            # The budget counts against max_tokens: add it, so the answer keeps its share.
            thinking = {"type": "enabled", "budget_tokens": budget}
            max_tokens += budget
        # This SDK no longer declares `temperature`; the API takes it (not with thinking).
        extra = (
            {"temperature": request.temperature}
            if request.temperature is not None and thinking is None
            else None
        )
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    self._client.messages.with_streaming_response.create(
                        model=request.model,
                        max_tokens=max_tokens,
                        messages=messages,
                        system=system or omit,
                        tools=to_tools(request) or omit,
                        thinking=thinking or omit,
                        stream=True,
                        extra_body=extra,
                        extra_headers=_beta_headers(request),
                    )
                )
            except anthropic.AnthropicError as exc:
                raise anthropic_error(exc, provider=self.name, secrets=self._secrets) from exc

            state = _StreamState()
            # After message_stop the loop reads on to the end of the body, which lets the
            # connection go back to the pool rather than be closed.
            # Closed by the stack (before the response) however the loop is left.
            stream = await stack.enter_async_context(
                aclosing(
                    read_sse(
                        response.http_response,
                        deadline,
                        provider=self.name,
                        label=LABEL,
                        max_event_bytes=self._max_event_bytes,
                    )
                )
            )
            async for events in stream:
                for name, data in events:
                    if name == "ping" or state.finished:
                        continue  # what the SDK skips too
                    event = _read_event(data)
                    # Some Anthropic-compatible servers send no `event:` lines: the type is
                    # the payload's own.
                    if name == "error" or (event is not None and event.get("type") == "error"):
                        raise _stream_error(event or {}, secrets=self._secrets)
                    produced = None
                    if event is not None:
                        try:
                            produced = state.handle(event, request.model)
                        except MALFORMED:
                            produced = None
                    if produced is None:
                        # As the AI SDK does: the event is reported, the step goes on.
                        produced = [
                            *state.open(request.model),
                            EventError(unreadable_event_text(data, label=LABEL)),
                        ]
                    for out in produced:
                        yield out
        if state.finished:
            return
        raise error_for_status(
            None, "the stream ended before message_stop", provider=self.name, label=LABEL
        )


def _stream_error(event: dict[str, Any], *, secrets: Sequence[str]) -> ProviderError:
    """An `error` event inside a 200 stream (overloaded_error, api_error, …)."""
    error = event.get("error")
    fields = error if isinstance(error, dict) else {}
    kind, message = fields.get("type"), fields.get("message")
    return stream_error(
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) else None,
        provider=AnthropicProvider.name,
        label=LABEL,
        secrets=secrets,
    )
