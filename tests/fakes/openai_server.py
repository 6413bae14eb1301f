"""A fake OpenAI server: `POST /v1/responses` and `POST /v1/chat/completions`, streaming.

Both speak the real wire format (checked against the `openai` SDK's types in
`openai/types/responses/*_event.py` and `openai/types/chat/chat_completion_chunk.py`):

* Responses: `event: <type>` + `data: {"type": <type>, "sequence_number": n, ...}` for
  `response.created`, `response.in_progress`, `response.output_item.added/done`,
  `response.content_part.added/done`, `response.output_text.delta/done`,
  `response.output_text.annotation.added`, `response.reasoning_summary_part.added/done`,
  `response.reasoning_summary_text.delta/done`, `response.function_call_arguments.delta/
  done`, then `response.completed` / `response.incomplete` / `response.failed`, or an
  `error` event;
* Chat Completions: `data: {"object": "chat.completion.chunk", ...}` lines, a usage chunk
  when `stream_options.include_usage`, then `data: [DONE]`; an error inside the stream is
  `data: {"error": {...}}` (what vLLM and others send).

Background mode (Responses): a request with `background: true` is stored, rendered whole
at once (`background_streams`), and `GET /v1/responses/{id}?stream=true[&starting_after=n]`
streams the same events again (those after sequence number n), paced as the first time:
the same response, no new generation (`retrievals` counts them).

Use: `base_url=fake.url + "/v1"` (see `OpenAIFake.base_url`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
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
    ResponseFailed,
    ScriptedFake,
    StreamError,
    Text,
    ToolCall,
    Turn,
    Usage,
    _SSEStream,
    json_error,
    sse,
)

_DEFAULT_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 20ms.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}


def _sequence_of(output: Output) -> int:
    """The `sequence_number` of a rendered event (a pause goes with the events after it)."""
    if not isinstance(output, bytes):
        return 1 << 62
    for line in output.split(b"\n"):
        if line.startswith(b"data: "):
            number = orjson.loads(line[6:]).get("sequence_number")
            return number if isinstance(number, int) else 1 << 62
    return 1 << 62


class OpenAIFake(ScriptedFake):
    chat_reasoning_field = "reasoning_content"
    """Where Chat Completions reasoning deltas go: "reasoning_content" (vLLM, DeepSeek) or
    "reasoning" (Ollama)."""

    def __init__(self, **kwargs: Any) -> None:
        self.background_streams: dict[str, list[Output]] = {}
        """Background responses by id: every event rendered."""
        self.retrievals = 0
        """Background response streams read again (GET)."""
        super().__init__(**kwargs)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def routes(self) -> list[Route]:
        return [
            Route("/v1/responses", self._responses, methods=["POST"]),
            Route("/v1/responses/{response_id}", self._retrieve, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            # Azure OpenAI: the deployment in the path, the key in `api-key`.
            Route(
                "/openai/deployments/{deployment}/chat/completions", self._chat, methods=["POST"]
            ),
        ]

    async def _responses(self, request: Request) -> Response:
        return await self.handle(request, self._render_responses)

    async def _chat(self, request: Request) -> Response:
        return await self.handle(request, self._render_chat)

    def key_of(self, request: Request) -> str | None:
        return request.headers.get("api-key") or super().key_of(request)

    def auth_error(self, key: str | None) -> HttpError:
        # The real message quotes the key, masked in the middle.
        masked = f"{key[:8]}{'*' * max(len(key) - 12, 4)}{key[-4:]}" if key else "(none)"
        message = (
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return HttpError(401, message)

    def error_response(self, error: HttpError) -> Response:
        kind, code, message = _DEFAULT_ERRORS.get(
            error.status,
            ("server_error" if error.status >= 500 else "invalid_request_error", None, "Error."),
        )
        body = {
            "error": {
                "message": error.message or message,
                "type": error.error_type or kind,
                "param": None,
                "code": error.code or code,
            }
        }
        headers = {"x-request-id": self.next_id("req"), **error.headers}
        return json_error(error.status, body, headers)

    def _render_responses(self, turn: Turn, body: Any) -> Iterator[Output]:
        renderer = _ResponsesRenderer(self, turn, body)
        if not (isinstance(body, dict) and body.get("background")):
            return renderer.render()
        output = list(renderer.render())  # the API goes on without the client: all of it
        self.background_streams[renderer.id] = output
        return iter(output)

    async def _retrieve(self, request: Request) -> Response:
        """GET a background response's event stream again, after `starting_after`."""
        await self._record(request)
        output = self.background_streams.get(request.path_params["response_id"])
        if output is None:
            return self.error_response(HttpError(404, "No response found with that id."))
        if request.query_params.get("stream") != "true":
            return self.error_response(HttpError(400, "this fake only streams (stream=true)"))
        after = int(request.query_params.get("starting_after", "-1"))
        self.retrievals += 1
        return _SSEStream(self, iter([o for o in output if _sequence_of(o) > after]))

    def _render_chat(self, turn: Turn, body: Any) -> Iterator[Output]:
        return _ChatRenderer(self, turn, body).render()


