"""Long-polling: GET /api/chat/{id}/poll (cursor semantics, waiting, the cap, ended
generations, bad parameters) and POST /api/chat/poll (start a turn, answer a page)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.assembler import MessageAssembler
from protocol.chunks import parse_chunk
from protocol.messages import UIMessage
from tests.bridge_server import BridgeFactory, chat_body
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Delay, LiveServer, Text
from tests.session_client import StreamResult, read_stream

WORDS = " ".join(f"word{index}" for index in range(80))


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, openai_fake: OpenAIFake) -> LiveServer:
    return bridge_factory(
        openai_api_key="test-key",
        openai_base_url=openai_fake.base_url,
        bridge_model="openai:gpt-test",
    )


def poll_url(server: LiveServer, chat_id: str, **params: Any) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{server.url}/api/chat/{chat_id}/poll" + (f"?{query}" if query else "")


async def post(
    client: httpx.AsyncClient,
    server: LiveServer,
    chat_id: str,
    text: str = "hi",
    *,
    streaming: asyncio.Event | None = None,
) -> StreamResult:
    return await read_stream(
        client, "POST", f"{server.url}/api/chat", json=chat_body(chat_id, text), streaming=streaming
    )


def offsets(page: dict[str, Any]) -> list[int]:
    return [int(item["offset"]) for item in page["chunks"]]


async def poll_to_the_end(
    client: httpx.AsyncClient,
    server: LiveServer,
    chat_id: str,
    generation: str,
    cursor: int = -1,
    wait: float = 5,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(every page, every item) of a poller that follows the generation to its end."""
    pages: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    while True:
        response = await client.get(
            poll_url(server, chat_id, cursor=cursor, wait=wait, generation=generation)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        items += page["chunks"]
        cursor = page["cursor"]
        if page["done"]:
            return pages, items


# --- cursor semantics ---------------------------------------------------------------------


@pytest.fixture
def finished(bridge_factory: BridgeFactory) -> tuple[LiveServer, str, StreamResult]:
    """A demo generation run to its end, and its SSE response for comparison."""
    server = bridge_factory(bridge_demo_token_delay_ms=0)

    async def run() -> StreamResult:
        async with httpx.AsyncClient(timeout=30) as client:
            return await post(client, server, "cursors", "a long one")

    result = asyncio.run(run())
    assert result.done
    return server, result.headers["x-bridge-generation-id"], result


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_poll_page_holds_exactly_the_chunks_after_the_cursor(
    finished: tuple[LiveServer, str, StreamResult], data: st.DataObject
) -> None:
    server, generation, sse = finished
    last = sse.offsets[-1]
    cursor = data.draw(st.integers(min_value=-1, max_value=last + 3), label="cursor")
    response = httpx.get(poll_url(server, "cursors", cursor=cursor, generation=generation))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    page = response.json()
    assert page["generationId"] == generation
    assert offsets(page) == list(range(cursor + 1, last + 1))
    assert [item["chunk"] for item in page["chunks"]] == sse.chunks[cursor + 1 :]
    assert page["cursor"] == max(cursor, last)
    assert page["done"] is True
    assert page["outcome"] == "finished"


@pytest.fixture
def slow_demo(bridge_factory: BridgeFactory) -> LiveServer:
    return bridge_factory(bridge_demo_token_delay_ms=1)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rewinds=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=30))
def test_poll_pages_of_a_live_generation_join_without_duplicate_or_gap(
    slow_demo: LiveServer, rewinds: list[int]
) -> None:
    """A poller that sometimes re-asks from an older cursor (a lost answer) and drops what
    it holds already ends with exactly the log: every offset once, in order."""
    server = slow_demo

    async def run() -> tuple[list[int], list[dict[str, Any]], StreamResult]:
        async with httpx.AsyncClient(timeout=30) as client:
            started = await client.post(
                f"{server.url}/api/chat/poll", json=chat_body("live", "long please")
            )
            assert started.status_code == 200, started.text
            first = started.json()
            generation = first["generationId"]
            held = {item["offset"]: item["chunk"] for item in first["chunks"]}
            cursor, done, step = first["cursor"], first["done"], 0
            while not done:
                asked = max(-1, cursor - rewinds[step % len(rewinds)])
                step += 1
                page = (
                    await client.get(
                        poll_url(server, "live", cursor=asked, wait=2, generation=generation)
                    )
                ).json()
                assert offsets(page) == list(range(asked + 1, page["cursor"] + 1))
                for item in page["chunks"]:
                    held.setdefault(item["offset"], item["chunk"])
                cursor, done = page["cursor"], page["done"]
            replay = await read_stream(
                client,
                "GET",
                f"{server.url}/api/chat/live/stream?generation={generation}&cursor=-1",
            )
            return sorted(held), [held[k] for k in sorted(held)], replay

    held_offsets, chunks, replay = asyncio.run(run())
    assert held_offsets == list(range(len(held_offsets)))
    assert chunks == replay.chunks


