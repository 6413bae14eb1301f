"""The UI message stream chunks of the AI SDK v7 (`uiMessageChunkSchema`), one model per type.

Wire names are camelCase, Python attributes snake_case. `encode_chunk` writes the compact
JSON the client validates:

* optional fields that are unset or None are omitted — the client rejects `null` for them;
* the keys the client types as `unknown` (`input` of tool-input-available / tool-input-error,
  `output` of tool-output-available, `data` of data-*, `messageMetadata` of message-metadata)
  are required and always written, `null` included.

Unknown extra keys are kept (the client's schema is a union of loose objects: extra keys pass
and are ignored), so a chunk parsed from another producer is relayed unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

import orjson
from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from protocol.messages import ProviderMetadata, SteeringContentPart, WireModel

FinishReason: TypeAlias = Literal[
    "stop", "length", "content-filter", "tool-calls", "error", "interrupted", "other"
]
InputEncoding: TypeAlias = Literal["json", "text"]
JSONObject: TypeAlias = dict[str, Any]

__all__ = [
    "CHUNK_TYPES",
    "AbortChunk",
    "ChunkModel",
    "Citation",
    "CustomChunk",
    "DataChunk",
    "DocumentCitationSource",
    "ErrorChunk",
    "FileChunk",
    "FinishChunk",
    "FinishReason",
    "FinishStepChunk",
    "InputEncoding",
    "MessageMetadataChunk",
    "ReasoningDeltaChunk",
    "ReasoningEndChunk",
    "ReasoningFileChunk",
    "ReasoningStartChunk",
    "ResetStepChunk",
    "SourceDocumentChunk",
    "SourceUrlChunk",
    "StartChunk",
    "StartStepChunk",
    "SteeringMessageChunk",
    "TextDeltaChunk",
    "TextEndChunk",
    "TextStartChunk",
    "ToolApprovalRequestChunk",
    "ToolApprovalResponseChunk",
    "ToolInputAvailableChunk",
    "ToolInputDeltaChunk",
    "ToolInputErrorChunk",
    "ToolInputStartChunk",
    "ToolOutputAvailableChunk",
    "ToolOutputDeniedChunk",
    "ToolOutputErrorChunk",
    "UIMessageChunk",
    "UnknownChunkTypeError",
    "UrlCitationSource",
    "chunk_adapter",
    "encode_chunk",
    "parse_chunk",
]


class ChunkModel(WireModel):
    """Base of the chunk models.

    Python code may pass None for any optional field (it is omitted when encoded). Input
    parsed from the wire (`parse_chunk`) is held to the client's rule instead: an optional
    key must be absent, not null, except the keys the client types as `unknown`.
    """

    # Optional wire keys the client accepts as null (typed `unknown`, not `optional(T)`).
    null_ok: ClassVar[frozenset[str]] = frozenset()
    # Field name -> wire key, for every field and for those that must never be null.
    _wire_keys: ClassVar[dict[str, str]] = {}
    _not_null: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._wire_keys = {name: field.alias or name for name, field in cls.model_fields.items()}
        allowed = cls.nullable_keys | cls.null_ok
        cls._not_null = frozenset(n for n, key in cls._wire_keys.items() if key not in allowed)


def _wire_null(model: ChunkModel, loc: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """Where a parsed chunk had `null` for a key the client requires to be absent or set.

    Checked after validation (a field set to None from the input is in model_fields_set), so
    constructing chunks in Python pays nothing for it.
    """
    wire_keys = model._wire_keys
    for name in model.model_fields_set:
        key = wire_keys.get(name)
        if key is None:
            continue  # an extra key: the client ignores it
        value = getattr(model, name)
        if value is None:
            if name in model._not_null:
                return (*loc, key)
            continue
        # Nested models: the citations of text-end and their sources.
        if isinstance(value, ChunkModel):
            found = _wire_null(value, (*loc, key))
            if found is not None:
                return found
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, ChunkModel):
                    found = _wire_null(item, (*loc, key, index))
                    if found is not None:
                        return found
    return None


# --- citations (text-end) -------------------------------------------------------------------


class UrlCitationSource(ChunkModel):
    type: Literal["source"] = "source"
    source_type: Literal["url"] = "url"
    id: str
    url: str
    title: str | None = None
    provider_metadata: ProviderMetadata | None = None


class DocumentCitationSource(ChunkModel):
    type: Literal["source"] = "source"
    source_type: Literal["document"] = "document"
    id: str
    media_type: str
    title: str
    filename: str | None = None
    provider_metadata: ProviderMetadata | None = None


class Citation(ChunkModel):
    source: Annotated[
        UrlCitationSource | DocumentCitationSource, Field(discriminator="source_type")
    ]
    start_index: int | None = Field(default=None, ge=0)
    end_index: int | None = Field(default=None, ge=0)
    cited_text: str | None = None


# --- the chunks, in the order of the client's schema -------------------------------------------


class TextStartChunk(ChunkModel):
    type: Literal["text-start"] = "text-start"
    id: str
    provider_metadata: ProviderMetadata | None = None


class TextDeltaChunk(ChunkModel):
    type: Literal["text-delta"] = "text-delta"
    id: str
    delta: str
    provider_metadata: ProviderMetadata | None = None


class TextEndChunk(ChunkModel):
    type: Literal["text-end"] = "text-end"
    id: str
    citations: list[Citation] | None = None
    provider_metadata: ProviderMetadata | None = None


class ErrorChunk(ChunkModel):
    type: Literal["error"] = "error"
    error_text: str


class ToolInputStartChunk(ChunkModel):
    type: Literal["tool-input-start"] = "tool-input-start"
    tool_call_id: str
    tool_name: str
    input_encoding: InputEncoding | None = None
    provider_executed: bool | None = None
    provider_metadata: ProviderMetadata | None = None
    tool_metadata: JSONObject | None = None
    dynamic: bool | None = None
    title: str | None = None


class ToolInputDeltaChunk(ChunkModel):
    type: Literal["tool-input-delta"] = "tool-input-delta"
    tool_call_id: str
    input_text_delta: str


class ToolInputAvailableChunk(ChunkModel):
    nullable_keys = frozenset({"input"})
    type: Literal["tool-input-available"] = "tool-input-available"
    tool_call_id: str
    tool_name: str
    input: Any
    provider_executed: bool | None = None
    provider_metadata: ProviderMetadata | None = None
    tool_metadata: JSONObject | None = None
    dynamic: bool | None = None
    title: str | None = None


class ToolInputErrorChunk(ChunkModel):
    nullable_keys = frozenset({"input"})
    type: Literal["tool-input-error"] = "tool-input-error"
    tool_call_id: str
    tool_name: str
    input: Any
    provider_executed: bool | None = None
    provider_metadata: ProviderMetadata | None = None
    tool_metadata: JSONObject | None = None
    dynamic: bool | None = None
    error_text: str
    title: str | None = None


class ToolApprovalRequestChunk(ChunkModel):
    null_ok = frozenset({"approvalDescriptor", "inputSchemaInput"})
    type: Literal["tool-approval-request"] = "tool-approval-request"
    approval_id: str
    tool_call_id: str
    approval_descriptor: Any = None
    input_schema_input: Any = None
    reason: str | None = None
    is_automatic: bool | None = None
    signature: str | None = None


class ToolApprovalResponseChunk(ChunkModel):
    type: Literal["tool-approval-response"] = "tool-approval-response"
    approval_id: str
    approved: bool
    reason: str | None = None
    provider_executed: bool | None = None
    provider_metadata: ProviderMetadata | None = None


class ToolOutputAvailableChunk(ChunkModel):
    nullable_keys = frozenset({"output"})
    type: Literal["tool-output-available"] = "tool-output-available"
    tool_call_id: str
    output: Any
    provider_executed: bool | None = None
    provider_metadata: ProviderMetadata | None = None
    tool_metadata: JSONObject | None = None
    dynamic: bool | None = None
    preliminary: bool | None = None


class ToolOutputErrorChunk(ChunkModel):
    type: Literal["tool-output-error"] = "tool-output-error"
    tool_call_id: str
    error_text: str
    provider_executed: bool | None = None
    provider_metadata: ProviderMetadata | None = None
    tool_metadata: JSONObject | None = None
    dynamic: bool | None = None


class ToolOutputDeniedChunk(ChunkModel):
    type: Literal["tool-output-denied"] = "tool-output-denied"
    tool_call_id: str


class ReasoningStartChunk(ChunkModel):
    type: Literal["reasoning-start"] = "reasoning-start"
    id: str
    provider_metadata: ProviderMetadata | None = None


class ReasoningDeltaChunk(ChunkModel):
    type: Literal["reasoning-delta"] = "reasoning-delta"
    id: str
    delta: str
    provider_metadata: ProviderMetadata | None = None


class ReasoningEndChunk(ChunkModel):
    type: Literal["reasoning-end"] = "reasoning-end"
    id: str
    provider_metadata: ProviderMetadata | None = None


class CustomChunk(ChunkModel):
    """Provider-specific content; `kind` is `provider.type` by convention (not enforced)."""

    type: Literal["custom"] = "custom"
    kind: str
    provider_metadata: ProviderMetadata | None = None


class SourceUrlChunk(ChunkModel):
    type: Literal["source-url"] = "source-url"
    source_id: str
    url: str
    title: str | None = None
    provider_metadata: ProviderMetadata | None = None


class SourceDocumentChunk(ChunkModel):
    type: Literal["source-document"] = "source-document"
    source_id: str
    media_type: str
    title: str
    filename: str | None = None
    provider_metadata: ProviderMetadata | None = None


class FileChunk(ChunkModel):
    type: Literal["file"] = "file"
    url: str
    media_type: str
    provider_metadata: ProviderMetadata | None = None


class ReasoningFileChunk(ChunkModel):
    type: Literal["reasoning-file"] = "reasoning-file"
    url: str
    media_type: str
    provider_metadata: ProviderMetadata | None = None


class SteeringMessageChunk(ChunkModel):
    """Experimental: a user message injected into a running generation."""

    type: Literal["steering-message"] = "steering-message"
    id: str
    parts: list[SteeringContentPart]


class DataChunk(ChunkModel):
    """`data-<name>`: application data. Same type and `id` again updates the part in place;
    `transient` chunks reach the client's `onData` but are never stored in the message."""

    nullable_keys = frozenset({"data"})
    type: str = Field(pattern=r"^data-.+")
    id: str | None = None
    data: Any
    transient: bool | None = None


