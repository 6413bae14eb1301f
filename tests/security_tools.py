"""A tool that reports who asked: `BRIDGE_TOOLS=tests.security_tools`."""

from __future__ import annotations

from bridge.tools import ToolContext, tool


@tool
async def whoami(ctx: ToolContext) -> str:
    """The user the generation runs for."""
    return f"you are {ctx.user}"
