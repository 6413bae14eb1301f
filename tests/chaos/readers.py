"""Readers as a resuming client runs them, recording every chunk they were given.

An SSE reader follows one generation: when its connection drops (the process died, the
server ended the response without a closing chunk at a hand-over) it reconnects with
`Last-Event-ID` to the next bridge in its list. A long-poll reader does the same with its
`cursor`. Each records every (offset, chunk) in arrival order across its connections, so
a test can check that the whole answer arrived, in order, exactly once.

Every read is bounded: a connection silent for `SILENCE_SECONDS` (the bridges send a
keep-alive every second) counts as a stall, and the whole follow has a time budget; both
are failures, never waited out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from protocol.assembler import MessageAssembler
from protocol.sse import SSEParser

GENERATION_HEADER = "x-bridge-generation-id"

TERMINAL = frozenset({"finish", "error", "abort"})
"""Chunk types that close a generation's log."""
SILENCE_SECONDS = 8.0
"""Longest quiet stretch on a live connection (keep-alives come every second)."""
MAX_CONNECTIONS = 100
MAX_POLLS = 2000
FINAL_STATUSES = frozenset({204, 404, 410})
RECONNECT_PAUSE = 0.2
"""A client's back-off between attempts, growing by this much per failed attempt in a row
up to a second (a policy of the client, not a synchronisation)."""


def _back_off(failures_in_a_row: int) -> float:
    return min(RECONNECT_PAUSE * failures_in_a_row, 1.0)


@dataclass
class Delivery:
    """What one reader received."""

    name: str
    entries: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    connections: int = 0
    drops: list[str] = field(default_factory=list)
    """Why each connection but the last ended early (reset, status, [DONE] without end)."""
    stalls: int = 0
    done: bool = False
    generation_id: str | None = None
    unlogged_end: dict[str, Any] | None = None
    """A closing chunk sent without an SSE id: not in the log (the bridge could not write
    it there, e.g. the log itself is gone), so never replayed, only seen live."""
    gone: str | None = None
    """Set when a bridge answered that there is nothing (more) to read: 204 (no
    generation to resume), 404/410 (the generation is gone). A client takes it as final
    and loads the chat's messages instead."""

    @property
    def offsets(self) -> list[int]:
        return [offset for offset, _ in self.entries]

    @property
    def types(self) -> list[str]:
        return [str(chunk["type"]) for _, chunk in self.entries]

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [chunk for _, chunk in self.entries]

    def text_deltas(self) -> int:
        return sum(1 for _, chunk in self.entries if chunk["type"] == "text-delta")

    def ended(self) -> bool:
        if self.unlogged_end is not None:
            return True
        return bool(self.entries) and self.entries[-1][1]["type"] in TERMINAL

    def message(self) -> dict[str, Any]:
        """The assistant message this reader's client would show (reset-step applied)."""
        assembler = MessageAssembler(stop_on_error=False)
        for _, chunk in self.entries:
            assembler.apply_json(chunk)
        return assembler.to_dict()

    def summary(self) -> str:
        resets = self.types.count("reset-step")
        return (
            f"{self.name}: {len(self.entries)} chunks, offsets "
            f"{self.offsets[:3]}..{self.offsets[-3:]}, {self.connections} connections, "
            f"drops {self.drops}, stalls {self.stalls}, {resets} reset-step, "
            f"gone {self.gone}, unlogged end {self.unlogged_end}, last types {self.types[-4:]}"
        )


class _Gone(Exception):
    """The bridge says the generation is gone for good."""