class StartStepChunk(ChunkModel):
    type: Literal["start-step"] = "start-step"


class FinishStepChunk(ChunkModel):
    type: Literal["finish-step"] = "finish-step"


class ResetStepChunk(ChunkModel):
    """Drops every part of the current step (the step is retried)."""

    type: Literal["reset-step"] = "reset-step"


class StartChunk(ChunkModel):
    null_ok = frozenset({"messageMetadata"})
    type: Literal["start"] = "start"
    message_id: str | None = None
    message_metadata: Any = None


class FinishChunk(ChunkModel):
    null_ok = frozenset({"messageMetadata"})
    type: Literal["finish"] = "finish"
    finish_reason: FinishReason | None = None
    message_metadata: Any = None


class AbortChunk(ChunkModel):
    type: Literal["abort"] = "abort"
    reason: str | None = None


class MessageMetadataChunk(ChunkModel):
    nullable_keys = frozenset({"messageMetadata"})
    type: Literal["message-metadata"] = "message-metadata"
    message_metadata: Any


# --- the union ---------------------------------------------------------------------------------

_CHUNK_CLASSES: tuple[type[ChunkModel], ...] = (
    StartChunk,
    StartStepChunk,
    FinishStepChunk,
    ResetStepChunk,
    TextStartChunk,
    TextDeltaChunk,
    TextEndChunk,
    ReasoningStartChunk,
    ReasoningDeltaChunk,
    ReasoningEndChunk,
    ToolInputStartChunk,
    ToolInputDeltaChunk,
    ToolInputAvailableChunk,
    ToolInputErrorChunk,
    ToolApprovalRequestChunk,
    ToolApprovalResponseChunk,
    ToolOutputAvailableChunk,
    ToolOutputErrorChunk,
    ToolOutputDeniedChunk,
    SourceUrlChunk,
    SourceDocumentChunk,
    FileChunk,
    ReasoningFileChunk,
    CustomChunk,
    SteeringMessageChunk,
    MessageMetadataChunk,
    FinishChunk,
    AbortChunk,
    ErrorChunk,
)

