"""The busy policy on the other ways to send a message: the long-poll POST
(`POST /api/chat/poll`, then `GET /api/chat/{id}/poll?steering=`) and the WebSocket `send`
frame apply the same policy as `POST /api/chat` and tell the client what happened in their
own way (response headers and a `data-busy` page; `start` frames with `busy`)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from tests import gated_tools
from tests.bridge_server import BridgeFactory, openai_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Hang, LiveServer, Text
from tests.test_busy_policy import Background, running_hold, user
from tests.test_steering import TOOLS, Posting, input_roles, stored
from tests.ws_client import RawSocket, ws_url


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, openai_fake: OpenAIFake) -> LiveServer:
    return bridge_factory(**openai_settings(openai_fake, bridge_tools=TOOLS))


def post_poll(
    server: LiveServer, body: dict[str, Any], busy: str | None, wait: float = 0
) -> httpx.Response:
    headers = {"x-bridge-busy": busy} if busy is not None else {}
    return httpx.post(
        f"{server.url}/api/chat/poll?wait={wait}&client=7", json=body, headers=headers, timeout=60
    )


def poll(server: LiveServer, chat_id: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/api/chat/{chat_id}/poll", params={"client": "7", **params}, timeout=60
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def wait_queued(posting: Posting, count: int = 1) -> None:
    """Until the running answer's log shows `count` messages queued (a bounded wait on a
    condition: the answer's reader files every chunk as it arrives)."""
    pause = threading.Event()
    for _ in range(400):
        queued = [c for c in list(posting.chunks) if c["type"] == "data-steering-queued"]
        if len(queued) >= count:
            return
        assert posting.is_alive(), "the running answer ended first"
        pause.wait(0.05)
    raise AssertionError("the message was never queued")


def follow_pages(server: LiveServer, chat_id: str, page: dict[str, Any]) -> list[dict[str, Any]]:
    """Poll a generation from `page` to its end; every chunk in order."""
    chunks = [item["chunk"] for item in page["chunks"]]
    while not page["done"]:
        page = poll(
            server, chat_id, generation=page["generationId"], cursor=page["cursor"], wait=10
        )
        chunks += [item["chunk"] for item in page["chunks"]]
    return chunks


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(str(c.get("delta", "")) for c in chunks if c["type"] == "text-delta")


