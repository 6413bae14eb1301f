"""What the providers share: the conversation cut into provider-neutral turns, data URLs,
tool outputs as text, safe error messages and the whole-stream deadline.

Every provider API wants the same history in a different shape. `conversation_turns` does
the part that is the same for all of them: it walks the UI messages once, splits each
assistant message at its `step-start` parts (one step = one model call, whose tool calls
are answered before the next step) and drops what a model must not see (tool calls
without a result yet, data parts, sources). Each provider then only maps turns to its
own request types.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from bridge.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from protocol.messages import (
    DynamicToolUIPart,
    FileUIPart,
    ReasoningUIPart,
    SteeringMessageUIPart,
    StepStartUIPart,
    TextUIPart,
    ToolUIPart,
    UIMessage,
)

ProviderMetadata = dict[str, dict[str, Any]]
T = TypeVar("T")

# --------------------------------------------------------------------------- turns


@dataclass(frozen=True, slots=True)
class ToolResult:
    output: Any
    """The tool's output (any JSON value); for errors and denials the text below."""
    text: str
    """The output as the text a model reads."""
    is_error: bool = False
    denied: bool = False


@dataclass(frozen=True, slots=True)
class ToolExchange:
    """One tool call of an assistant step together with its result."""

    tool_call_id: str
    tool_name: str
    input: Any
    result: ToolResult
    provider_metadata: ProviderMetadata | None = None

    @property
    def input_json(self) -> str:
        return to_json(self.input if self.input is not None else {})

    @property
    def input_object(self) -> dict[str, Any]:
        """The input as an object: APIs that take parsed input (Anthropic) reject anything
        else, and an invalid call stored as raw text is best sent as an empty object."""
        value = self.input
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return {}
        return dict(value) if isinstance(value, dict) else {}


UserContent = TextUIPart | FileUIPart
AssistantContent = TextUIPart | ReasoningUIPart | ToolExchange


@dataclass(slots=True)
class SystemTurn:
    text: str


@dataclass(slots=True)
class UserTurn:
    parts: list[UserContent] = field(default_factory=list)


@dataclass(slots=True)
class AssistantStep:
    """The content of one model call, in the order the model produced it."""

    parts: list[AssistantContent] = field(default_factory=list)

    @property
    def tool_exchanges(self) -> list[ToolExchange]:
        return [part for part in self.parts if isinstance(part, ToolExchange)]


Turn = SystemTurn | UserTurn | AssistantStep


def conversation_turns(messages: Iterable[UIMessage]) -> list[Turn]:
    turns: list[Turn] = []
    for message in messages:
        if message.role == "system":
            text = "\n\n".join(p.text for p in message.parts if isinstance(p, TextUIPart))
            if text.strip():
                turns.append(SystemTurn(text))
        elif message.role == "user":
            parts = _user_parts(message.parts)
            if parts:
                turns.append(UserTurn(parts))
        else:
            turns.extend(_assistant_turns(message))
    return turns


def _user_parts(parts: Iterable[object]) -> list[UserContent]:
    """Text (non-empty) and file parts; nothing else of a user message reaches a model."""
    kept: list[UserContent] = []
    for part in parts:
        if isinstance(part, FileUIPart) or (isinstance(part, TextUIPart) and part.text):
            kept.append(part)
    return kept


def _assistant_turns(message: UIMessage) -> list[Turn]:
    turns: list[Turn] = []
    step = AssistantStep()

    def flush() -> None:
        nonlocal step
        if step.parts:
            turns.append(step)
        step = AssistantStep()

    for part in message.parts:
        if isinstance(part, StepStartUIPart):
            flush()
        elif isinstance(part, TextUIPart):
            if part.text:
                step.parts.append(part)
        elif isinstance(part, ReasoningUIPart):
            step.parts.append(part)
        elif isinstance(part, ToolUIPart | DynamicToolUIPart):
            exchange = tool_exchange(part)
            if exchange is not None:
                step.parts.append(exchange)
        elif isinstance(part, SteeringMessageUIPart):
            # A user message injected mid-run: the model reads it where it was injected.
            flush()
            steering = _user_parts(part.parts)
            if steering:
                turns.append(UserTurn(steering))
    flush()
    return turns