# Every fixed `type` value. data-* chunks share the tag "data".
CHUNK_TYPES: frozenset[str] = frozenset(cls.model_fields["type"].default for cls in _CHUNK_CLASSES)


def _chunk_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return None
    return "data" if kind.startswith("data-") else kind


UIMessageChunk: TypeAlias = Annotated[
    Annotated[StartChunk, Tag("start")]
    | Annotated[StartStepChunk, Tag("start-step")]
    | Annotated[FinishStepChunk, Tag("finish-step")]
    | Annotated[ResetStepChunk, Tag("reset-step")]
    | Annotated[TextStartChunk, Tag("text-start")]
    | Annotated[TextDeltaChunk, Tag("text-delta")]
    | Annotated[TextEndChunk, Tag("text-end")]
    | Annotated[ReasoningStartChunk, Tag("reasoning-start")]
    | Annotated[ReasoningDeltaChunk, Tag("reasoning-delta")]
    | Annotated[ReasoningEndChunk, Tag("reasoning-end")]
    | Annotated[ToolInputStartChunk, Tag("tool-input-start")]
    | Annotated[ToolInputDeltaChunk, Tag("tool-input-delta")]
    | Annotated[ToolInputAvailableChunk, Tag("tool-input-available")]
    | Annotated[ToolInputErrorChunk, Tag("tool-input-error")]
    | Annotated[ToolApprovalRequestChunk, Tag("tool-approval-request")]
    | Annotated[ToolApprovalResponseChunk, Tag("tool-approval-response")]
    | Annotated[ToolOutputAvailableChunk, Tag("tool-output-available")]
    | Annotated[ToolOutputErrorChunk, Tag("tool-output-error")]
    | Annotated[ToolOutputDeniedChunk, Tag("tool-output-denied")]
    | Annotated[SourceUrlChunk, Tag("source-url")]
    | Annotated[SourceDocumentChunk, Tag("source-document")]
    | Annotated[FileChunk, Tag("file")]
    | Annotated[ReasoningFileChunk, Tag("reasoning-file")]
    | Annotated[CustomChunk, Tag("custom")]
    | Annotated[SteeringMessageChunk, Tag("steering-message")]
    | Annotated[DataChunk, Tag("data")]
    | Annotated[MessageMetadataChunk, Tag("message-metadata")]
    | Annotated[FinishChunk, Tag("finish")]
    | Annotated[AbortChunk, Tag("abort")]
    | Annotated[ErrorChunk, Tag("error")],
    Discriminator(_chunk_tag),
]

