"""Tools for tests that need to see how the runner runs tools (`BRIDGE_TOOLS=tests.meeting_tools`).

`meet` returns only once a second call of the same `group` is running too: run one after
the other, the first call waits alone until its timeout and ends with an error result. So
an answer whose `meet` calls all succeed proves they ran at the same time."""

from __future__ import annotations

import asyncio

from bridge.tools import tool
from bridge.tools.examples import delete_file, get_weather, search_docs  # noqa: F401

_arrived: dict[str, set[str]] = {}
_met: dict[str, asyncio.Event] = {}


@tool(timeout=5)
async def meet(group: str, party: str) -> dict[str, object]:
    """Wait for another party of the same group."""
    arrived = _arrived.setdefault(group, set())
    arrived.add(party)
    met = _met.setdefault(group, asyncio.Event())
    if len(arrived) >= 2:
        met.set()
    await met.wait()
    return {"party": party, "met": sorted(arrived)}
