"""The tools a bridge offers: loaded from `BRIDGE_TOOLS`, plus client-declared ones."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from bridge.errors import RequestError
from bridge.providers.base import ToolSpec
from bridge.tools.declare import Tool, ToolDeclarationError

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class ToolBox:
    """Tools by name. Immutable; `with_client_tools` makes a per-request copy."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            if item.name in self._tools:
                raise ToolDeclarationError(f"two tools are named {item.name!r}")
            if not item.name or set(item.name) - _NAME_CHARS or len(item.name) > 64:
                raise ToolDeclarationError(
                    f"tool name {item.name!r}: use 1-64 letters, digits, _ or -"
                )
            self._tools[item.name] = item
        self.specs: tuple[ToolSpec, ...] = tuple(
            ToolSpec(t.name, t.description, t.input_schema) for t in self._tools.values()
        )

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def with_client_tools(self, declared: Any) -> ToolBox:
        """This box plus tools the request declared (`tools: [{name, description,
        inputSchema}]`); a declared name may not shadow a server tool."""
        if not isinstance(declared, list):
            raise RequestError("`tools` must be a list of {name, description, inputSchema}")
        extra = []
        for index, item in enumerate(declared):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise RequestError(f"`tools.{index}` needs a string `name`")
            name = item["name"]
            if name in self._tools:
                raise RequestError(f"`tools.{index}`: {name!r} is a server tool")
            schema = item.get("inputSchema", {"type": "object"})
            if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
                raise RequestError(f"`tools.{index}.inputSchema` must be an object schema")
            description = item.get("description", "")
            extra.append(
                Tool(name=name, description=str(description)[:2000], input_schema=dict(schema))
            )
        try:
            return ToolBox([*self._tools.values(), *extra])
        except ToolDeclarationError as exc:
            raise RequestError(str(exc)) from None


def load_tools(module_path: str | None) -> ToolBox:
    """Every `Tool` defined at the top level of the module (none when no module)."""
    if not module_path:
        return ToolBox()
    module = importlib.import_module(module_path)
    found = [value for value in vars(module).values() if isinstance(value, Tool)]
    return ToolBox(sorted(found, key=lambda item: item.name))