chunk_adapter: TypeAdapter[UIMessageChunk] = TypeAdapter(UIMessageChunk)


class UnknownChunkTypeError(ValueError):
    """The input is not an object with a known chunk `type` (the client rejects it too)."""


def _stdlib_json(data: bytes | str, error: ValidationError) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise error from None


def parse_chunk(data: bytes | str | dict[str, Any]) -> UIMessageChunk:
    """Validate one chunk (JSON text or a decoded dict) the way the client's schema does.

    Strict like zod: no coercion (`"true"` is not a boolean, `1` is not a string) and no
    null for an optional key.

    Raises `UnknownChunkTypeError` when `type` is missing or unknown, and pydantic's
    `ValidationError` (also a ValueError) when a known chunk has invalid fields.
    """
    try:
        if isinstance(data, dict):
            chunk = chunk_adapter.validate_python(data, strict=True)
        else:
            try:
                chunk = chunk_adapter.validate_json(data, strict=True)
            except ValidationError as exc:
                if exc.errors()[0]["type"] != "json_invalid":
                    raise
                # pydantic's JSON reader refuses escaped lone surrogates, which JSON (and
                # the browser) allow and encode_chunk may write; the stdlib reads them.
                chunk = chunk_adapter.validate_python(_stdlib_json(data, exc), strict=True)
    except ValidationError as exc:
        tag_error = next(
            (e for e in exc.errors() if e["type"] in {"union_tag_invalid", "union_tag_not_found"}),
            None,
        )
        if tag_error is None or tag_error["loc"]:
            raise
        kind = tag_error["input"].get("type") if isinstance(tag_error["input"], dict) else None
        if isinstance(kind, str):
            message = f"unknown UI message chunk type {kind!r}"
        else:
            message = "a UI message chunk must be a JSON object with a string `type`"
        raise UnknownChunkTypeError(message) from exc
    null_at = _wire_null(chunk, (chunk.type,))
    if null_at is not None:
        raise ValidationError.from_exception_data(
            "UIMessageChunk",
            [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "null_not_allowed", "must be omitted, not null (the client rejects null)"
                    ),
                    loc=null_at,
                    input=None,
                )
            ],
        )
    return chunk


