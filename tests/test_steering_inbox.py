"""The producer's steering inbox on its own: a step boundary that reads the queue while the
watcher is half-way through accepting the same message still delivers it (the race once
sent the next model call without a message the watcher had already taken)."""

from __future__ import annotations

import asyncio

from bridge.generation.inbox import SteeringInbox, SteeringRequest, parse_steering_parts
from bridge.store.memory import MemoryStore
from protocol.chunks import UIMessageChunk


class Emitted:
    def __init__(self) -> None:
        self.chunks = 0
        self.seen: list[UIMessageChunk] = []

    def __call__(self, chunk: UIMessageChunk, /) -> None:
        self.chunks += 1
        self.seen.append(chunk)


class HeldRecords(MemoryStore):
    """The watcher's record lookup waits at `held` until the boundary's own queue read has
    returned: exactly the interleaving of the race."""

    def __init__(self) -> None:
        super().__init__()
        self.looking_up = asyncio.Event()
        self.held = asyncio.Event()

    async def steering_record(self, chat_id: str, steering_id: str) -> bytes | None:
        self.looking_up.set()
        await self.held.wait()
        return await super().steering_record(chat_id, steering_id)

    async def read_steering(
        self, chat_id: str, generation_id: str, after: int, *, wait: float = 0.0
    ) -> list[tuple[int, bytes]]:
        items = await super().read_steering(chat_id, generation_id, after, wait=wait)
        if self.looking_up.is_set():  # the boundary's read, while the watcher is held
            self.held.set()
        return items


async def test_steering_inbox_boundary_delivers_a_message_the_watcher_is_still_accepting() -> None:
    store = HeldRecords()
    emitted = Emitted()
    inbox = SteeringInbox(store, "c", "g", emitted, wait_seconds=5)
    watcher = asyncio.create_task(inbox.watch())
    try:
        request = SteeringRequest(
            id="s1", parts=parse_steering_parts([{"type": "text", "text": "hi"}])
        )
        assert await store.push_steering("c", "g", request.encode()) == 1
        await store.looking_up.wait()
        assert await inbox.deliver(1)
        delivered = [c for c in emitted.seen if c.type == "steering-message"]
        assert [c.id for c in delivered] == ["s1"]
        assert not await inbox.deliver(2)  # once only
    finally:
        watcher.cancel()
