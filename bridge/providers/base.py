"""The provider protocol and the provider-neutral events providers yield.

A provider turns one model call into an async iterator of `ProviderEvent`s. It knows
nothing of the UI message stream: the runner maps events to chunks. One call is one
step; the runner drives the multi-step tool loop and calls `stream` once per step with
the conversation so far (the in-progress assistant message included, with its tool
parts and their outputs).

Each `stream` call yields, in order:

* `StreamOpened` once the provider accepted the request (HTTP status OK). Errors before
  it (bad key, unknown model, rate limit) are raised as `ProviderError`s and reach the
  client as a non-2xx response when nothing was streamed yet;
* any number of content events; text and reasoning blocks are bracketed by their
  start/end events with a block id unique within the step; tool calls stream their input
  (`ToolInputStart`, `ToolInputDelta`) and end with a complete `ToolCall`;
* `StepFinished` last, with the normalised finish reason and the step's usage.

A provider that runs tools itself (a hosted tool, or an agent framework with its own tool
loop) marks their `ToolCall` `provider_executed=True` and reports the outcome with a
`ToolResult`; the bridge shows both and never runs such a call. Any object with
`name`, `stream` and `aclose` is a provider: register your own with
`BRIDGE_PROVIDERS` or in code (README, "Bring your own agent").

A failure after `StreamOpened` is raised as a `ProviderError` too; the runner turns it
into an `error` chunk. Cancelling the iterator (`aclose`) must close the upstream HTTP
response, so a stop really stops the provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from protocol.messages import UIMessage

ProviderMetadata = dict[str, dict[str, Any]]
FinishReason = Literal[
    "stop", "length", "content-filter", "tool-calls", "error", "interrupted", "other"
]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    """JSON schema of the input object."""


ReasoningEffort = Literal["minimal", "low", "medium", "high"]


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Per-model options a deployment sets (BRIDGE_MODEL_OPTIONS); a provider applies those
    its API has and ignores the others."""

    reasoning_effort: ReasoningEffort | None = None
    """OpenAI reasoning models (Responses `reasoning.effort`, Chat `reasoning_effort`)."""
    thinking_budget: int | None = None
    """Anthropic extended thinking: tokens the model may think for."""
    provider_tools: Sequence[Mapping[str, Any]] = ()
    """Tools the provider runs itself, offered with every request of the model, each in the
    provider API's own shape (e.g. `{"type": "web_search"}` for OpenAI Responses,
    `{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}` for Anthropic).
    Their calls come back as provider-executed tool calls with their results."""
    background: bool = False
    """OpenAI Responses background mode: the response is stored and generated without the
    client, and a taken-over step reads it again by id (`reattach`) instead of asking anew."""


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    """The provider's own model name (the part after `provider:`)."""
    messages: Sequence[UIMessage]
    """The conversation, oldest first; may end with the in-progress assistant message."""
    system: str | None = None
    tools: Sequence[ToolSpec] = ()
    max_output_tokens: int | None = None
    temperature: float | None = None
    options: ModelOptions = field(default_factory=ModelOptions)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The provider accepted the request."""

    response_id: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class TextStart:
    id: str
    provider_metadata: ProviderMetadata | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TextEnd:
    id: str
    provider_metadata: ProviderMetadata | None = None


@dataclass(frozen=True, slots=True)
class ReasoningStart:
    id: str
    provider_metadata: ProviderMetadata | None = None


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ReasoningEnd:
    id: str
    provider_metadata: ProviderMetadata | None = None
    """E.g. {"anthropic": {"signature": "..."}} or {"anthropic": {"redactedData": "..."}},
    {"openai": {"itemId": "...", "encryptedContent": ...}}: what the provider needs to get
    the block back on the next turn."""


@dataclass(frozen=True, slots=True)
class ToolInputStart:
    tool_call_id: str
    tool_name: str
    provider_executed: bool = False


@dataclass(frozen=True, slots=True)
class ToolInputDelta:
    tool_call_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call. `input_text` is the raw JSON text the model produced (it may be
    invalid JSON: the runner validates it)."""

    tool_call_id: str
    tool_name: str
    input_text: str
    provider_executed: bool = False
    provider_metadata: ProviderMetadata | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The result of a tool call the provider (or the agent behind it) executed itself:
    its `ToolCall` came with `provider_executed=True` and the bridge does not run it.
    `error` set: the tool failed with this text (`output` is then ignored)."""

    tool_call_id: str
    output: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ToolApprovalRequest:
    """The provider asks the user's approval before it runs a call of its own (OpenAI's
    remote MCP `mcp_approval_request`): the call came as a `ToolCall` with
    `provider_executed=True`; the turn waits for the answer, which goes back to the
    provider on the next request under `approval_id`."""

    tool_call_id: str
    approval_id: str


@dataclass(frozen=True, slots=True)
class Source:
    source_type: Literal["url", "document"]
    id: str
    url: str | None = None
    title: str | None = None
    media_type: str | None = None
    filename: str | None = None
    provider_metadata: ProviderMetadata | None = None


@dataclass(frozen=True, slots=True)
class File:
    media_type: str
    url: str
    """A data URL or an http(s) URL."""


@dataclass(frozen=True, slots=True)
class EventError:
    """An event of the stream the provider could not read (not JSON, or not of the shape
    the API documents). The step goes on, as in the AI SDK's providers: the client is shown
    `text` as an `error` chunk and the rest of the answer (e.g. the other tool calls)."""

    text: str


@dataclass(frozen=True, slots=True)
class StepFinished:
    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    raw_finish_reason: str | None = None
    provider_metadata: ProviderMetadata | None = None


ProviderEvent = (
    StreamOpened
    | TextStart
    | TextDelta
    | TextEnd
    | ReasoningStart
    | ReasoningDelta
    | ReasoningEnd
    | ToolInputStart
    | ToolInputDelta
    | ToolCall
    | ToolResult
    | ToolApprovalRequest
    | Source
    | File
    | EventError
    | StepFinished
)


class Provider(Protocol):
    """One configured provider (e.g. the OpenAI Responses API with a key and base URL)."""

    name: str
    """The prefix in "provider:model" strings."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        """Start one model call. See the module docstring for the event order."""
        ...

    async def aclose(self) -> None:
        """Release the HTTP client."""
        ...


def reattaches(provider: Provider, request: ModelRequest) -> bool:
    """Whether the provider can read a response it started for `request` again by its id
    (`StreamOpened.response_id`), from its first event, after the reader went away: a
    provider says so with `reattaches(request) -> bool` and serves it with
    `reattach(request, response_id) -> AsyncIterator[ProviderEvent]` (the same events as
    `stream`). A taken-over step is then read again, not generated again."""
    check = getattr(provider, "reattaches", None)
    return callable(check) and check(request) is True


def accepts_prefill(provider: Provider, request: ModelRequest) -> bool:
    """Whether the provider continues a request that ends with a partial assistant text
    (the API's assistant prefill) from that text, rather than answering anew. A provider
    says so with an `accepts_prefill(request) -> bool` method; without one, it does not.
    A taken-over step is continued this way instead of re-run (bridge/generation/prefill.py)."""
    check = getattr(provider, "accepts_prefill", None)
    return callable(check) and check(request) is True
