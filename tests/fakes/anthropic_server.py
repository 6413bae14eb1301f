"""A fake Anthropic server: `POST /v1/messages`, streaming.

The real wire format (checked against the `anthropic` SDK's `types/raw_*_event.py`):
`event: message_start` (message with usage), `ping`, `content_block_start` /
`content_block_delta` (`text_delta`, `thinking_delta`, `signature_delta`,
`input_json_delta`, `citations_delta`) / `content_block_stop`, `message_delta` (stop
reason, output usage), `message_stop`; an `error` event inside the stream; errors before
it as `{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}`.

Assistant prefill, as the API documents it: a request whose last message is the assistant's
is continued from that message's text. Here the turn's script is the whole answer, and the
text the prefill already holds is skipped (the rest streams as more text of the first text
block); `prefills` counts such requests. A prefill that ends with whitespace is refused with
the API's 400, as the real API does.

Use: `base_url=fake.url` (the SDK adds `/v1/messages`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import (
    Citation,
    Cut,
    Delay,
    Drop,
    Finish,
    Hang,
    HttpError,
    Output,
    ParallelToolCalls,
    Pause,
    RawBytes,
    Reasoning,
    RedactedReasoning,
    ResponseFailed,
    ScriptedFake,
    StreamError,
    Text,
    ToolCall,
    Turn,
    Usage,
    json_error,
    sse,
)

_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
    529: ("overloaded_error", "Overloaded"),
}


_TRAILING_WHITESPACE = "final assistant content cannot end with trailing whitespace"


class AnthropicFake(ScriptedFake):
    def key_of(self, request: Request) -> str | None:
        # The API takes `x-api-key`; recent SDKs send the key as a bearer token instead.
        return request.headers.get("x-api-key") or super().key_of(request)

    def routes(self) -> list[Route]:
        return [Route("/v1/messages", self._messages, methods=["POST"])]

    prefills = 0
    """Requests that ended with an assistant prefill (continued, not answered anew)."""

    async def _messages(self, request: Request) -> Response:
        return await self.handle(request, self._render)

    async def handle(
        self, request: Request, render: Callable[[Turn, Any], Iterator[Output]]
    ) -> Response:
        body = await request.json() if await request.body() else None
        prefill = prefill_text(body)
        if prefill is not None and prefill != prefill.rstrip():
            await self._record(request)
            return self.error_response(
                HttpError(
                    400, "messages: final assistant content cannot end with trailing whitespace"
                )
            )
        if prefill is not None:
            self.prefills += 1
        return await super().handle(request, render)

    def error_response(self, error: HttpError) -> Response:
        kind, message = _DEFAULT_ERRORS.get(
            error.status,
            ("api_error" if error.status >= 500 else "invalid_request_error", "Error."),
        )
        request_id = self.next_id("req")
        body = {
            "type": "error",
            "error": {"type": error.error_type or kind, "message": error.message or message},
            "request_id": request_id,
        }
        return json_error(error.status, body, {"request-id": request_id, **error.headers})

    def _render(self, turn: Turn, body: Any) -> Iterator[Output]:
        return _MessagesRenderer(self, turn, body).render()


def prefill_text(body: Any) -> str | None:
    """The text of a final assistant message (the prefill), None without one."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
        return None
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    last = blocks[-1] if blocks else None
    return (
        str(last.get("text", "")) if isinstance(last, dict) and last.get("type") == "text" else ""
    )