# --------------------------------------------------------------------------- Responses


class _ResponsesRenderer:
    def __init__(self, fake: OpenAIFake, turn: Turn, body: dict[str, Any]) -> None:
        self.fake = fake
        self.turn = turn
        self.body = body
        self.id = fake.next_id("resp")
        self.created_at = int(time.time())
        self.seq = 0
        self.output: list[dict[str, Any]] = []  # finished items, for the final response
        self.open: dict[str, Any] | None = None  # the item being streamed
        self.deltas = 0
        self.usage = Usage()
        self.finish: str | None = None

    def event(self, data: dict[str, Any]) -> bytes:
        data["sequence_number"] = self.seq
        self.seq += 1
        return sse(data, data["type"])

    def token(self) -> Iterator[Output]:
        self.deltas += 1
        if self.turn.token_delay > 0:
            yield Pause(self.turn.token_delay)

    def render(self) -> Iterator[Output]:
        yield self.event({"type": "response.created", "response": self.response("in_progress")})
        yield self.event({"type": "response.in_progress", "response": self.response("in_progress")})
        for step in self.turn.steps:
            match step:
                case Text():
                    yield from self.text(step)
                case Citation():
                    yield from self.citation(step)
                case Reasoning():
                    yield from self.reasoning(step)
                case ToolCall():
                    yield from self.tool_call(step)
                case ParallelToolCalls():
                    for call in step.calls:
                        yield from self.tool_call(call)
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
                case StreamError():
                    yield self.event(
                        {
                            "type": "error",
                            "code": step.error_type or "server_error",
                            "message": step.message,
                            "param": None,
                        }
                    )
                    return
                case ResponseFailed():
                    yield from self.close()
                    response = self.response("failed")
                    response["error"] = {"code": step.code, "message": step.message}
                    yield self.event({"type": "response.failed", "response": response})
                    return
        yield from self.close()
        if self.finish in ("max_output_tokens", "content_filter"):
            response = self.response("incomplete")
            response["incomplete_details"] = {"reason": self.finish}
            yield self.event({"type": "response.incomplete", "response": response})
        else:
            yield self.event({"type": "response.completed", "response": self.response("completed")})

    # -- items

    def add_item(self, item: dict[str, Any]) -> bytes:
        self.open = item
        return self.event(
            {
                "type": "response.output_item.added",
                "output_index": len(self.output),
                "item": dict(item),
            }
        )

    def close(self) -> Iterator[Output]:
        item = self.open
        if item is None:
            return
        self.open = None
        index = len(self.output)
        if item["type"] == "message":
            part = item["content"][0]
            yield self.event(
                {
                    "type": "response.output_text.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "text": part["text"],
                    "logprobs": [],
                }
            )
            yield self.event(
                {
                    "type": "response.content_part.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": part,
                }
            )
        elif item["type"] == "reasoning":
            yield from self.close_summary_part(item)
        elif item["type"] == "function_call":
            yield self.event(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "arguments": item["arguments"],
                }
            )
        item["status"] = "completed"
        self.output.append(item)
        yield self.event({"type": "response.output_item.done", "output_index": index, "item": item})

    def text(self, step: Text) -> Iterator[Output]:
        if self.open is None or self.open["type"] != "message":
            yield from self.close()
            yield from self.open_message()
        assert self.open is not None
        part = self.open["content"][0]
        for delta in step.deltas:
            part["text"] += delta
            yield self.event(
                {
                    "type": "response.output_text.delta",
                    "item_id": self.open["id"],
                    "output_index": len(self.output),
                    "content_index": 0,
                    "delta": delta,
                    "logprobs": [],
                }
            )
            yield from self.token()

    def open_message(self) -> Iterator[Output]:
        item: dict[str, Any] = {
            "id": self.fake.next_id("msg"),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        yield self.add_item(item)
        part: dict[str, Any] = {
            "type": "output_text",
            "annotations": [],
            "logprobs": [],
            "text": "",
        }
        item["content"].append(part)
        yield self.event(
            {
                "type": "response.content_part.added",
                "item_id": item["id"],
                "output_index": len(self.output),
                "content_index": 0,
                "part": {**part, "annotations": []},
            }
        )

    def citation(self, step: Citation) -> Iterator[Output]:
        if self.open is None or self.open["type"] != "message":
            yield from self.close()
            yield from self.open_message()
        assert self.open is not None
        part = self.open["content"][0]
        end = len(part["text"])
        if step.url is not None:
            annotation: dict[str, Any] = {
                "type": "url_citation",
                "url": step.url,
                "title": step.title,
                "start_index": max(end - 10, 0),
                "end_index": end,
            }
        else:
            annotation = {
                "type": "file_citation",
                "file_id": f"file-{step.document_index}",
                "filename": step.title,
                "index": end,
            }
        part["annotations"].append(annotation)
        yield self.event(
            {
                "type": "response.output_text.annotation.added",
                "item_id": self.open["id"],
                "output_index": len(self.output),
                "content_index": 0,
                "annotation_index": len(part["annotations"]) - 1,
                "annotation": annotation,
            }
        )

    def reasoning(self, step: Reasoning) -> Iterator[Output]:
        item = self.open
        if step.continues and item is not None and item["type"] == "reasoning":
            yield from self.close_summary_part(item)
        else:
            yield from self.close()
            item = {"id": self.fake.next_id("rs"), "type": "reasoning", "summary": []}
            yield self.add_item(item)
        if step.encrypted_content is not None:  # sent with output_item.done
            item["encrypted_content"] = step.encrypted_content
        summary = {"type": "summary_text", "text": ""}
        index = len(item["summary"])
        item["summary"].append(summary)
        item["_open_summary"] = index
        common = {"item_id": item["id"], "output_index": len(self.output), "summary_index": index}
        yield self.event(
            {"type": "response.reasoning_summary_part.added", **common, "part": dict(summary)}
        )
        for delta in step.deltas:
            summary["text"] += delta
            yield self.event(
                {"type": "response.reasoning_summary_text.delta", **common, "delta": delta}
            )
            yield from self.token()

    def close_summary_part(self, item: dict[str, Any]) -> Iterator[Output]:
        index = item.pop("_open_summary", None)
        if index is None:
            return
        summary = item["summary"][index]
        common = {"item_id": item["id"], "output_index": len(self.output), "summary_index": index}
        yield self.event(
            {"type": "response.reasoning_summary_text.done", **common, "text": summary["text"]}
        )
        yield self.event(
            {"type": "response.reasoning_summary_part.done", **common, "part": dict(summary)}
        )

    def tool_call(self, step: ToolCall) -> Iterator[Output]:
        yield from self.close()
        item = {
            "id": self.fake.next_id("fc"),
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": step.call_id or self.fake.next_id("call"),
            "name": step.name,
        }
        yield self.add_item(item)
        for delta in step.deltas:
            item["arguments"] += delta
            yield self.event(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": len(self.output),
                    "delta": delta,
                }
            )
            yield from self.token()
        yield from self.close()

    # -- the response object

    def response(self, status: str) -> dict[str, Any]:
        body = self.body
        done = status != "in_progress"
        usage = None
        if done:
            output_tokens = (
                self.usage.output_tokens if self.usage.output_tokens is not None else self.deltas
            )
            usage = {
                "input_tokens": self.usage.input_tokens,
                "input_tokens_details": {"cached_tokens": self.usage.cached_tokens},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": self.usage.reasoning_tokens},
                "total_tokens": self.usage.input_tokens + output_tokens,
            }
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body.get("model", "gpt-fake"),
            "output": list(self.output) if done else [],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None, **(body.get("reasoning") or {})},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": {},
        }


