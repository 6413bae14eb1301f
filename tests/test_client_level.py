"""bridge/access/client_level.py: a request's level, and a reader's batches adapted to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from starlette.requests import Request

from bridge.access.client_level import (
    LEVEL_HEADER,
    RequestLevel,
    adapted_entries,
    approval_tools,
    client_level_of,
    for_client,
    page_for_client,
)
from bridge.errors import RequestError
from bridge.store.base import LogEntry
from bridge.tools import load_tools
from protocol.compat import ChunkAdapter, ClientLevel
from tests.bridge_server import make_settings

Batch = list[LogEntry] | None


def request(query: str = "", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "query_string": query.encode(), "headers": raw})


def test_client_level_of_prefers_query_then_header_then_setting() -> None:
    settings = make_settings(bridge_client_level=6)
    assert client_level_of(request(), settings) == RequestLevel(ClientLevel.AI6, declared=True)
    declared = client_level_of(request(headers={LEVEL_HEADER: "5"}), settings)
    assert declared == RequestLevel(ClientLevel.AI5, declared=True)
    both = request("client=7", {LEVEL_HEADER: "5"})
    assert client_level_of(both, settings).level == ClientLevel.AI7


def test_client_level_of_auto_guesses_ai6_unless_the_request_says() -> None:
    settings = make_settings()
    assert settings.bridge_client_level == "auto"
    assert client_level_of(request(), settings) == RequestLevel(ClientLevel.AI6, declared=False)
    said = client_level_of(request(headers={LEVEL_HEADER: "7"}), settings)
    assert said == RequestLevel(ClientLevel.AI7, declared=True)


def test_for_client_auto_streams_a_step_and_closes_the_failed_attempt() -> None:
    """An undeclared client under `auto` never sees `reset-step` and is never held back
    past a batch: one batch (a replay) comes clean, a live retry closes the attempt."""
    guessed = RequestLevel(ClientLevel.AI6, declared=False)
    settings = make_settings(bridge_step_retries=1)
    replay = collect(for_client(batches(STEP), guessed, settings))
    assert offsets(replay) == [[0, 4, 5, 6]]
    live = collect(for_client(batches(*([e] for e in STEP)), guessed, settings))
    assert offsets(live) == [[0], [1], [2], [3], [4], [5], [6]]
    assert live[3] is not None
    assert orjson.loads(live[3][0].data) == {"type": "text-end", "id": "t"}


def test_client_level_of_names_the_bad_source() -> None:
    settings = make_settings()
    with pytest.raises(RequestError, match="header `x-ai-sdk-level`: client level must be"):
        client_level_of(request(headers={LEVEL_HEADER: "9"}), settings)
    with pytest.raises(RequestError, match="query parameter `client`"):
        client_level_of(request("client=seven"), settings)


def test_setting_outside_5_to_7_is_refused() -> None:
    with pytest.raises(ValueError, match="bridge_client_level"):
        make_settings(bridge_client_level=4)


def test_approval_tools_lists_fixed_and_conditional_approvals() -> None:
    tools = load_tools("bridge.tools.examples")
    names = approval_tools(tools)
    assert "delete_file" in names
    assert "get_weather" not in names
    assert approval_tools(load_tools(None)) == []


def entry(offset: int, chunk: dict[str, object]) -> LogEntry:
    return LogEntry(offset, orjson.dumps(chunk))


STEP = [
    entry(0, {"type": "start-step"}),
    entry(1, {"type": "text-start", "id": "t"}),
    entry(2, {"type": "text-delta", "id": "t", "delta": "x"}),
    entry(3, {"type": "reset-step"}),
    entry(4, {"type": "text-start", "id": "t"}),
    entry(5, {"type": "text-end", "id": "t"}),
    entry(6, {"type": "finish-step"}),
]


async def batches(*items: Batch) -> AsyncIterator[Batch]:
    for item in items:
        yield item


def collect(entries: AsyncIterator[Batch]) -> list[Batch]:
    async def run() -> list[Batch]:
        return [batch async for batch in entries]

    return asyncio.run(run())


def offsets(out: list[Batch]) -> list[list[int] | None]:
    return [None if batch is None else [e.offset for e in batch] for batch in out]


def test_for_client_level_7_is_the_same_iterator() -> None:
    source = batches([STEP[0]])
    assert for_client(source, ClientLevel.AI7, make_settings()) is source


def test_for_client_holds_a_step_and_keeps_heartbeat_ticks() -> None:
    settings = make_settings(bridge_heartbeat_seconds=3600)
    source = batches(STEP[:3], None, STEP[3:5], STEP[5:])
    out = collect(for_client(source, ClientLevel.AI6, settings))
    assert offsets(out) == [None, [0, 4, 5, 6]]


def test_adapted_entries_ticks_while_a_held_step_keeps_the_line_silent() -> None:
    # heartbeat 0: every batch that sends nothing is a tick (a 15 s wait, compressed)
    source = batches(STEP[:2], STEP[2:4], STEP[4:])
    adapter = ChunkAdapter(ClientLevel.AI5, hold_steps=True)
    out = collect(adapted_entries(source, adapter, heartbeat=0.0))
    assert offsets(out) == [None, None, [0, 4, 5, 6]]


def test_for_client_without_retries_streams_and_closes_the_failed_attempt() -> None:
    settings = make_settings(bridge_step_retries=0)
    out = collect(for_client(batches(STEP), ClientLevel.AI6, settings))
    assert offsets(out) == [[0, 1, 2, 3, 4, 5, 6]]
    assert out[0] is not None
    assert orjson.loads(out[0][3].data) == {"type": "text-end", "id": "t"}


def test_for_client_releases_a_step_the_log_left_open() -> None:
    out = collect(for_client(batches(STEP[:2]), ClientLevel.AI6, make_settings()))
    assert offsets(out) == [[0, 1]]


def test_page_for_client_adapts_chunk_by_chunk() -> None:
    page = [*STEP, entry(7, {"type": "finish", "finishReason": "interrupted"})]
    assert list(page_for_client(page, ClientLevel.AI7)) == page
    adapted = list(page_for_client(page, ClientLevel.AI6))
    assert [e.offset for e in adapted] == [0, 1, 2, 4, 5, 6, 7]
    assert adapted[0] is page[0]
    assert orjson.loads(adapted[-1].data)["finishReason"] == "other"