async def test_poll_follows_a_running_generation_to_its_end(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text(WORDS)], token_delay=0.01)
    async with httpx.AsyncClient(timeout=30) as client:
        text_flows = asyncio.Event()
        streaming = asyncio.create_task(post(client, bridge, "follow", streaming=text_flows))
        await asyncio.wait_for(text_flows.wait(), 10)  # the generation runs
        head = (await client.get(poll_url(bridge, "follow"))).json()
        pages, items = await poll_to_the_end(
            client, bridge, "follow", head["generationId"], head["cursor"]
        )
        sse = await streaming
    assert head["done"] is False
    assert len(pages) > 2  # it followed live, a page at a time
    all_items = head["chunks"] + items
    assert [item["offset"] for item in all_items] == sse.offsets
    assert [item["chunk"] for item in all_items] == sse.chunks
    assert pages[-1]["outcome"] == "finished"


# --- waiting --------------------------------------------------------------------------------


async def test_poll_answers_at_once_when_chunks_exist(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text("ready"), Delay(5), Text(" later")])
    async with httpx.AsyncClient(timeout=30) as client:
        await client.post(f"{bridge.url}/api/chat/poll", json=chat_body("at-once", "hi"))
        began = time.monotonic()
        page = (await client.get(poll_url(bridge, "at-once", cursor=-1, wait=10))).json()
        elapsed = time.monotonic() - began
        await client.post(f"{bridge.url}/api/chat/at-once/stop")
    assert elapsed < 1
    assert offsets(page)[0] == 0
    assert page["done"] is False


async def test_poll_waits_for_the_next_chunk_and_no_longer(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text(["one"]), Delay(0.6), Text([" two"]), Delay(5), Text([" three"])])
    async with httpx.AsyncClient(timeout=30) as client:
        first = (
            await client.post(f"{bridge.url}/api/chat/poll?wait=0.3", json=chat_body("waits", "hi"))
        ).json()
        generation = first["generationId"]
        # Read up to the pause ("one" is the last chunk before it), then wait: the answer
        # comes when " two" does.
        cursor, seen = first["cursor"], first["chunks"]
        while not any(item["chunk"].get("delta") == "one" for item in seen):
            page = (
                await client.get(
                    poll_url(bridge, "waits", cursor=cursor, wait=2, generation=generation)
                )
            ).json()
            seen, cursor = page["chunks"], page["cursor"]
        began = time.monotonic()
        woke = (
            await client.get(
                poll_url(bridge, "waits", cursor=cursor, wait=4, generation=generation)
            )
        ).json()
        woke_after = time.monotonic() - began
        # Nothing more comes for 5 s: an empty page after `wait`.
        cursor = woke["cursor"]
        began = time.monotonic()
        empty = (
            await client.get(
                poll_url(bridge, "waits", cursor=cursor, wait=0.5, generation=generation)
            )
        ).json()
        empty_after = time.monotonic() - began
        await client.post(f"{bridge.url}/api/chat/waits/stop")
    assert 0 < woke_after < 2
    assert any(item["chunk"].get("delta") == " two" for item in woke["chunks"])
    assert empty == {"generationId": generation, "chunks": [], "cursor": cursor, "done": False}
    assert 0.4 < empty_after < 2