# --- encoding ----------------------------------------------------------------------------------

_dumps = orjson.dumps


def _encode_generic(chunk: WireModel) -> bytes:
    # mode="json" turns any Python value the model holds into JSON types; the WireModel
    # serializer drops None except for the required-but-nullable keys.
    data = chunk.model_dump(mode="json")
    try:
        return _dumps(data)
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits and lone surrogates (a provider may split a
        # surrogate pair across deltas). JSON allows both; escaped like JSON.stringify does.
        return json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode()


# Hot path: the per-token chunks are built as plain dicts (the generic path costs several
# microseconds in the pydantic serializer). Each fast encoder must give exactly the generic
# bytes (the tests compare them); chunks with extra keys or provider metadata take the
# generic path.


def _encode_text_delta(chunk: Any) -> bytes:
    if chunk.provider_metadata is not None:
        return _encode_generic(chunk)
    return _dumps({"type": "text-delta", "id": chunk.id, "delta": chunk.delta})


def _encode_reasoning_delta(chunk: Any) -> bytes:
    if chunk.provider_metadata is not None:
        return _encode_generic(chunk)
    return _dumps({"type": "reasoning-delta", "id": chunk.id, "delta": chunk.delta})


def _encode_tool_input_delta(chunk: Any) -> bytes:
    return _dumps(
        {
            "type": "tool-input-delta",
            "toolCallId": chunk.tool_call_id,
            "inputTextDelta": chunk.input_text_delta,
        }
    )


_FAST_ENCODERS: dict[type[WireModel], Callable[[Any], bytes]] = {
    TextDeltaChunk: _encode_text_delta,
    ReasoningDeltaChunk: _encode_reasoning_delta,
    ToolInputDeltaChunk: _encode_tool_input_delta,
}


def encode_chunk(chunk: UIMessageChunk) -> bytes:
    """Compact JSON (UTF-8) of one chunk, as the client validates it (see the module doc)."""
    fast = _FAST_ENCODERS.get(type(chunk))
    if fast is not None and not chunk.__pydantic_extra__:
        try:
            return fast(chunk)
        except orjson.JSONEncodeError:
            pass  # see _encode_generic
    return _encode_generic(chunk)