# --------------------------------------------------------------------------- Chat


class _ChatRenderer:
    def __init__(self, fake: OpenAIFake, turn: Turn, body: dict[str, Any]) -> None:
        self.fake = fake
        self.turn = turn
        self.body = body
        self.id = fake.next_id("chatcmpl")
        self.created = int(time.time())
        self.model = body.get("model", "fake-model")
        self.tool_index = 0
        self.deltas = 0
        self.usage = Usage()
        self.finish: str | None = None

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
        )

    def token(self) -> Iterator[Output]:
        self.deltas += 1
        if self.turn.token_delay > 0:
            yield Pause(self.turn.token_delay)

    def render(self) -> Iterator[Output]:
        yield self.chunk({"role": "assistant", "content": ""})
        for step in self.turn.steps:
            match step:
                case Text():
                    for delta in step.deltas:
                        yield self.chunk({"content": delta})
                        yield from self.token()
                case Reasoning():
                    for delta in step.deltas:
                        yield self.chunk({self.fake.chat_reasoning_field: delta})
                        yield from self.token()
                case ToolCall():
                    yield from self.tool_calls([step])
                case ParallelToolCalls():
                    yield from self.tool_calls(step.calls)
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
                    message = step.message
                    kind = step.error_type if isinstance(step, StreamError) else step.code
                    yield sse(
                        {
                            "error": {
                                "message": message,
                                "type": kind or "server_error",
                                "param": None,
                                "code": None,
                            }
                        }
                    )
                    return
        finish = self.finish or ("tool_calls" if self.tool_index else "stop")
        yield self.chunk({}, finish)
        if (self.body.get("stream_options") or {}).get("include_usage"):
            output = (
                self.usage.output_tokens if self.usage.output_tokens is not None else (self.deltas)
            )
            yield sse(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": self.usage.input_tokens,
                        "completion_tokens": output,
                        "total_tokens": self.usage.input_tokens + output,
                        "prompt_tokens_details": {"cached_tokens": self.usage.cached_tokens},
                        "completion_tokens_details": {
                            "reasoning_tokens": self.usage.reasoning_tokens
                        },
                    },
                }
            )
        yield b"data: [DONE]\n\n"

    def tool_calls(self, calls: Any) -> Iterator[Output]:
        """The first delta of each call carries id and name; argument pieces then follow
        round-robin, so parallel calls interleave as they do on the wire."""
        indexed = []
        for call in calls:
            index = self.tool_index
            self.tool_index += 1
            call_id = call.call_id or self.fake.next_id("call")
            yield self.chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            indexed.append((index, list(call.deltas)))
        while any(pieces for _, pieces in indexed):
            for index, pieces in indexed:
                if pieces:
                    yield self.chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": pieces.pop(0)}}]}
                    )
                    yield from self.token()
