"""Which `ai` major version a request's client runs, and its stream adapted to it.

The level is `BRIDGE_CLIENT_LEVEL` (default 7), overridden per request by the query
parameter `?client=5` or the header `x-ai-sdk-level: 5` (the query wins: a transport's
`api` URL is the easiest place to set it). The chunk rules are in protocol/compat.py.

The WebSocket transport takes no level: `WebSocketChatTransport` ships with ai 7 only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Iterator

from starlette.requests import HTTPConnection

from bridge.errors import RequestError
from bridge.settings import Settings
from bridge.store.base import LogEntry
from bridge.tools import ToolBox
from protocol.compat import (
    LATEST_LEVEL,
    ChunkAdapter,
    ClientLevel,
    ClientLevelError,
    adapt_chunk,
    adapter_for,
    check_tool_approvals,
    parse_client_level,
)

LEVEL_QUERY = "client"
LEVEL_HEADER = "x-ai-sdk-level"

Entries = AsyncIterator[list[LogEntry] | None]


def configured_level(settings: Settings) -> ClientLevel:
    return ClientLevel(settings.bridge_client_level)


def client_level_of(connection: HTTPConnection, settings: Settings) -> ClientLevel:
    """The request's level: `?client=`, else the `x-ai-sdk-level` header, else the setting.
    A value that is not 5, 6 or 7 is a 400."""
    value = connection.query_params.get(LEVEL_QUERY)
    source = f"query parameter `{LEVEL_QUERY}`"
    if value is None:
        value = connection.headers.get(LEVEL_HEADER)
        source = f"header `{LEVEL_HEADER}`"
    if value is None:
        return configured_level(settings)
    try:
        return parse_client_level(value)
    except ClientLevelError as exc:
        raise RequestError(f"{source}: {exc}") from None


def approval_tools(tools: ToolBox) -> list[str]:
    """The server tools that may ask for an approval."""
    names = []
    for spec in tools.specs:
        tool = tools.get(spec.name)
        if tool is not None and tool.needs_approval is not False:
            names.append(spec.name)
    return names


def check_startup_level(settings: Settings, tools: ToolBox) -> None:
    """Refuses to start with a configured level whose clients cannot use these tools.
    Raises ClientLevelError (a ValueError) with the reason."""
    check_tool_approvals(configured_level(settings), approval_tools(tools))


def check_request_level(level: ClientLevel, tools: ToolBox) -> None:
    """Refuses (400) a turn started by a client that could not answer its approvals."""
    try:
        check_tool_approvals(level, approval_tools(tools))
    except ClientLevelError as exc:
        raise RequestError(str(exc)) from None


def for_client(entries: Entries, level: ClientLevel, settings: Settings) -> Entries:
    """A reader's batches as the client may receive them; level 7 gets `entries` itself."""
    adapter = adapter_for(level, step_retries=settings.bridge_step_retries > 0)
    if adapter is None:
        return entries
    return adapted_entries(entries, adapter, settings.bridge_heartbeat_seconds)


async def adapted_entries(entries: Entries, adapter: ChunkAdapter, heartbeat: float) -> Entries:
    """`entries` through `adapter`; a tick (None) when nothing was sent for `heartbeat` s."""
    last_sent = time.monotonic()
    async for batch in entries:
        if batch is None:
            last_sent = time.monotonic()
            yield None
            continue
        out = [
            LogEntry(offset, data)
            for entry in batch
            for offset, data in adapter.feed(entry.offset, entry.data)
        ]
        now = time.monotonic()
        if out:
            last_sent = now
            yield out
        elif now - last_sent >= heartbeat:
            # A held step sends nothing while the log grows: keep the connection warm.
            last_sent = now
            yield None
    rest = adapter.close()
    if rest:
        yield [LogEntry(offset, data) for offset, data in rest]


def page_for_client(entries: Iterable[LogEntry], level: ClientLevel) -> Iterator[LogEntry]:
    """A poll page's entries for the client. Pages are independent requests, so chunks are
    adapted one by one: a retried step's `reset-step` is dropped, not held back for."""
    if level is LATEST_LEVEL:
        yield from entries
        return
    for entry in entries:
        data = adapt_chunk(level, entry.data)
        if data is not None:
            yield entry if data is entry.data else LogEntry(entry.offset, data)