def test_busy_poll_post_queue_answers_data_busy_then_the_turn_by_steering_id(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    posting, gate = running_hold(bridge, openai_fake, "poll-queue")
    openai_fake.enqueue([Text("First done.")])
    openai_fake.enqueue([Text("Polled answer.")])
    response = post_poll(bridge, {"id": "poll-queue", "message": user("next", "u2")}, "queue")
    assert response.status_code == 200
    assert response.headers["x-bridge-busy"] == "queued"
    assert response.headers["x-bridge-steering-id"] == "u2"
    running = response.headers["x-bridge-running-generation-id"]
    page = response.json()
    assert page["generationId"] is None and page["done"] is False
    assert [item["offset"] for item in page["chunks"]] == [-1]
    busy = page["chunks"][0]["chunk"]
    assert busy["type"] == "data-busy" and busy["transient"] is True
    assert busy["data"] == {
        "policy": "queue",
        "state": "queued",
        "runningGenerationId": running,
        "messageId": "u2",
    }
    # Still queued while the answer runs: the steering poll says so again.
    again = poll(bridge, "poll-queue", steering="u2", wait=0)
    assert again["generationId"] is None and again["chunks"][0]["chunk"]["data"]["state"] == (
        "queued"
    )
    gated_tools.open_gate(gate)
    posting.finish()
    turn_page = poll(bridge, "poll-queue", steering="u2", wait=10)
    assert turn_page["generationId"] not in (None, running)
    chunks = follow_pages(bridge, "poll-queue", turn_page)
    assert chunks[0]["type"] == "start"
    assert text_of(chunks) == "Polled answer."
    messages = stored(bridge, "poll-queue")
    assert [(m["role"], m["id"]) for m in messages][2] == ("user", "u2")
    assert len(messages) == 4


def test_busy_poll_post_reject_and_steer(bridge: LiveServer, openai_fake: OpenAIFake) -> None:
    posting, gate = running_hold(bridge, openai_fake, "poll-steer")
    active = httpx.get(f"{bridge.url}/api/chat/poll-steer/messages").json()["activeGenerationId"]
    rejected = post_poll(bridge, {"id": "poll-steer", "message": user("x", "u2")}, None)
    assert rejected.status_code == 409
    assert rejected.json()["error"]["generationId"] == active
    openai_fake.enqueue([Text("Steered.")])
    steered = post_poll(bridge, {"id": "poll-steer", "message": user("Be brief", "u3")}, "steer")
    assert steered.status_code == 200
    assert steered.headers["x-bridge-busy"] == "steered"
    page = steered.json()
    assert page["generationId"] == active  # the running answer, from its start
    assert page["chunks"][0]["offset"] == 0
    gated_tools.open_gate(gate)
    chunks = follow_pages(bridge, "poll-steer", page)
    posting.finish()
    types = [c["type"] for c in chunks]
    at = types.index("steering-message")
    assert chunks[at]["id"] == "u3" and types[at + 1] == "start-step"
    assert text_of(chunks).endswith("Steered.")


def test_busy_poll_steering_of_an_unknown_message_is_404(bridge: LiveServer) -> None:
    response = httpx.get(f"{bridge.url}/api/chat/nobody/poll", params={"steering": "nope"})
    assert response.status_code == 404
    both = httpx.get(
        f"{bridge.url}/api/chat/nobody/poll", params={"steering": "a", "generation": "g"}
    )
    assert both.status_code == 400


def ws_send(request_id: str, chat_id: str, busy: str | None, messages: list[Any]) -> dict[str, Any]:
    return {
        "type": "send",
        "requestId": request_id,
        "id": chat_id,
        "trigger": "submit-message",
        "messages": messages,
        "headers": {"X-Bridge-Busy": busy} if busy is not None else {},
        "body": {},
    }


async def test_busy_websocket_send_queue_names_the_turn_in_a_second_start_frame(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    posting, gate = await asyncio.to_thread(running_hold, bridge, openai_fake, "ws-queue")
    openai_fake.enqueue([Text("First done.")])
    openai_fake.enqueue([Text("Socket answer.")])
    messages = [user("first", "u1"), user("over the socket", "u2")]  # the stock body
    async with await RawSocket.open(ws_url(bridge.url)) as socket:
        await socket.send(ws_send("r1", "ws-queue", "queue", messages))
        await asyncio.to_thread(wait_queued, posting)
        first = socket.replies["r1"].frames
        assert [f["type"] for f in first] == ["start"]
        assert first[0]["busy"]["state"] == "queued" and first[0]["busy"]["steeringId"] == "u2"
        assert "generationId" not in first[0]
        gated_tools.open_gate(gate)
        reply = await socket.wait_for("r1")
    await asyncio.to_thread(posting.finish)
    frames = reply.frames
    assert [f["type"] for f in frames[:2]] == ["start", "start"]
    turn = frames[1]["generationId"]
    assert turn != first[0]["busy"]["runningGenerationId"]
    assert frames[-1]["type"] == "end"
    assert reply.sequences == list(range(len(reply.sequences)))  # the turn's log offsets
    assert reply.chunks[0]["type"] == "start"
    assert reply.text() == "Socket answer."
    assert [m["id"] for m in stored(bridge, "ws-queue") if m["role"] == "user"] == ["u1", "u2"]


async def test_busy_websocket_send_reject_steer_and_dropped(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text("A long answer that"), Hang()])
    posting = Posting(bridge, "ws-busy", "first")
    posting.start()
    assert await asyncio.to_thread(posting.texted.wait, 10)
    messages = await asyncio.to_thread(httpx.get, f"{bridge.url}/api/chat/ws-busy/messages")
    running = messages.json()["activeGenerationId"]
    async with await RawSocket.open(ws_url(bridge.url)) as socket:
        rejected = await socket.request(ws_send("r1", "ws-busy", None, [user("x", "u2")]))
        assert [f["type"] for f in rejected.frames] == ["error"]
        assert "running" in rejected.frames[0]["errorText"]
        await socket.send(ws_send("r2", "ws-busy", "steer", [user("Be brief", "u3")]))
        await socket.send(ws_send("r3", "ws-busy", "queue", [user("later", "u4")]))
        await asyncio.to_thread(wait_queued, posting, 2)
        steered = socket.replies["r2"].frames[0]
        assert steered["type"] == "start" and steered["generationId"] == running
        assert steered["busy"]["state"] == "steered"
        # A stop clears the queue: the queued request ends with data-busy dropped.
        stop = await asyncio.to_thread(httpx.post, f"{bridge.url}/api/chat/ws-busy/stop")
        assert stop.status_code == 200
        dropped = await socket.wait_for("r3")
        steered_reply = await socket.wait_for("r2")
    await asyncio.to_thread(posting.finish)
    assert [f["type"] for f in dropped.frames] == ["start", "chunk", "end"]
    assert dropped.frames[0]["busy"]["steeringId"] == "u4"
    assert dropped.sequences == [0]
    assert dropped.chunks[0]["type"] == "data-busy"
    assert dropped.chunks[0]["data"]["state"] == "dropped"
    assert dropped.chunks[0]["data"]["reason"] == "aborted"
    assert "abort" in [c["type"] for c in steered_reply.chunks]  # the stopped answer
    # Stopped: nothing started a turn for the queued message.
    assert [m["role"] for m in stored(bridge, "ws-busy")] == ["user", "assistant"]


def test_busy_several_queued_messages_become_one_next_turn_in_order(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    """Three messages queued during one answer (two SSE POSTs, one long-poll POST) are one
    next turn: one user message holding their parts in the order they were queued, answered
    by one model call; every sender follows that same turn. A heartbeat longer than the
    requests' own timeout: a sender that learnt its turn only from its record (written once
    the model call was accepted) or after a heartbeat would never end in time."""
    settings = openai_settings(openai_fake, bridge_tools=TOOLS, bridge_heartbeat_seconds=100)
    bridge = bridge_factory(**settings)
    posting, gate = running_hold(bridge, openai_fake, "busy-many")
    openai_fake.enqueue([Text("First done.")])
    openai_fake.enqueue([Text("One answer for all three.")])
    first = Background(bridge, {"id": "busy-many", "message": user("second", "u2")}, "queue")
    first.start()
    wait_queued(posting, 1)
    second = Background(bridge, {"id": "busy-many", "message": user("third", "u3")}, "queue")
    second.start()
    wait_queued(posting, 2)
    polled = post_poll(bridge, {"id": "busy-many", "message": user("fourth", "u4")}, "queue")
    assert polled.status_code == 200 and polled.json()["generationId"] is None
    wait_queued(posting, 3)
    gated_tools.open_gate(gate)
    posting.finish()
    answers = [first.finish(), second.finish()]
    turn_page = poll(bridge, "busy-many", steering="u4", wait=10)
    polled_chunks = follow_pages(bridge, "busy-many", turn_page)
    turns = {response.headers["x-bridge-running-generation-id"] for response, _ in answers}
    assert len(turns) == 1  # all queued behind the same answer
    for response, chunks in answers:
        assert response.status_code == 200
        assert chunks[0]["data"]["state"] == "queued"
        assert text_of(chunks) == "One answer for all three."
    assert text_of(polled_chunks) == "One answer for all three."
    starts = {c["messageId"] for _, chunks in answers for c in chunks if c["type"] == "start"}
    assert len(starts) == 1  # one turn, followed by every sender
    assert len(openai_fake.requests) == 3  # the first answer's two calls, then one
    assert input_roles(openai_fake.requests[2].json)[-1] == ("user", "secondthirdfourth")
    messages = stored(bridge, "busy-many")
    assert [(m["role"], m["id"]) for m in messages][2] == ("user", "u2")
    assert [p["text"] for p in messages[2]["parts"]] == ["second", "third", "fourth"]
    assert len(messages) == 4
    for steering_id in ("u2", "u3", "u4"):
        record = httpx.get(f"{bridge.url}/api/chat/busy-many/steer/{steering_id}").json()
        assert record["nextTurn"] == turn_page["generationId"]


def test_busy_poll_queued_message_dropped_by_a_stop_ends_its_polls(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text("A long answer that"), Hang()])
    posting = Posting(bridge, "poll-drop", "first")
    posting.start()
    assert posting.texted.wait(10)
    page = post_poll(bridge, {"id": "poll-drop", "message": user("later", "u2")}, "queue")
    assert page.status_code == 200 and page.json()["done"] is False
    wait_queued(posting)
    assert httpx.post(f"{bridge.url}/api/chat/poll-drop/stop").status_code == 200
    posting.finish()
    dropped = poll(bridge, "poll-drop", steering="u2", wait=10)
    assert dropped["generationId"] is None and dropped["done"] is True
    assert [item["chunk"]["data"] for item in dropped["chunks"]] == [
        {"policy": "queue", "state": "dropped", "reason": "aborted"}
    ]
    assert [m["role"] for m in stored(bridge, "poll-drop")] == ["user", "assistant"]
