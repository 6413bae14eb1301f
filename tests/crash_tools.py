"""A tool that takes its process down (`BRIDGE_TOOLS=tests.crash_tools`): declared idempotent,
so every takeover runs it again and the new producer dies too (a producer that crashes
every time)."""

from __future__ import annotations

import os

from bridge.tools import tool


@tool(idempotent=True)
def crash() -> str:
    """Ends the process at once, as a segfault or an OOM kill would."""
    os._exit(17)