class Progress:
    """Lets a test wait until a reader got this far (N text deltas, a chunk type)."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._delivery: Delivery | None = None

    async def notify(self, delivery: Delivery) -> None:
        self._delivery = delivery
        async with self._changed:
            self._changed.notify_all()

    async def until(self, what: str, reached: Any, seconds: float = 60.0) -> None:
        """Wait until `reached(delivery)` holds; AssertionError after `seconds`."""

        def check() -> bool:
            return self._delivery is not None and bool(reached(self._delivery))

        try:
            async with asyncio.timeout(seconds), self._changed:
                await self._changed.wait_for(check)
        except TimeoutError:
            seen = self._delivery.summary() if self._delivery else "nothing"
            raise AssertionError(f"reader never reached {what} in {seconds} s: {seen}") from None


async def _record(
    delivery: Delivery, offset: int, chunk: dict[str, Any], progress: Progress | None
) -> None:
    delivery.entries.append((offset, chunk))
    if progress is not None:
        await progress.notify(delivery)


async def follow_sse(
    name: str,
    urls: Sequence[str],
    chat_id: str,
    *,
    budget: float,
    post_body: dict[str, Any] | None = None,
    generation_id: str | None = None,
    progress: Progress | None = None,
) -> Delivery:
    """Read a generation to its closing chunk: first the POST that starts it (with
    `post_body`) or a resume GET, then resumes from the last offset held, trying `urls` in
    turn. Fails (AssertionError) past `budget` seconds."""
    delivery = Delivery(name, generation_id=generation_id)
    try:
        async with asyncio.timeout(budget):
            await _follow_sse(delivery, urls, chat_id, post_body, generation_id, progress)
    except TimeoutError:
        summary = delivery.summary()
        raise AssertionError(f"reader hung past its {budget} s budget: {summary}") from None
    return delivery


async def _follow_sse(
    delivery: Delivery,
    urls: Sequence[str],
    chat_id: str,
    post_body: dict[str, Any] | None,
    generation_id: str | None,
    progress: Progress | None,
) -> None:
    timeout = httpx.Timeout(10.0, read=SILENCE_SECONDS)
    at = 0  # index in `urls` of the bridge to try next
    failures = 0
    async with httpx.AsyncClient(timeout=timeout) as client:
        while delivery.connections < MAX_CONNECTIONS:
            delivery.connections += 1
            held = len(delivery.entries)
            url = urls[at % len(urls)]
            if post_body is not None and delivery.connections == 1:
                request = client.build_request("POST", f"{url}/api/chat", json=post_body)
            else:
                # Always a cursor (-1 at first): the log's own chunks, one per offset (a
                # resume without any cursor gets a compacted replay, checked elsewhere).
                held_offset = delivery.entries[-1][0] if delivery.entries else -1
                headers = {"last-event-id": str(held_offset)}
                params = {"generation": generation_id} if generation_id else {}
                request = client.build_request(
                    "GET", f"{url}/api/chat/{chat_id}/stream", headers=headers, params=params
                )
            try:
                reason = await _one_connection(client, request, delivery, progress)
            except httpx.ReadTimeout:
                delivery.stalls += 1
                reason = f"silent for {SILENCE_SECONDS} s on {url}"
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__} on {url}"
            except _Gone as gone:
                delivery.gone = str(gone)
                return
            generation_id = delivery.generation_id
            if reason is None:
                delivery.done = True
                return
            delivery.drops.append(reason)
            at += 1
            # A connection that brought nothing new makes the next attempt wait longer.
            failures = failures + 1 if len(delivery.entries) == held else 1
            await asyncio.sleep(_back_off(failures))
    raise AssertionError(
        f"reader gave up after {MAX_CONNECTIONS} connections: {delivery.summary()}"
    )


async def _one_connection(
    client: httpx.AsyncClient,
    request: httpx.Request,
    delivery: Delivery,
    progress: Progress | None,
) -> str | None:
    """Read one response: None once the closing chunk and `[DONE]` came, else why it
    ended early. The generation it serves is pinned for the resumes that follow."""
    where = f"{request.url.host}:{request.url.port}"
    response = await client.send(request, stream=True)
    try:
        if response.status_code != 200:
            body = (await response.aread())[:200]
            reason = f"status {response.status_code} {body!r} from {where}"
            if response.status_code in FINAL_STATUSES:
                raise _Gone(reason)
            return reason
        delivery.generation_id = response.headers.get(GENERATION_HEADER, delivery.generation_id)
        parser = SSEParser()
        async for piece in response.aiter_raw():
            for event in parser.feed(piece):
                if event.data is None:
                    continue
                if event.data == "[DONE]":
                    return (
                        None if delivery.ended() else f"[DONE] before a closing chunk from {where}"
                    )
                chunk = orjson.loads(event.data)
                if event.id is None:
                    assert chunk["type"] in TERMINAL, f"an SSE event without id: {event.data[:99]}"
                    delivery.unlogged_end = chunk
                    continue
                await _record(delivery, int(event.id), chunk, progress)
        return f"the response from {where} ended without [DONE]"
    finally:
        await response.aclose()


async def follow_poll(
    name: str,
    urls: Sequence[str],
    chat_id: str,
    *,
    budget: float,
    generation_id: str | None = None,
    wait: float = 1.0,
    progress: Progress | None = None,
) -> Delivery:
    """Long-poll a chat's generation to its end, moving to the next bridge on a failure."""
    delivery = Delivery(name)
    try:
        async with asyncio.timeout(budget):
            await _follow_poll(delivery, urls, chat_id, generation_id, wait, progress)
    except TimeoutError:
        raise AssertionError(
            f"poller hung past its {budget} s budget: {delivery.summary()}"
        ) from None
    return delivery


async def _follow_poll(
    delivery: Delivery,
    urls: Sequence[str],
    chat_id: str,
    generation_id: str | None,
    wait: float,
    progress: Progress | None,
) -> None:
    timeout = httpx.Timeout(10.0, read=wait + SILENCE_SECONDS)
    at = 0
    cursor = -1
    polls = 0
    async with httpx.AsyncClient(timeout=timeout) as client:
        while polls < MAX_POLLS:
            polls += 1
            url = urls[at % len(urls)]
            params: dict[str, str | float | int] = {"cursor": cursor, "wait": wait}
            if generation_id is not None:
                params["generation"] = generation_id
            try:
                response = await client.get(f"{url}/api/chat/{chat_id}/poll", params=params)
            except httpx.ReadTimeout:
                delivery.stalls += 1
                delivery.drops.append(f"poll silent on {url}")
                at += 1
                continue
            except httpx.TransportError as exc:
                delivery.drops.append(f"{type(exc).__name__} on {url}")
                at += 1
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            delivery.connections += 1
            if response.status_code in FINAL_STATUSES:
                delivery.gone = f"status {response.status_code} from {url}: {response.text[:200]}"
                return
            if response.status_code != 200:
                delivery.drops.append(f"status {response.status_code} from {url}")
                at += 1
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            page = response.json()
            if page["generationId"] is None:
                # Nothing to read yet (or any more): the generation ended out of the grace
                # period, or never began; polled again until `budget`.
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            generation_id = delivery.generation_id = page["generationId"]
            for item in page["chunks"]:
                await _record(delivery, int(item["offset"]), item["chunk"], progress)
            cursor = page["cursor"]
            if page["done"]:
                delivery.done = True
                return
    raise AssertionError(f"poller gave up after {MAX_POLLS} polls: {delivery.summary()}")
