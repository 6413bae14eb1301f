"""`openai-chat:<model>`: Chat Completions streaming, for OpenAI-compatible servers (vLLM,
Ollama, LM Studio, Groq, …) through the official `openai` SDK.

The SDK makes the request; the event stream is read from the raw body and parsed with
orjson, as for the Responses API. This module: the provider (the SDK call, the stream
read); the request is built in `request.py`, the chunks mapped in `events.py`. The client
and the error mapping are those of `openai_responses/`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, aclosing

import openai
from openai import AsyncOpenAI, omit

from bridge.providers._deadline import Deadline
from bridge.providers._errors import error_for_status
from bridge.providers._sdk_http import ProviderHTTP
from bridge.providers._sse import DEFAULT_MAX_EVENT_BYTES
from bridge.providers._stream import MALFORMED, read_sse, unreadable_event_text
from bridge.providers.base import EventError, ModelRequest, ProviderEvent, StreamOpened
from bridge.providers.openai_chat.events import (
    LABEL,
    NAME,
    _read_chunk,
    _stream_error,
    _StreamState,
    _text,
)
from bridge.providers.openai_chat.request import to_messages, to_tool
from bridge.providers.openai_responses import make_openai_client, openai_error


class OpenAIChatProvider:
    name = NAME

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float | None = 600.0,
        max_retries: int = 2,
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

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        deadline = Deadline(self._timeout)
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    self._client.chat.completions.with_streaming_response.create(
                        model=request.model,
                        messages=to_messages(request),
                        tools=[to_tool(tool) for tool in request.tools] or omit,
                        # `max_tokens`, not `max_completion_tokens`: the compatible servers
                        # all know the older name.
                        max_tokens=request.max_output_tokens or omit,
                        temperature=omit if request.temperature is None else request.temperature,
                        reasoning_effort=request.options.reasoning_effort or omit,
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                )
            except openai.OpenAIError as exc:
                raise openai_error(exc, provider=self.name, secrets=self._secrets) from exc

            state = _StreamState()
            opened = done = False
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
                for _, data in events:
                    if done:
                        break  # read on to the end of the body: the connection is reused
                    if data.startswith(b"[DONE]"):
                        done = True
                        break
                    chunk = _read_chunk(data)
                    if chunk is not None and (error := chunk.get("error")) is not None:
                        raise _stream_error(error, secrets=self._secrets)
                    if not opened:
                        opened = True
                        first = chunk or {}
                        yield StreamOpened(
                            response_id=_text(first.get("id")), model=_text(first.get("model"))
                        )
                    produced = None
                    if chunk is not None:
                        try:
                            produced = state.handle(chunk)
                        except MALFORMED:
                            produced = None
                    if produced is None:
                        # As the AI SDK does: the chunk is reported, the step goes on.
                        yield EventError(unreadable_event_text(data, label=LABEL))
                        continue
                    for event in produced:
                        yield event
        if not done and not state.saw_finish:
            # Neither `[DONE]` nor a finish reason: the body ended early (some compatible
            # servers leave `[DONE]` out, none the finish reason).
            raise error_for_status(
                None,
                "the stream ended before the response completed",
                provider=self.name,
                label=LABEL,
            )
        if not opened:
            yield StreamOpened(model=request.model)
        for event in state.finish():
            yield event
