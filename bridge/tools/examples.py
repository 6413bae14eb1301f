"""Example tools, used by the demo and the tests: `BRIDGE_TOOLS=bridge.tools.examples`.

They show each kind of tool the bridge runs: a plain async tool, one that reports progress
with a `data-*` part, one that streams preliminary outputs, one that needs approval, one
whose approval depends on its input, a browser-side tool, and two that misbehave (for the
error paths).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from pydantic import Field

from bridge.tools import ToolContext, client_tool, tool


@tool
async def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, object]:
    """The current weather in a city (made-up, deterministic numbers)."""
    seed = int(hashlib.sha256(city.lower().encode()).hexdigest(), 16)
    celsius = seed % 35 - 5
    temperature = celsius if unit == "c" else round(celsius * 9 / 5 + 32)
    conditions = ["sunny", "cloudy", "rainy", "windy", "foggy"][seed % 5]
    return {"city": city, "temperature": temperature, "unit": unit, "conditions": conditions}


@tool
async def search_docs(query: str, ctx: ToolContext) -> list[dict[str, str]]:
    """Search the documentation; reports its progress as it goes."""
    pages = ["Getting started", "Resuming streams", "Tools and approvals"]
    for done, _ in enumerate(pages, start=1):
        ctx.emit_data(
            "search-progress",
            {"query": query, "done": done, "total": len(pages)},
            id=ctx.tool_call_id,
        )
        await asyncio.sleep(0.05)
    return [{"title": title, "snippet": f"{title}: about {query}"} for title in pages]


@tool
async def count_down(start: int = 3) -> AsyncIterator[dict[str, int]]:
    """Counts down to zero, streaming each number as a preliminary result."""
    for value in range(max(0, min(start, 20)), -1, -1):
        yield {"remaining": value}
        await asyncio.sleep(0.05)


@tool(needs_approval=True)
async def delete_file(path: str) -> str:
    """Delete a file (pretend). Always asks the user first."""
    return f"deleted {path} (not really: this is the demo tool)"


@tool(needs_approval=lambda arguments: arguments["amount"] > 100)
async def transfer_money(
    amount: Annotated[float, Field(gt=0, le=1_000_000)], to: Annotated[str, Field(min_length=1)]
) -> str:
    """Send money (pretend). Amounts over 100 need the user's approval."""
    return f"sent {amount:.2f} to {to}"


@tool
def flaky_lookup(key: str) -> str:
    """Always fails: shows how a tool error reaches the model and the user."""
    raise RuntimeError(f"the lookup service is down (key {key!r})")


@tool(timeout=1.0)
async def slow_report(seconds: float = 5.0) -> str:
    """Takes `seconds` to finish; times out after one second."""
    await asyncio.sleep(seconds)
    return "report ready"


get_location = client_tool(
    "get_location",
    "The user's current city, asked from the browser.",
    {"type": "object", "properties": {}, "additionalProperties": False},
)
