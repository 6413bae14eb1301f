"""The WebSocket endpoint: the AI SDK's own `WebSocketChatTransport` driving `Chat` (Node
harness), and raw sockets for multiplexing, offsets, hostile frames, auth and origins."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from protocol.websocket import KEEPALIVE_FRAME
from tests.bridge_server import BridgeFactory
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Delay, HttpError, LiveServer, Text
from tests.node_harness import NodeHarness
from tests.session_client import read_stream
from tests.support.redis import RedisServer
from tests.support.waiting import until
from tests.ws_client import RawSocket, resume_frame, send_frame, ws_url

WORDS = " ".join(f"word{index}" for index in range(150))


def openai_bridge(factory: BridgeFactory, fake: OpenAIFake, **extra: Any) -> LiveServer:
    return factory(
        openai_api_key="test-key",
        openai_base_url=fake.base_url,
        bridge_model="openai:gpt-test",
        **extra,
    )


def stored_messages(server: LiveServer, chat_id: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{server.url}/api/chat/{chat_id}/messages", timeout=10).json()
    messages: list[dict[str, Any]] = body["messages"]
    return messages


def text_of(message: dict[str, Any]) -> str:
    return "".join(str(p.get("text", "")) for p in message["parts"] if p["type"] == "text")


def ws_sends(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["frame"] for e in result["events"] if e["type"] == "wsSend" and e["frame"]]


# --- the SDK's own client ------------------------------------------------------------------


@pytest.mark.node
def test_websocket_chat_completes_a_full_answer_with_keep_alives_in_between(
    node: NodeHarness, bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    # Keep-alive frames arrive while the model pauses: the stock client must ignore them.
    server = openai_bridge(bridge_factory, openai_fake, bridge_ws_ping_seconds=0.05)
    openai_fake.enqueue([Text("first half,"), Delay(0.5), Text(" second half.")])
    result = node.chat(
        {
            "api": f"{server.url}/api/chat",
            "transport": "websocket",
            "chatId": "ws-full",
            "steps": [{"op": "send", "text": "hello"}],
        }
    )
    assert result["status"] == "ready", result["error"]
    messages = result["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert text_of(messages[1]) == "first half, second half."
    assert messages[1] == stored_messages(server, "ws-full")[-1]
    assert [frame["type"] for frame in ws_sends(result)] == ["send"]


@pytest.mark.node
def test_websocket_resume_after_a_cut_socket_replays_into_one_message(
    node: NodeHarness, bridge_factory: BridgeFactory
) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=5)
    result = node.chat(
        {
            "api": f"{server.url}/api/chat",
            "transport": "websocket",
            "chatId": "ws-cut",
            "steps": [
                {"op": "dropAfterChunks", "n": 15},
                {"op": "send", "text": "a long answer please", "allowThrow": True},
                {"op": "waitStatus", "status": ["error", "ready"]},
                {"op": "resume"},
            ],
        }
    )
    assert result["status"] == "ready", result["error"]
    dropped, resumed = result["responses"]
    assert dropped["state"] == "dropped"
    assert dropped["chunkCount"] == 15
    assert resumed["kind"] == "resume"
    assert resumed["state"] == "done"
    # The replay is complete (from `start`), so the partial message is replaced, not doubled.
    assert resumed["chunks"][: dropped["chunkCount"]] == dropped["chunks"]
    assert resumed["chunks"][-1]["type"] == "finish"
    messages = result["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1] == stored_messages(server, "ws-cut")[-1]
    assert len(text_of(messages[1])) > 1000
    assert [frame["type"] for frame in ws_sends(result)] == ["send", "resume"]


@pytest.mark.node
def test_websocket_stop_sends_abort_which_reaches_the_provider(
    node: NodeHarness, bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = openai_bridge(bridge_factory, openai_fake)
    openai_fake.enqueue([Text(WORDS * 4)], token_delay=0.01)
    result = node.chat(
        {
            "api": f"{server.url}/api/chat",
            "transport": "websocket",
            "chatId": "ws-stop",
            "steps": [
                {"op": "send", "text": "go", "wait": False},
                {"op": "waitChunks", "n": 10},
                {"op": "stop"},
                {"op": "wait"},
            ],
        }
    )
    assert result["status"] == "ready", result["error"]
    frames = ws_sends(result)
    assert [frame["type"] for frame in frames] == ["send", "abort"]
    assert frames[1]["requestId"] == frames[0]["requestId"]
    assert asyncio.run(openai_fake.wait_for_disconnect(5))
    partial = text_of(result["messages"][1])
    stored = asyncio.run(_wait_for_history(server, "ws-stop"))[-1]
    assert stored["id"] == result["messages"][1]["id"]
    assert 0 < len(text_of(stored)) < len(WORDS * 4)
    assert text_of(stored).startswith(partial)
    assert httpx.get(f"{server.url}/api/chat/ws-stop/stream").status_code == 204


async def _wait_for_history(server: LiveServer, chat_id: str) -> list[dict[str, Any]]:
    """The stored history once no generation is active (a stop is asynchronous)."""
    body: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=10) as client:

        async def ended() -> bool:
            body.update((await client.get(f"{server.url}/api/chat/{chat_id}/messages")).json())
            return body["activeGenerationId"] is None

        await until(ended, 5, f"the generation of {chat_id} ended")
    messages: list[dict[str, Any]] = body["messages"]
    return messages


@pytest.mark.node
@pytest.mark.parametrize("approved", [True, False])
def test_websocket_approval_continuation_ends_with_the_stored_message(
    node: NodeHarness, bridge_factory: BridgeFactory, approved: bool
) -> None:
    # The continuation's log starts with a prelude rebuilding the message; the socket that
    # sent it gets no-op chunks there, so its copy of the message is not doubled.
    server = bridge_factory(bridge_tools="bridge.tools.examples", bridge_demo_token_delay_ms=0)
    chat_id = f"ws-approval-{approved}"
    result = node.chat(
        {
            "api": f"{server.url}/api/chat",
            "transport": "websocket",
            "chatId": chat_id,
            "auto": "approvals",
            "steps": [
                {"op": "send", "text": "delete /tmp/report.txt"},
                {
                    "op": "addToolApprovalResponse",
                    "match": {"toolName": "delete_file"},
                    "approved": approved,
                },
                {"op": "settle"},
            ],
        }
    )
    assert result["status"] == "ready", result["error"]
    messages = result["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    tool = next(p for p in messages[1]["parts"] if p["type"] == "tool-delete_file")
    assert tool["state"] == ("output-available" if approved else "output-denied")
    assert messages[1]["parts"] == stored_messages(server, chat_id)[-1]["parts"]
    # ...and a full replay of that continuation (prelude included) rebuilds the same message.
    replay = node.chat(
        {
            "api": f"{server.url}/api/chat",
            "transport": "websocket",
            "chatId": chat_id,
            "loadMessages": True,
            "steps": [{"op": "resume"}],
        }
    )
    assert replay["messages"] == messages


# --- raw sockets ----------------------------------------------------------------------------


async def test_websocket_multiplexes_two_chats_on_one_socket(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=3)
    async with await RawSocket.open(ws_url(server.url)) as socket:
        await socket.send(send_frame("a", "mux-a", "something long"))
        await socket.send(send_frame("b", "mux-b", "something long"))
        first, second = await asyncio.gather(socket.wait_for("a"), socket.wait_for("b"))
    for reply in (first, second):
        assert reply.final == "end"
        assert reply.sequences == list(range(len(reply.sequences)))
        assert reply.chunks[0]["type"] == "start"
        assert reply.chunks[-1]["type"] == "finish"
    assert first.generation_id != second.generation_id
    assert first.text() == second.text()  # the same scripted answer, each complete
    # Both streamed at once: b's first frame came before a's last one.
    assert socket.order.index("b") < len(socket.order) - 1 - socket.order[::-1].index("a")


async def test_websocket_resume_from_last_sequence_sends_exactly_the_rest(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=0)
    async with await RawSocket.open(ws_url(server.url)) as socket:
        full = await socket.request(send_frame("full", "offsets", "long please"))
        generation = full.generation_id
        last = full.sequences[-1]
        for k in sorted({0, 1, 5, last // 2, last - 1, last}):
            part = await socket.request(
                resume_frame(f"r{k}", "offsets", lastSequence=k, generationId=generation)
            )
            assert part.final == "end"
            assert part.frames[0] == {
                "type": "start",
                "requestId": f"r{k}",
                "generationId": generation,
            }
            assert part.sequences == list(range(k + 1, last + 1))
            assert part.chunks == full.chunks[k + 1 :]
        # No lastSequence: the whole log again, as the stock transport expects.
        again = await socket.request(resume_frame("all", "offsets"))
    assert again.chunks == full.chunks
    assert full.sequences == list(range(last + 1))


async def test_websocket_sequence_is_the_sse_event_id(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=0)
    async with await RawSocket.open(ws_url(server.url)) as socket:
        reply = await socket.request(send_frame("s", "same-ids", "hello"))
    async with httpx.AsyncClient(timeout=10) as client:
        url = f"{server.url}/api/chat/same-ids/stream?generation={reply.generation_id}&cursor=-1"
        sse = await read_stream(client, "GET", url)
    assert sse.offsets == reply.sequences
    assert sse.chunks == reply.chunks


async def test_websocket_closing_the_socket_never_stops_the_generation(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = openai_bridge(bridge_factory, openai_fake)
    openai_fake.enqueue([Text(WORDS)], token_delay=0.005)
    async with await RawSocket.open(ws_url(server.url)) as socket:
        await socket.send(send_frame("gone", "walk-away"))
        await socket.wait_chunks("gone", 5)
    async with httpx.AsyncClient(timeout=30) as client:
        rest = await read_stream(client, "GET", f"{server.url}/api/chat/walk-away/stream")
    assert rest.done
    assert rest.types[-1] == "finish"
    assert rest.text() == WORDS
    assert openai_fake.disconnects == 0


async def test_websocket_errors_before_streaming_are_error_frames(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = openai_bridge(bridge_factory, openai_fake)
    openai_fake.enqueue([HttpError(401)])
    openai_fake.enqueue([Text(WORDS)], token_delay=0.01)
    async with await RawSocket.open(ws_url(server.url)) as socket:
        refused = await socket.request(send_frame("refused", "refused"))
        await socket.send(send_frame("running", "busy"))
        await socket.wait_chunks("running", 3)
        busy = await socket.request(send_frame("busy", "busy"))
        model = await socket.request(send_frame("model", "m", body={"model": "nope:x"}))
        bad_body = await socket.request(send_frame("body", "b", body={"model": 7}))
        # The socket is still usable for the request that was fine.
        running = await socket.wait_for("running")
    assert [f["type"] for f in refused.frames] == ["error"]
    assert "credentials" in refused.frames[0]["errorText"]
    assert [f["type"] for f in busy.frames] == ["error"]
    assert "already has a generation running" in busy.frames[0]["errorText"]
    assert "not allowed" in model.frames[0]["errorText"]
    assert [f["type"] for f in bad_body.frames] == ["error"]
    assert "model" in bad_body.frames[0]["errorText"]
    assert running.final == "end"
    assert running.text() == WORDS


async def test_websocket_resume_without_an_active_generation_is_no_active(
    memory_bridge: LiveServer,
) -> None:
    async with await RawSocket.open(ws_url(memory_bridge.url)) as socket:
        reply = await socket.request(resume_frame("r", "never-used"))
        gone = await socket.request(resume_frame("g", "never-used", generationId="gen_nope"))
    assert reply.frames == [{"type": "no-active", "requestId": "r"}]
    assert [f["type"] for f in gone.frames] == ["error"]
    assert "retention" in gone.frames[0]["errorText"]


async def test_websocket_sends_keep_alives_on_an_idle_socket(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_ws_ping_seconds=0.1)
    async with await RawSocket.open(ws_url(server.url)) as socket:
        await asyncio.sleep(0.55)  # the idle period is what the test is about
    assert 3 <= len(socket.keep_alives) <= 6
    assert set(socket.keep_alives) == {KEEPALIVE_FRAME.decode()}


async def test_websocket_unknown_request_ids_are_ignored(memory_bridge: LiveServer) -> None:
    async with await RawSocket.open(ws_url(memory_bridge.url)) as socket:
        await socket.send({"type": "abort", "requestId": "never-sent"})
        await socket.send({"type": "abort", "requestId": "never-sent"})
        reply = await socket.request(resume_frame("after", "idle-chat"))
    assert reply.final == "no-active"
    assert set(socket.replies) == {"after"}


HUGE_TEXT = "x" * 70_000


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json at all", "not valid JSON"),
        ("[1, 2, 3]", "JSON object"),
        ('{"requestId": "r"}', "JSON object"),
        ('{"type": "subscribe", "requestId": "r"}', "unknown frame type"),
        ('{"type": "abort", "requestId": 7}', "invalid abort"),
        ('{"type": "abort", "requestId": ""}', "invalid abort"),
        ('{"type": "abort", "requestId": "bridge:keep-alive"}', "reserved"),
        ('{"type": "resume", "requestId": "r", "id": "c", "headers": [], "body": {}}', "headers"),
        (
            '{"type": "resume", "requestId": "r", "id": "c", "headers": {}, "body": {},'
            ' "lastSequence": -3}',
            "lastSequence",
        ),
        ('{"type": "resume", "requestId": "r", "id": "../x", "headers": {}, "body": {}}', "id"),
        (orjson.dumps(send_frame("r", "c", messages=[])).decode(), "messages"),
        (orjson.dumps(send_frame("r", "c", trigger="resume-stream")).decode(), "trigger"),
        (orjson.dumps(send_frame("r", "c", HUGE_TEXT)).decode(), "too large"),
        (b'{"type": "abort", "requestId": "r"}', "binary"),
    ],
)
async def test_websocket_hostile_frame_closes_the_socket_with_1008(
    bridge_factory: BridgeFactory, frame: str | bytes, reason: str
) -> None:
    server = bridge_factory(bridge_ws_max_frame_bytes=64 * 1024)
    async with await RawSocket.open(ws_url(server.url)) as socket:
        await socket.send(frame)
        code, text = await socket.wait_closed()
    assert code == 1008
    assert reason in text
    assert len(text.encode()) <= 123
    assert not socket.replies
    # Nothing was started by a frame that was refused.
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{server.url}/api/chat/c/stream")).status_code == 204


async def test_websocket_reused_request_id_closes_the_socket(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=5)
    async with await RawSocket.open(ws_url(server.url)) as socket:
        await socket.send(send_frame("twice", "dup-1", "long"))
        await socket.wait_chunks("twice", 1)
        await socket.send(send_frame("twice", "dup-2", "long"))
        code, reason = await socket.wait_closed()
    assert code == 1008
    assert "already in use" in reason


async def test_websocket_limits_requests_per_socket(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=5, bridge_ws_max_requests=2)
    async with await RawSocket.open(ws_url(server.url)) as socket:
        for index in range(3):
            await socket.send(send_frame(f"r{index}", f"limit-{index}", "long"))
        third = await socket.wait_for("r2")
        first = await socket.wait_for("r0")
    assert [f["type"] for f in third.frames] == ["error"]
    assert "too many requests" in third.frames[0]["errorText"]
    assert first.final == "end"


# --- auth and origin ------------------------------------------------------------------------


async def test_websocket_resume_of_another_users_chat_leaks_nothing(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_auth_tokens=["t1:alice", "t2:bob"], bridge_demo_token_delay_ms=3)
    alice = await RawSocket.open(ws_url(server.url, "/api/chat?token=t1"))
    bob = await RawSocket.open(ws_url(server.url, "/api/chat?token=t2"))
    async with alice, bob:
        await alice.send(send_frame("a1", "alice-chat", "a long secret"))
        await alice.wait_chunks("a1", 3)
        generation = alice.replies["a1"].generation_id
        peek = await bob.request(resume_frame("b1", "alice-chat"))
        targeted = await bob.request(
            resume_frame("b2", "alice-chat", generationId=generation, lastSequence=0)
        )
        hijack = await bob.request(send_frame("b3", "alice-chat", "mine now"))
        await bob.send({"type": "abort", "requestId": "a1"})  # not bob's request
        finished = await alice.wait_for("a1")
    # Someone else's chat answers as an unused id: nothing to resume, the named generation
    # unknown; a turn on it is refused.
    assert [f["type"] for f in peek.frames] == ["no-active"]
    for reply in (targeted, hijack):
        assert [f["type"] for f in reply.frames] == ["error"]
    assert "unknown or past its retention" in targeted.frames[0]["errorText"]
    assert "not found" in hijack.frames[0]["errorText"]
    assert finished.final == "end"
    assert finished.chunks[-1]["type"] == "finish"


async def test_websocket_handshake_needs_a_valid_token(bridge_factory: BridgeFactory) -> None:
    server = bridge_factory(bridge_auth_tokens=["t1:alice"])
    for path in ("/api/chat", "/api/chat?token=wrong"):
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(ws_url(server.url, path))
        assert refused.value.response.status_code == 401
    async with await RawSocket.open(
        ws_url(server.url), additional_headers={"authorization": "Bearer t1"}
    ) as socket:
        assert (await socket.request(resume_frame("r", "x"))).final == "no-active"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("same", True),
        ("http://app.example", True),  # listed in BRIDGE_CORS_ORIGINS
        ("http://evil.example", False),
        ("null", False),
    ],
)
async def test_websocket_origin_must_be_same_origin_or_listed(
    bridge_factory: BridgeFactory, origin: str | None, allowed: bool
) -> None:
    server = bridge_factory(bridge_cors_origins=["http://app.example"])
    url = ws_url(server.url)
    value = server.url if origin == "same" else origin
    kwargs: dict[str, Any] = {"origin": value} if value is not None else {}
    if allowed:
        async with await RawSocket.open(url, **kwargs) as socket:
            assert (await socket.request(resume_frame("r", "x"))).final == "no-active"
    else:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url, **kwargs)
        assert refused.value.response.status_code == 403


@pytest.mark.redis
async def test_websocket_and_poll_on_another_instance_read_the_same_log(
    bridge_factory: BridgeFactory, redis_server: RedisServer
) -> None:
    settings = {
        "redis_url": redis_server.url,
        "bridge_key_prefix": f"ws{uuid.uuid4().hex[:8]}",
        "bridge_demo_token_delay_ms": 3,
    }
    first, second = bridge_factory(**settings), bridge_factory(**settings)
    async with (
        await RawSocket.open(ws_url(first.url)) as writer_side,
        await RawSocket.open(ws_url(second.url)) as reader_side,
        httpx.AsyncClient(timeout=30) as client,
    ):
        await writer_side.send(send_frame("w", "shared", "a long answer"))
        early = await writer_side.wait_chunks("w", 10)
        generation = early.generation_id
        resumed = await reader_side.request(
            resume_frame("r", "shared", lastSequence=5, generationId=generation)
        )
        polled: list[dict[str, Any]] = []
        cursor = 5
        while True:
            page = (
                await client.get(
                    f"{second.url}/api/chat/shared/poll?cursor={cursor}&wait=5&generation={generation}"
                )
            ).json()
            polled += page["chunks"]
            cursor = page["cursor"]
            if page["done"]:
                break
        original = await writer_side.wait_for("w")
    assert original.final == resumed.final == "end"
    assert resumed.sequences == list(range(6, original.sequences[-1] + 1))
    assert resumed.chunks == original.chunks[6:]
    assert [item["chunk"] for item in polled] == original.chunks[6:]
    assert [item["offset"] for item in polled] == resumed.sequences