def tool_exchange(part: ToolUIPart | DynamicToolUIPart) -> ToolExchange | None:
    """The call and its result, or None when the call must not be sent: without a result
    yet (streaming, waiting for approval or for the runner to execute it) or executed by
    the provider itself."""
    if part.provider_executed:
        return None
    result = tool_result(part)
    if result is None:
        return None
    return ToolExchange(
        tool_call_id=part.tool_call_id,
        tool_name=part.tool_name,
        input=part.input,
        result=result,
        provider_metadata=part.call_provider_metadata,
    )


def tool_result(part: ToolUIPart | DynamicToolUIPart) -> ToolResult | None:
    if part.state == "output-available":
        return ToolResult(output=part.output, text=as_text(part.output))
    if part.state == "output-error":
        text = part.error_text or "The tool failed."
        return ToolResult(output=text, text=text, is_error=True)
    denied = part.state == "output-denied" or (
        part.state == "approval-responded"
        and part.approval is not None
        and part.approval.approved is False
    )
    if denied:
        text = "The user denied this tool call."
        if part.approval is not None and part.approval.reason:
            text += f" Reason: {part.approval.reason}"
        return ToolResult(output=text, text=text, is_error=True, denied=True)
    return None


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else to_json(value)


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def metadata_value(metadata: ProviderMetadata | None, provider: str, key: str) -> Any:
    """`metadata[provider][key]`, tolerating a missing or malformed level."""
    if not isinstance(metadata, dict):
        return None
    scoped = metadata.get(provider)
    return scoped.get(key) if isinstance(scoped, dict) else None


# --------------------------------------------------------------------------- files

FileKind = Literal["image", "pdf", "text", "other"]


@dataclass(frozen=True, slots=True)
class DataURL:
    media_type: str
    data: str
    """Base64."""

    def text(self) -> str:
        return base64.b64decode(self.data).decode("utf-8", errors="replace")


_DATA_URL = re.compile(r"^data:(?P<type>[^,;]*)(?P<params>(?:;[^,;]*)*),(?P<data>.*)$", re.DOTALL)


def parse_data_url(url: str) -> DataURL | None:
    """`data:[<type>][;base64],<data>` → media type and base64 data; None otherwise."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    media_type = match["type"].strip().lower() or "text/plain"
    params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
    payload = match["data"]
    if "base64" in params:
        try:
            raw = base64.b64decode(urllib.parse.unquote(payload), validate=False)
        except (binascii.Error, ValueError):
            return None
    else:
        raw = urllib.parse.unquote_to_bytes(payload)
    return DataURL(media_type=media_type, data=base64.b64encode(raw).decode("ascii"))


def file_kind(media_type: str) -> FileKind:
    media_type = media_type.lower()
    if media_type.startswith("image/"):
        return "image"
    if media_type == "application/pdf":
        return "pdf"
    if media_type.startswith("text/") or media_type in {"application/json", "application/xml"}:
        return "text"
    return "other"


def file_text(part: FileUIPart) -> str | None:
    """The content of a text file sent as a data URL, as a labelled block of text."""
    data = parse_data_url(part.url)
    if data is None:
        return None
    name = part.filename or "attachment"
    return f"[file {name} ({part.media_type})]\n{data.text()}"


def unsupported_file_note(part: FileUIPart) -> str:
    """A file the provider cannot read becomes a note instead of an error, so one odd
    attachment does not make the whole chat unusable."""
    name = part.filename or "attachment"
    return f"[file {name} ({part.media_type}) omitted: this model cannot read that file type]"


# --------------------------------------------------------------------------- errors

_KEY_LIKE = re.compile(r"\b(?:sk|gsk|xai|key|api[_-]?key)[-_][A-Za-z0-9_\-*.]{6,}", re.IGNORECASE)
_MAX_MESSAGE = 500


def redact(text: str, secrets: Sequence[str | None] = ()) -> str:
    """Remove the configured secrets and anything shaped like an API key (upstream error
    messages quote the key, e.g. "Incorrect API key provided: sk-abc***wxyz")."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _KEY_LIKE.sub("[redacted]", text)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text


