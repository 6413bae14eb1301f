"""Tools the chaos suite's bridge processes load (`BRIDGE_TOOLS=tests.chaos.tools`).

Each run is recorded, one line per start and per end, in the file named by
`CHAOS_TOOL_RECORD`: the test reads it to know a tool is running (so it can kill the
process at that moment) and to check that no tool ever ran twice.
"""

from __future__ import annotations

import asyncio
import os

from bridge.tools import tool

RECORD_ENV = "CHAOS_TOOL_RECORD"
NAP_SECONDS_ENV = "CHAOS_NAP_SECONDS"
SILENCE_SECONDS = 61.0
"""Longer than a minute: no chunk is written meanwhile, only lease renewals and
keep-alives (a quiet Redis connection past every default socket timeout)."""


def _record(event: str, name: str) -> None:
    path = os.environ.get(RECORD_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as sink:
            sink.write(f"{event} {name} {os.getpid()}\n")


@tool(timeout=60)
async def chaos_nap() -> str:
    """Takes a few seconds: long enough to kill its process while it runs."""
    _record("start", "chaos_nap")
    await asyncio.sleep(float(os.environ.get(NAP_SECONDS_ENV, "4")))
    _record("end", "chaos_nap")
    return "nap over"


@tool(timeout=SILENCE_SECONDS + 60)
async def chaos_silence() -> str:
    """A step that writes nothing for over a minute."""
    _record("start", "chaos_silence")
    await asyncio.sleep(SILENCE_SECONDS)
    _record("end", "chaos_silence")
    return "silence over"


@tool(needs_approval=True)
async def chaos_guarded() -> str:
    """Runs only once the user approved it."""
    _record("start", "chaos_guarded")
    _record("end", "chaos_guarded")
    return "guarded action done"
