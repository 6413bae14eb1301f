"""Tools: declare them as plain functions, the bridge runs them in its multi-step loop.

    from bridge.tools import tool, client_tool, ToolContext

    @tool
    async def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, object]:
        \"\"\"The current weather in a city.\"\"\"
        ...

    @tool(needs_approval=True)              # or a function of the validated input
    def delete_file(path: str) -> str: ...

    get_location = client_tool("get_location", "The user's location", {"type": "object"})

The JSON schema comes from the signature (pydantic), the description from the docstring.
A parameter annotated `ToolContext` receives the context (emit `data-*` parts). An async
generator tool streams preliminary outputs: every value it yields but the last is sent with
`preliminary: true`. `BRIDGE_TOOLS=package.module` loads every tool defined in a module.
"""

from bridge.tools.declare import Tool, ToolContext, ToolDeclarationError, client_tool, tool
from bridge.tools.loader import ToolBox, load_tools

__all__ = [
    "Tool",
    "ToolBox",
    "ToolContext",
    "ToolDeclarationError",
    "client_tool",
    "load_tools",
    "tool",
]
