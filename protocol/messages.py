"""UIMessage and its parts, as the AI SDK v7 client builds and sends them, and the chat
request body (`POST /api/chat`).

Wire names are camelCase; Python attributes are snake_case. Dumping a model (`dump()`)
omits optional fields that are unset or None, as the client expects, while keeping the
keys the client types as required-but-nullable (`data` of data parts, `input` of tool
parts, `output` of a tool part whose output is available).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

ProviderMetadata = dict[str, dict[str, Any]]
ToolState = Literal[
    "input-streaming",
    "input-available",
    "approval-requested",
    "approval-responded",
    "output-available",
    "output-error",
    "output-denied",
]
Role = Literal["system", "user", "assistant"]

CHAT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:~@+=-]{1,200}$")
CHAT_ID_RULE = "chat id must be 1-200 characters of letters, digits and ._:~@+=-"


def is_chat_id(value: str) -> bool:
    """The one rule for chat ids: safe as a storage key, a URL segment and a hash tag."""
    return CHAT_ID_PATTERN.fullmatch(value) is not None and value not in {".", ".."}


def check_chat_id_field(value: str) -> str:
    """A pydantic field validator for chat ids."""
    if not is_chat_id(value):
        raise ValueError(CHAT_ID_RULE)
    return value


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, unknown keys kept, None omitted."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="allow",
    )

    # Wire keys written even when their value is None (the client requires the key).
    nullable_keys: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        keep = self.nullable_keys
        return {key: value for key, value in data.items() if value is not None or key in keep}

    def dump(self) -> dict[str, Any]:
        """JSON-ready dict in wire form."""
        return self.model_dump(mode="json")


class TextUIPart(WireModel):
    type: Literal["text"] = "text"
    text: str
    state: Literal["streaming", "done"] | None = None
    citations: list[Any] | None = None
    provider_metadata: ProviderMetadata | None = None


class ReasoningUIPart(WireModel):
    type: Literal["reasoning"] = "reasoning"
    text: str
    id: str | None = None
    state: Literal["streaming", "done"] | None = None
    provider_metadata: ProviderMetadata | None = None


class ToolApproval(WireModel):
    id: str
    approved: bool | None = None
    reason: str | None = None
    descriptor: Any = None
    input_schema_input: Any = None
    request_reason: str | None = None
    is_automatic: bool | None = None
    signature: str | None = None


class _ToolPartFields(WireModel):
    tool_call_id: str = Field(min_length=1)
    state: ToolState
    input: Any = None
    output: Any = None
    error_text: str | None = None
    approval: ToolApproval | None = None
    provider_executed: bool | None = None
    title: str | None = None
    tool_metadata: Any = None
    call_provider_metadata: ProviderMetadata | None = None
    result_provider_metadata: ProviderMetadata | None = None
    preliminary: bool | None = None
    raw_input: Any = None
    input_encoding: Literal["json", "text"] | None = None

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        keep = {"input"}
        if self.state == "output-available":
            keep.add("output")
        return {key: value for key, value in data.items() if value is not None or key in keep}


class ToolUIPart(_ToolPartFields):
    """A static tool part: `type` is `tool-<toolName>`."""

    type: str = Field(pattern=r"^tool-.+")

    @property
    def tool_name(self) -> str:
        return self.type[len("tool-") :]


class DynamicToolUIPart(_ToolPartFields):
    type: Literal["dynamic-tool"] = "dynamic-tool"
    tool_name: str = Field(min_length=1)
    dynamic: bool | None = None


class FileUIPart(WireModel):
    type: Literal["file"] = "file"
    media_type: str
    url: str
    filename: str | None = None
    provider_reference: Any = None
    provider_metadata: ProviderMetadata | None = None


class ReasoningFileUIPart(WireModel):
    type: Literal["reasoning-file"] = "reasoning-file"
    media_type: str
    url: str
    provider_metadata: ProviderMetadata | None = None


class SourceUrlUIPart(WireModel):
    type: Literal["source-url"] = "source-url"
    source_id: str
    url: str
    title: str | None = None
    provider_metadata: ProviderMetadata | None = None


class SourceDocumentUIPart(WireModel):
    type: Literal["source-document"] = "source-document"
    source_id: str
    media_type: str
    title: str
    filename: str | None = None
    provider_metadata: ProviderMetadata | None = None


class StepStartUIPart(WireModel):
    type: Literal["step-start"] = "step-start"


class DataUIPart(WireModel):
    """`data-<name>`: application data; `data` is a required key, maybe null."""

    nullable_keys = frozenset({"data"})
    type: str = Field(pattern=r"^data-.+")
    id: str | None = None
    data: Any


class CustomUIPart(WireModel):
    type: Literal["custom"] = "custom"
    kind: str
    provider_metadata: ProviderMetadata | None = None


SteeringContentPart = Annotated[
    Annotated[TextUIPart, Tag("text")] | Annotated[FileUIPart, Tag("file")],
    Discriminator(lambda value: _type_of(value)),
]


class SteeringMessageUIPart(WireModel):
    type: Literal["steering-message"] = "steering-message"
    id: str
    parts: list[SteeringContentPart]


def _type_of(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) else None


def _part_tag(value: Any) -> str | None:
    """Tool and data parts carry their name in `type`; map them to one tag each."""
    kind = _type_of(value)
    if kind is None:
        return None
    if kind.startswith("tool-"):
        return "tool"
    if kind.startswith("data-"):
        return "data"
    return kind


UIMessagePart = Annotated[
    Annotated[TextUIPart, Tag("text")]
    | Annotated[ReasoningUIPart, Tag("reasoning")]
    | Annotated[ToolUIPart, Tag("tool")]
    | Annotated[DynamicToolUIPart, Tag("dynamic-tool")]
    | Annotated[FileUIPart, Tag("file")]
    | Annotated[ReasoningFileUIPart, Tag("reasoning-file")]
    | Annotated[SourceUrlUIPart, Tag("source-url")]
    | Annotated[SourceDocumentUIPart, Tag("source-document")]
    | Annotated[StepStartUIPart, Tag("step-start")]
    | Annotated[DataUIPart, Tag("data")]
    | Annotated[CustomUIPart, Tag("custom")]
    | Annotated[SteeringMessageUIPart, Tag("steering-message")],
    Discriminator(_part_tag),
]

AnyToolUIPart = ToolUIPart | DynamicToolUIPart


class UIMessage(WireModel):
    id: str = Field(min_length=1, max_length=256)
    role: Role
    metadata: Any = None
    parts: list[UIMessagePart]

    def tool_parts(self) -> list[AnyToolUIPart]:
        return [part for part in self.parts if isinstance(part, ToolUIPart | DynamicToolUIPart)]


def tool_name_of(part: AnyToolUIPart) -> str:
    return part.tool_name


class ChatRequest(BaseModel):
    """The body of `POST /api/chat`.

    Either `messages` (the whole history, the stock client's shape) or `message` (only the
    newest, the rest loaded from the stored history). Keys the client's `body` option adds
    are kept as `request_data`.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    messages: list[UIMessage] | None = None
    message: UIMessage | None = None
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    message_id: str | None = Field(default=None, alias="messageId", min_length=1, max_length=256)
    model: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("id")
    @classmethod
    def _valid_chat_id(cls, value: str) -> str:
        return check_chat_id_field(value)

    @model_validator(mode="after")
    def _has_messages(self) -> ChatRequest:
        if self.messages is None and self.message is None:
            raise ValueError("body needs `messages` (the whole history) or `message` (the newest)")
        if self.messages is not None and not self.messages and self.trigger == "submit-message":
            raise ValueError("`messages` is empty")
        return self

    @property
    def request_data(self) -> dict[str, Any]:
        """Top-level keys the client added through its `body` option."""
        return dict(self.model_extra or {})