async def test_poll_wait_is_capped_by_the_setting(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(
        openai_api_key="test-key",
        openai_base_url=openai_fake.base_url,
        bridge_model="openai:gpt-test",
        bridge_max_poll_wait_seconds=0.3,
    )
    openai_fake.enqueue([Text(["x"]), Delay(10), Text(["y"])])
    async with httpx.AsyncClient(timeout=30) as client:
        first = (
            await client.post(
                f"{server.url}/api/chat/poll?wait=0.2", json=chat_body("capped", "hi")
            )
        ).json()
        cursor, seen = first["cursor"], first["chunks"]
        # Read up to the long pause ("x" is the last chunk before it); every poll here is
        # itself capped, so this loop cannot hang.
        while not any(item["chunk"].get("delta") == "x" for item in seen):
            page = (await client.get(poll_url(server, "capped", cursor=cursor, wait=5))).json()
            seen, cursor = page["chunks"], page["cursor"]
        began = time.monotonic()
        page = (await client.get(poll_url(server, "capped", cursor=cursor, wait=60))).json()
        elapsed = time.monotonic() - began
        await client.post(f"{server.url}/api/chat/capped/stop")
    assert page["chunks"] == []
    assert 0.2 < elapsed < 1.5


# --- ended generations and nothing to read -------------------------------------------------


async def test_poll_of_an_ended_generation(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(
        openai_api_key="test-key",
        openai_base_url=openai_fake.base_url,
        bridge_model="openai:gpt-test",
        bridge_resume_grace_seconds=0.5,
    )
    openai_fake.enqueue([Text(WORDS * 3)], token_delay=0.01)
    async with httpx.AsyncClient(timeout=30) as client:
        text_flows = asyncio.Event()
        streaming = asyncio.create_task(post(client, server, "ended", streaming=text_flows))
        await asyncio.wait_for(text_flows.wait(), 10)  # part of the answer is out
        assert (await client.post(f"{server.url}/api/chat/ended/stop")).json()["stopped"]
        sse = await streaming
        generation = sse.headers["x-bridge-generation-id"]
        last = sse.offsets[-1]
        whole = (await client.get(poll_url(server, "ended", generation=generation))).json()
        tail = (
            await client.get(poll_url(server, "ended", cursor=last, wait=5, generation=generation))
        ).json()
        # A stopped answer is not replayed to a poller that does not name it.
        unnamed = (await client.get(poll_url(server, "ended", wait=5))).json()
        never = (await client.get(poll_url(server, "never-seen", cursor=3))).json()
    assert offsets(whole) == sse.offsets
    assert whole["done"] is True
    assert whole["outcome"] == "aborted"
    assert whole["chunks"][-1]["chunk"]["type"] == "abort"
    assert tail == {
        "generationId": generation,
        "chunks": [],
        "cursor": last,
        "done": True,
        "outcome": "aborted",
    }
    assert unnamed == {"generationId": None, "chunks": [], "cursor": -1, "done": True}
    assert never == {"generationId": None, "chunks": [], "cursor": 3, "done": True}


async def test_poll_replays_a_finished_generation_within_the_grace_period(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=0, bridge_resume_grace_seconds=30)
    async with httpx.AsyncClient(timeout=30) as client:
        sse = await post(client, server, "grace", "hello")
        page = (await client.get(poll_url(server, "grace"))).json()
    assert page["generationId"] == sse.headers["x-bridge-generation-id"]
    assert [item["chunk"] for item in page["chunks"]] == sse.chunks
    assert page["outcome"] == "finished"


async def test_poll_of_a_generation_past_retention_is_410(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=0)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(poll_url(server, "x", cursor=2, generation="gen_unknown"))
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "generation_gone"


# --- bad parameters, auth -------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "cursor=abc",
        "cursor=-2",
        "cursor=1.5",
        "cursor=" + "9" * 30,
        "cursor=%20",
        "wait=-1",
        "wait=abc",
        "wait=nan",
        "wait=inf",
        "wait=" + "1" * 50,
        "generation=" + "g" * 201,
    ],
)
async def test_poll_rejects_bad_parameters_with_400(memory_bridge: LiveServer, query: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{memory_bridge.url}/api/chat/some-chat/poll?{query}")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert error["message"]


async def test_poll_rejects_a_bad_chat_id_and_a_bad_start_body(memory_bridge: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        bad_id = await client.get(f"{memory_bridge.url}/api/chat/a%20b/poll")
        bad_body = await client.post(
            f"{memory_bridge.url}/api/chat/poll",
            content=b"{",
            headers={"content-type": "application/json"},
        )
        bad_wait = await client.post(
            f"{memory_bridge.url}/api/chat/poll?wait=-3", json=chat_body("w", "hi")
        )
    assert bad_id.status_code == 400
    assert bad_body.status_code == 400
    assert bad_wait.status_code == 400


async def test_poll_of_another_users_chat_is_not_found(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_auth_tokens=["t1:alice", "t2:bob"], bridge_demo_token_delay_ms=0)
    alice = {"authorization": "Bearer t1"}
    async with httpx.AsyncClient(timeout=30) as client:
        started = await client.post(
            f"{server.url}/api/chat/poll", json=chat_body("private", "hello"), headers=alice
        )
        generation = started.json()["generationId"]
        mine = await client.get(poll_url(server, "private", generation=generation), headers=alice)
        theirs = await client.get(
            poll_url(server, "private", generation=generation),
            headers={"authorization": "Bearer t2"},
        )
        nobody = await client.get(poll_url(server, "private"))
    assert started.status_code == 200
    assert mine.status_code == 200
    assert theirs.status_code == 410  # as for a generation id the chat never had
    assert "chunks" not in theirs.text
    assert nobody.status_code == 401


# --- POST /api/chat/poll ------------------------------------------------------------------


async def test_post_poll_is_busy_like_the_post(bridge: LiveServer, openai_fake: OpenAIFake) -> None:
    openai_fake.enqueue([Text(WORDS)], token_delay=0.01)
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(f"{bridge.url}/api/chat/poll", json=chat_body("busy", "a"))
        second = await client.post(f"{bridge.url}/api/chat/poll", json=chat_body("busy", "b"))
        await client.post(f"{bridge.url}/api/chat/busy/stop")
    assert first.status_code == 200
    assert first.json()["chunks"][0]["chunk"]["type"] == "start"
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "generation_active"


async def test_post_poll_of_a_continuation_skips_the_prelude(
    bridge_factory: BridgeFactory,
) -> None:
    """The client continuing a message holds it: its pages leave out the chunks that rebuild
    it, and folding them onto its copy gives the stored message."""
    # An ai 7 reader: every chunk of the log (ai 6's pages leave out the v7-only ones).
    server = bridge_factory(
        bridge_tools="bridge.tools.examples", bridge_demo_token_delay_ms=0, bridge_client_level=7
    )
    async with httpx.AsyncClient(timeout=30) as client:
        first = (
            await client.post(
                f"{server.url}/api/chat/poll?wait=5",
                json=chat_body("poll-approval", "delete /tmp/x"),
            )
        ).json()
        await poll_to_the_end(
            client, server, "poll-approval", first["generationId"], first["cursor"]
        )
        history = (await client.get(f"{server.url}/api/chat/poll-approval/messages")).json()
        assistant = history["messages"][-1]
        for part in assistant["parts"]:
            if part.get("state") == "approval-requested":
                part["state"] = "approval-responded"
                part["approval"] = {**part["approval"], "approved": True}
        body = {
            "id": "poll-approval",
            "messages": history["messages"],
            "trigger": "submit-message",
            "messageId": assistant["id"],
        }
        held = UIMessage.model_validate(assistant)
        started = (await client.post(f"{server.url}/api/chat/poll", json=body)).json()
        _, items = await poll_to_the_end(
            client, server, "poll-approval", started["generationId"], started["cursor"]
        )
        stored = (await client.get(f"{server.url}/api/chat/poll-approval/messages")).json()
        full = (
            await client.get(poll_url(server, "poll-approval", generation=started["generationId"]))
        ).json()
    got = started["chunks"] + items
    got_offsets = [item["offset"] for item in got]
    skipped = got_offsets[1] - 1
    assert got_offsets[0] == 0
    assert skipped > 0  # the log has a prelude, and this client did not get it
    assert got_offsets[1:] == list(range(skipped + 1, len(full["chunks"])))
    assert offsets(full) == list(range(len(full["chunks"])))  # a resume gets all of it
    assembler = MessageAssembler(message=held)
    for item in got:
        assembler.apply(parse_chunk(item["chunk"]))
    assert assembler.message.dump() == stored["messages"][-1]
