"""Live-session frames on the chat WebSocket: `live` follows a chat across turns sent on
another socket, `steer` reaches the running generation (and is refused when nothing runs)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.bridge_server import BridgeFactory, openai_settings
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Delay, Text
from tests.ws_client import RawSocket, send_frame, ws_url


def live_frame(request_id: str, chat_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "live", "requestId": request_id, "id": chat_id, **extra}


def steer_frame(
    request_id: str, chat_id: str, text: str, mode: str = "queue", message_id: str = "s1"
) -> dict[str, Any]:
    return {
        "type": "steer",
        "requestId": request_id,
        "id": chat_id,
        "message": {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]},
        "mode": mode,
    }


async def wait_frames(socket: RawSocket, request_id: str, n: int) -> None:
    async with asyncio.timeout(10):
        while len(socket.replies[request_id].frames) < n:
            socket._changed.clear()
            await socket._changed.wait()


async def test_websocket_live_frame_follows_turns_from_another_socket(
    bridge_factory: BridgeFactory,
) -> None:
    server = bridge_factory(bridge_demo_token_delay_ms=0)
    async with (
        await RawSocket.open(ws_url(server.url)) as follower,
        await RawSocket.open(ws_url(server.url)) as sender,
    ):
        await follower.send(live_frame("tail", "ws-live"))
        await wait_frames(follower, "tail", 1)
        assert follower.replies["tail"].frames[0] == {"type": "start", "requestId": "tail"}
        first = await sender.request(send_frame("one", "ws-live", "first"))
        second = await sender.request(send_frame("two", "ws-live", "second"))
        total = len(first.chunks) + len(second.chunks) + 2
        tail = await follower.wait_chunks("tail", total)
        await follower.send({"type": "abort", "requestId": "tail"})
    assert tail.sequences[:total] == list(range(total))
    chunks = tail.chunks[:total]
    assert chunks[0]["type"] == "data-user-message"
    assert chunks[0]["data"]["message"]["parts"][0]["text"] == "first"
    assert chunks[1 : 1 + len(first.chunks)] == first.chunks
    opening = chunks[1 + len(first.chunks)]
    assert opening["type"] == "data-user-message"
    assert chunks[2 + len(first.chunks) :] == second.chunks
    positions = [frame["position"] for frame in tail.frames if frame["type"] == "chunk"]
    assert positions[0] == f"{first.generation_id}:-1"
    assert positions[-1] == f"{second.generation_id}:{len(second.chunks) - 1}"


async def test_websocket_steer_frame_interrupt_waits_for_a_call_with_output(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    """The AI SDK's interrupt rule on the socket too: a model call that has produced output
    is never cut; the message is delivered at the next step boundary."""
    server = bridge_factory(**openai_settings(openai_fake))
    openai_fake.enqueue([Text("Rambling on and on"), Delay(1.5), Text(" and on.")])
    openai_fake.enqueue([Text("Stopped rambling.")])
    async with await RawSocket.open(ws_url(server.url)) as socket:
        await socket.send(send_frame("turn", "ws-steer", "talk"))
        async with asyncio.timeout(10):
            while not any(c["type"] == "text-delta" for c in socket.replies["turn"].chunks):
                await socket.wait_chunks("turn", len(socket.replies["turn"].chunks) + 1)
        steered = await socket.request(steer_frame("st", "ws-steer", "Stop", "interrupt"))
        assert steered.final == "end"
        answer = await socket.wait_for("turn")
        # A new message once it ended is refused (the same id again would be a retry).
        refused = await socket.request(steer_frame("late", "ws-steer", "again", message_id="s2"))
    types = [chunk["type"] for chunk in answer.chunks]
    assert types.count("steering-message") == 1
    # Queued while the first call streamed (the premise), which went on to its end.
    assert types.index("data-steering-queued") < types.index("text-end")
    assert openai_fake.disconnects == 0
    first_text = "".join(
        c["delta"] for c in answer.chunks[: types.index("text-end")] if c["type"] == "text-delta"
    )
    assert first_text == "Rambling on and on and on."
    assert answer.chunks[-1]["finishReason"] == "stop"
    assert refused.final == "error"
    assert "nothing is running" in refused.frames[-1]["errorText"]
    assert orjson.loads(orjson.dumps(answer.chunks[types.index("steering-message")]))["parts"] == [
        {"type": "text", "text": "Stop"}
    ]
