"""Declaring a tool: a function becomes a `Tool` with a JSON schema and an input model."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from protocol.chunks import DataChunk, UIMessageChunk

ApprovalPolicy = Callable[[dict[str, Any]], bool]
Emit = Callable[[UIMessageChunk], None]


class ToolDeclarationError(TypeError):
    """A tool function the bridge cannot describe to a model."""


class ToolInputError(ValueError):
    """The model's input does not match the tool's schema."""


class ToolContext:
    """Given to a tool that asks for it (a parameter annotated `ToolContext`)."""

    def __init__(self, tool_call_id: str, emit: Emit, user: str | None = None) -> None:
        self.tool_call_id = tool_call_id
        self.user = user
        """Who asked: the authenticated user id of the request that started the
        generation (None only outside a request)."""
        self._emit = emit

    def emit_data(
        self, name: str, data: Any, *, id: str | None = None, transient: bool = False
    ) -> None:
        """Send a `data-<name>` part (same name and id again: updated in place)."""
        self._emit(DataChunk(type=f"data-{name}", data=data, id=id, transient=transient or None))


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    function: Callable[..., Any] | None = None
    """None: a client-side tool (the browser runs it and sends the output)."""
    input_model: type[BaseModel] | None = None
    needs_approval: bool | ApprovalPolicy = False
    timeout: float | None = None
    """Seconds; None: BRIDGE_TOOL_TIMEOUT_SECONDS."""
    idempotent: bool = False
    """Safe to run again for the same call: a takeover re-runs it when its process died
    while it ran (otherwise the call gets an "interrupted" error result)."""
    context_parameter: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def client_side(self) -> bool:
        return self.function is None

    def requires_approval(self, tool_input: dict[str, Any]) -> bool:
        """Whether the call waits for the user. A policy sees the validated arguments (the
        declared types, finite numbers, the declared ranges), never the model's raw input:
        `amount > 100` cannot be dodged with `"NaN"`, a string or a negative number. It
        fails closed: an input that does not validate never runs (its execution refuses
        it the same way), and a policy that raises asks."""
        if not callable(self.needs_approval):
            return self.needs_approval
        try:
            arguments = self.validate(tool_input)
        except ToolInputError:
            return False  # refused at execution, before the function is called
        try:
            return bool(self.needs_approval(arguments))
        except Exception:
            return True

    def validate(self, tool_input: Any) -> dict[str, Any]:
        """The input as the function's keyword arguments; ToolInputError when invalid."""
        if not isinstance(tool_input, dict):
            raise ToolInputError("the input must be a JSON object")
        if self.input_model is None:
            return tool_input
        try:
            validated = self.input_model.model_validate(tool_input)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'input'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise ToolInputError(problems) from None
        return {name: getattr(validated, name) for name in type(validated).model_fields}


def _input_model(function: Callable[..., Any], name: str) -> tuple[type[BaseModel], str | None]:
    signature = inspect.signature(function)
    try:
        hints = get_type_hints(function, include_extras=True)  # keep Field(...) ranges
    except Exception as exc:  # a forward reference that does not resolve
        raise ToolDeclarationError(f"tool {name}: cannot resolve its type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    context_parameter = None
    for parameter in signature.parameters.values():
        annotation = hints.get(parameter.name, Any)
        if annotation is ToolContext:
            context_parameter = parameter.name
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolDeclarationError(f"tool {name}: *args and **kwargs cannot be described")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    # Finite numbers only: "NaN", "Infinity" or 1e999 never reach a tool or its approval
    # policy (`amount > 100` is False for NaN).
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    model = create_model(f"{name}_input", __config__=config, **fields)
    return model, context_parameter


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


def _describe(
    function: Callable[..., Any],
    name: str | None,
    description: str | None,
    needs_approval: bool | ApprovalPolicy,
    timeout: float | None,
    idempotent: bool = False,
) -> Tool:
    tool_name = name or function.__name__
    model, context_parameter = _input_model(function, tool_name)
    return Tool(
        name=tool_name,
        description=description or inspect.cleandoc(function.__doc__ or "") or tool_name,
        input_schema=_schema(model),
        function=function,
        input_model=model,
        needs_approval=needs_approval,
        timeout=timeout,
        idempotent=idempotent,
        context_parameter=context_parameter,
    )


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    needs_approval: bool | ApprovalPolicy = False,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    needs_approval: bool | ApprovalPolicy = False,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Declare a server-side tool (see the package docstring)."""
    if function is not None:
        return _describe(function, name, description, needs_approval, timeout, idempotent)

    def decorate(inner: Callable[..., Any]) -> Tool:
        return _describe(inner, name, description, needs_approval, timeout, idempotent)

    return decorate


def client_tool(
    name: str, description: str, input_schema: dict[str, Any] | type[BaseModel]
) -> Tool:
    """Declare a tool the browser runs (useChat's `onToolCall` + `addToolOutput`)."""
    model = input_schema if isinstance(input_schema, type) else None
    schema = _schema(input_schema) if isinstance(input_schema, type) else dict(input_schema)
    return Tool(name=name, description=description, input_schema=schema, input_model=model)