class _MessagesRenderer:
    def __init__(self, fake: AnthropicFake, turn: Turn, body: dict[str, Any]) -> None:
        self.fake = fake
        self.turn = turn
        self.body = body
        # The script's text the prefill already holds: not sent again.
        prefill = prefill_text(body) or ""
        script = "".join("".join(s.deltas) for s in turn.steps if isinstance(s, Text))
        self.skip = len(prefill) if script.startswith(prefill) else 0
        self.index = -1
        self.open: str | None = None  # kind of the open content block
        self.deltas = 0
        self.usage = Usage()
        self.finish: str | None = None
        self.tool_calls = 0

    def event(self, data: dict[str, Any]) -> bytes:
        return sse(data, data["type"])

    def token(self) -> Iterator[Output]:
        self.deltas += 1
        if self.turn.token_delay > 0:
            yield Pause(self.turn.token_delay)

    def render(self) -> Iterator[Output]:
        yield self.event(
            {
                "type": "message_start",
                "message": {
                    "id": self.fake.next_id("msg"),
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self.body.get("model", "claude-fake"),
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": self.usage_of(self.first_usage()),
                },
            }
        )
        yield self.event({"type": "ping"})
        for step in self.turn.steps:
            match step:
                case Text():
                    yield from self.text(step)
                case Citation():
                    yield from self.citation(step)
                case Reasoning():
                    yield from self.thinking(step)
                case RedactedReasoning():
                    yield from self.start_block({"type": "redacted_thinking", "data": step.data})
                    yield from self.close()
                case ToolCall():
                    yield from self.tool_use(step)
                case ParallelToolCalls():
                    for call in step.calls:
                        yield from self.tool_use(call)
                case Usage():
                    self.usage = step
                case Finish():
                    self.finish = step.reason
                case Delay():
                    yield Pause(step.seconds)
                case Hang():
                    yield Pause(None)
                case Cut():
                    yield Drop(step.reset)
                    return
                case RawBytes():
                    yield step.data
                case StreamError() | ResponseFailed():
                    kind = step.error_type if isinstance(step, StreamError) else step.code
                    yield self.event(
                        {
                            "type": "error",
                            "error": {"type": kind or "overloaded_error", "message": step.message},
                        }
                    )
                    return
        yield from self.close()
        output = self.usage.output_tokens if self.usage.output_tokens is not None else self.deltas
        stop = self.finish or ("tool_use" if self.tool_calls else "end_turn")
        usage: dict[str, Any] = {"output_tokens": output}
        if self.usage.reasoning_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": self.usage.reasoning_tokens}
        yield self.event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": usage,
            }
        )
        yield self.event({"type": "message_stop"})

    def first_usage(self) -> Usage:
        """message_start reports the usage known up front: a Usage step anywhere in the turn."""
        for step in self.turn.steps:
            if isinstance(step, Usage):
                return step
        return self.usage

    @staticmethod
    def usage_of(usage: Usage) -> dict[str, Any]:
        return {
            "input_tokens": usage.input_tokens,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": usage.cached_tokens,
        }

    # -- blocks

    def start_block(self, block: dict[str, Any]) -> Iterator[Output]:
        yield from self.close()
        self.index += 1
        self.open = block["type"]
        yield self.event(
            {"type": "content_block_start", "index": self.index, "content_block": block}
        )

    def close(self) -> Iterator[Output]:
        if self.open is not None:
            self.open = None
            yield self.event({"type": "content_block_stop", "index": self.index})

    def delta(self, delta: dict[str, Any]) -> bytes:
        return self.event({"type": "content_block_delta", "index": self.index, "delta": delta})

    def text(self, step: Text) -> Iterator[Output]:
        pieces = step.deltas
        if self.skip:
            pieces = self.unsent(pieces)
            if not pieces:
                return
        if self.open != "text":
            yield from self.start_block({"type": "text", "text": ""})
        for piece in pieces:
            yield self.delta({"type": "text_delta", "text": piece})
            yield from self.token()

    def unsent(self, pieces: tuple[str, ...]) -> tuple[str, ...]:
        """The pieces past the prefill's text."""
        kept = []
        for piece in pieces:
            cut = min(self.skip, len(piece))
            self.skip -= cut
            if piece[cut:]:
                kept.append(piece[cut:])
        return tuple(kept)

    def citation(self, step: Citation) -> Iterator[Output]:
        if self.open != "text":
            yield from self.start_block({"type": "text", "text": "", "citations": []})
        if step.url is not None:
            citation: dict[str, Any] = {
                "type": "web_search_result_location",
                "cited_text": step.cited_text,
                "url": step.url,
                "title": step.title,
                "encrypted_index": "EncryptedIdx==",
            }
        else:
            citation = {
                "type": "char_location",
                "cited_text": step.cited_text,
                "document_index": step.document_index,
                "document_title": step.title,
                "start_char_index": 0,
                "end_char_index": len(step.cited_text),
                "file_id": None,
            }
        yield self.delta({"type": "citations_delta", "citation": citation})

    def thinking(self, step: Reasoning) -> Iterator[Output]:
        yield from self.start_block({"type": "thinking", "thinking": "", "signature": ""})
        for piece in step.deltas:
            yield self.delta({"type": "thinking_delta", "thinking": piece})
            yield from self.token()
        if step.signature:
            yield self.delta({"type": "signature_delta", "signature": step.signature})
        yield from self.close()

    def tool_use(self, step: ToolCall) -> Iterator[Output]:
        self.tool_calls += 1
        call_id = step.call_id or self.fake.next_id("toolu")
        yield from self.start_block(
            {"type": "tool_use", "id": call_id, "name": step.name, "input": {}}
        )
        # The API opens every tool input with an empty piece.
        yield self.delta({"type": "input_json_delta", "partial_json": ""})
        for piece in step.deltas:
            yield self.delta({"type": "input_json_delta", "partial_json": piece})
            yield from self.token()
        yield from self.close()
