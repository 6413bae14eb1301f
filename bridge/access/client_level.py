"""Which `ai` major version a request's client runs, and its stream adapted to it.

A request may say its level: the query parameter `?client=6` or the header
`x-ai-sdk-level: 6` (the query wins: a transport's `api` URL is the easiest place to set
it; the resilient transport sends 7). Otherwise `BRIDGE_CLIENT_LEVEL` decides. Its default,
`auto`, sends a request that says nothing what every supported client accepts: ai 6's
chunks (ai 7 takes them too; ai 5 as well unless a tool needs approvals, which ai 5 cannot
answer), streamed as they come. So a stock `useChat` of any version works with no setting,
and only a client known to take `reset-step` (and the other v7-only chunks) gets them.
The chunk rules are in protocol/compat.py.

A retried step is where the levels differ most: a client that declared 5 or 6 (or a bridge
set to it) gets each step held back until it ends, never a failed attempt; an undeclared
client under `auto` keeps token-by-token streaming: a replay (a reload) comes without the
failed attempt, and a retry the client is watching live closes the attempt's open parts
(its partial text stays above the retry's).

The WebSocket transport takes no level: `WebSocketChatTransport` ships with ai 7 only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

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


AUTO_LEVEL = ClientLevel.AI6
"""What a request that names no level gets under `auto`: every supported client takes it."""


@dataclass(frozen=True, slots=True)
class RequestLevel:
    """A request's client level, and whether anyone said it."""

    level: ClientLevel
    declared: bool
    """Said by the request or by `BRIDGE_CLIENT_LEVEL`; False: `auto`'s safe guess, which
    streams a step as it comes rather than holding it back (see the module doc)."""


LevelLike = ClientLevel | RequestLevel


def _request_level(level: LevelLike) -> RequestLevel:
    return level if isinstance(level, RequestLevel) else RequestLevel(level, declared=True)


def configured_level(settings: Settings) -> RequestLevel:
    """The level of a request that says none."""
    value = settings.bridge_client_level
    if value == "auto":
        return RequestLevel(AUTO_LEVEL, declared=False)
    return RequestLevel(ClientLevel(int(value)), declared=True)


def client_level_of(connection: HTTPConnection, settings: Settings) -> RequestLevel:
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
        return RequestLevel(parse_client_level(value), declared=True)
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
    check_tool_approvals(configured_level(settings).level, approval_tools(tools))


def check_request_level(level: LevelLike, tools: ToolBox) -> None:
    """Refuses (400) a turn started by a client that could not answer its approvals."""
    try:
        check_tool_approvals(_request_level(level).level, approval_tools(tools))
    except ClientLevelError as exc:
        raise RequestError(str(exc)) from None


def for_client(entries: Entries, level: LevelLike, settings: Settings) -> Entries:
    """A reader's batches as the client may receive them; level 7 gets `entries` itself.

    A declared level holds each step back until it ends (when steps can be retried). A
    guessed one (`auto`) holds a step only to the end of each batch, which costs no latency:
    a replay, read in one batch, comes without any failed attempt, and a live stream goes
    on token by token, a retry closing the attempt already sent."""
    client = _request_level(level)
    if client.level is LATEST_LEVEL:
        return entries
    if client.declared:
        adapter = adapter_for(client.level, step_retries=settings.bridge_step_retries > 0)
        assert adapter is not None  # below level 7
        return adapted_entries(entries, adapter, settings.bridge_heartbeat_seconds)
    adapter = ChunkAdapter(client.level, hold_steps=True)
    return adapted_entries(
        entries, adapter, settings.bridge_heartbeat_seconds, release_each_batch=True
    )


async def adapted_entries(
    entries: Entries, adapter: ChunkAdapter, heartbeat: float, *, release_each_batch: bool = False
) -> Entries:
    """`entries` through `adapter`; a tick (None) when nothing was sent for `heartbeat` s.
    `release_each_batch`: what the adapter holds is sent at the end of every batch."""
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
        if release_each_batch:
            out += [LogEntry(offset, data) for offset, data in adapter.close()]
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


def page_for_client(entries: Iterable[LogEntry], level: LevelLike) -> Iterator[LogEntry]:
    """A poll page's entries for the client. Pages are independent requests, so chunks are
    adapted one by one: a retried step's `reset-step` is dropped, not held back for."""
    client = _request_level(level).level
    if client is LATEST_LEVEL:
        yield from entries
        return
    for entry in entries:
        data = adapt_chunk(client, entry.data)
        if data is not None:
            yield entry if data is entry.data else LogEntry(entry.offset, data)