def error_for_status(
    status: int | None,
    detail: str | None,
    *,
    provider: str,
    label: str,
    secrets: Sequence[str | None] = (),
) -> ProviderError:
    """The ProviderError for an HTTP status the provider answered with (None: no answer,
    e.g. a timeout or a stream cut short)."""
    suffix = f": {redact(detail, secrets)}" if detail else ""
    status_text = f" (HTTP {status})" if status is not None else ""
    if status in (401, 403):
        return ProviderAuthError(
            f"{label} rejected the credentials{status_text}{suffix}",
            provider=provider,
            upstream_status=status,
        )
    if status == 429:
        return ProviderRateLimited(
            f"{label} is rate limiting requests{status_text}{suffix}",
            provider=provider,
            upstream_status=status,
        )
    if status is not None and 400 <= status < 500 and status != 408:
        return ProviderBadRequest(
            f"{label} refused the request{status_text}{suffix}",
            provider=provider,
            upstream_status=status,
        )
    return ProviderUnavailable(
        f"{label} failed{status_text}{suffix}", provider=provider, upstream_status=status
    )


def stream_error(
    kind: str | None,
    detail: str | None,
    *,
    provider: str,
    label: str,
    secrets: Sequence[str | None] = (),
) -> ProviderError:
    """The ProviderError for an error the provider reported inside a stream, by its
    error type or code (both APIs use similar words)."""
    text = redact(detail or "unknown error", secrets)
    kind = (kind or "").lower()
    message = f"{label} stream error ({kind or 'error'}): {text}"
    if "rate_limit" in kind:
        return ProviderRateLimited(message, provider=provider)
    if "auth" in kind or "permission" in kind:
        return ProviderAuthError(message, provider=provider)
    if "overloaded" in kind or "server_error" in kind or kind == "api_error":
        return ProviderUnavailable(message, provider=provider)
    if "invalid" in kind:
        return ProviderBadRequest(message, provider=provider)
    return ProviderError(message, provider=provider)


# --------------------------------------------------------------------------- streaming


class Deadline:
    """The whole-stream time limit (`PROVIDER_TIMEOUT_SECONDS`).

    The SDKs' own timeouts are per read, so a provider trickling tokens forever would
    never time out. The limit is applied around each read only (not across our `yield`s),
    so the time the consumer spends between events is never cancelled by it.

    One timer for the whole stream rather than a timeout scope per read: a read is made
    per event, and at paced rates the scope's set-up was a visible share of the CPU. The
    timer cancels the reading task only while it is inside a read; one that fires between
    reads makes the next read fail at once.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._at = None if seconds is None else asyncio.get_running_loop().time() + seconds
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._reading = False
        self._expired = False
        self._cancelled = False

    async def next(self, iterator: AsyncIterator[T]) -> T | None:
        """The next item, None at the end; TimeoutError past the deadline."""
        if self._at is None:
            try:
                return await anext(iterator)
            except StopAsyncIteration:
                return None
        if self._expired:
            raise TimeoutError
        if self._timer is None:
            self._task = asyncio.current_task()
            self._timer = asyncio.get_running_loop().call_at(self._at, self._expire)
        task = self._task
        assert task is not None
        cancelling = task.cancelling()
        self._reading = True
        try:
            return await anext(iterator)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            if self._cancelled:
                self._cancelled = False
                # Ours, unless somebody else cancelled the task as well.
                if task.uncancel() <= cancelling:
                    raise TimeoutError from None
            raise
        finally:
            self._reading = False

    def _expire(self) -> None:
        self._expired = True
        if self._reading and self._task is not None:
            self._cancelled = True
            self._task.cancel()

    def close(self) -> None:
        """Drop the timer (the stream ended before the deadline)."""
        if self._timer is not None:
            self._timer.cancel()

    def error(self, *, provider: str, label: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"{label} did not finish within {self.seconds:g} s", provider=provider
        )
