"""Tools for the steering tests (`BRIDGE_TOOLS=tests.gated_tools`): `hold` runs until the
test opens its gate, so a test knows a step is in progress and decides when it ends
(synchronisation on events, not on sleeps)."""

from __future__ import annotations

import threading

import anyio.to_thread

from bridge.tools import client_tool, tool

_lock = threading.Lock()
_entered: dict[str, threading.Event] = {}
_gates: dict[str, threading.Event] = {}


def _event(table: dict[str, threading.Event], name: str) -> threading.Event:
    with _lock:
        return table.setdefault(name, threading.Event())


def entered(name: str) -> threading.Event:
    """Set once `hold(gate=name)` has started."""
    return _event(_entered, name)


def open_gate(name: str) -> None:
    _event(_gates, name).set()


@tool
async def hold(gate: str) -> str:
    """Waits until the test opens the gate."""
    entered(gate).set()
    opened = await anyio.to_thread.run_sync(_event(_gates, gate).wait, 30.0)
    return "released" if opened else "timed out"


ask_browser = client_tool(
    "ask_browser",
    "Asks the browser (the test leaves it unanswered).",
    {"type": "object", "properties": {}, "additionalProperties": False},
)
