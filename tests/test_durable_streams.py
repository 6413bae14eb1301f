"""The Durable Streams read API (`/api/ds/...`): a generation's log and a chat's live tail read
by the protocol's rules (offsets, catch-up, long-poll, SSE, `Stream-Next-Offset`,
`Stream-Up-To-Date`, `Stream-Cursor`, ETag, retention, read-only) and by the PyPI client
`durable-streams`, with the same ownership checks as every read."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import orjson
import pytest

from tests.bridge_server import BridgeFactory, chat_body, openai_settings, sse_events
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Hang, LiveServer, Text


@pytest.fixture
def bridge(bridge_factory: BridgeFactory, openai_fake: OpenAIFake) -> LiveServer:
    return bridge_factory(**openai_settings(openai_fake, bridge_max_poll_wait_seconds=5))


def answer(server: LiveServer, chat_id: str, text: str = "hi") -> str:
    response = httpx.post(f"{server.url}/api/chat", json=chat_body(chat_id, text), timeout=30)
    assert response.status_code == 200, response.text
    assert sse_events(response)[-1][1] == "[DONE]"
    return str(response.headers["x-bridge-generation-id"])


def ds_url(server: LiveServer, chat_id: str, generation_id: str | None = None) -> str:
    if generation_id is None:
        return f"{server.url}/api/ds/chat/{chat_id}/live"
    return f"{server.url}/api/ds/chat/{chat_id}/generation/{generation_id}"


def types_of(items: list[dict[str, Any]]) -> list[str]:
    return [str(item["type"]) for item in items]


def test_durable_generation_catch_up_pages_by_offset(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text(["Hello", " there"])])
    generation = answer(bridge, "ds-catch-up")
    url = ds_url(bridge, "ds-catch-up", generation)

    whole = httpx.get(url, params={"offset": "-1"})
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "application/json"
    assert whole.headers["stream-up-to-date"] == "true"
    assert whole.headers["stream-closed"] == "true"
    assert whole.headers["cache-control"] == "no-store"
    items = whole.json()
    assert types_of(items)[0] == "start"
    assert types_of(items)[-1] == "finish"
    tail = whole.headers["stream-next-offset"]
    assert tail not in ("-1", "now")

    # No offset = from the start; the same bytes.
    assert httpx.get(url).content == whole.content

    # From the middle: the rest, and the same next offset.
    middle = httpx.get(url, params={"offset": f"{3:016d}"})
    assert middle.json() == items[3:]
    assert middle.headers["stream-next-offset"] == tail
    # Offsets sort as positions do.
    assert f"{3:016d}" < tail

    # At the tail: 200, an empty array, the offset echoed.
    at_tail = httpx.get(url, params={"offset": tail})
    assert at_tail.status_code == 200
    assert at_tail.json() == []
    assert at_tail.headers["stream-next-offset"] == tail

    # ETag: a repeat read with If-None-Match is 304 without a body.
    again = httpx.get(
        url, params={"offset": "-1"}, headers={"if-none-match": whole.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""

    # `now`: nothing, the tail offset, up to date.
    now = httpx.get(url, params={"offset": "now"})
    assert now.json() == []
    assert now.headers["stream-next-offset"] == tail
    assert now.headers["stream-up-to-date"] == "true"

    head = httpx.head(url)
    assert head.status_code == 200
    assert head.headers["stream-next-offset"] == tail
    assert head.headers["cache-control"] == "no-store"


def test_durable_generation_long_poll_waits_for_the_next_chunk(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text("Partial"), Hang()])
    started = httpx.post(
        f"{bridge.url}/api/chat/poll", json=chat_body("ds-long-poll", "go"), timeout=30
    )
    assert started.status_code == 200, started.text
    generation = started.json()["generationId"]
    url = ds_url(bridge, "ds-long-poll", generation)

    first = httpx.get(url, params={"offset": "-1"})
    tail = first.headers["stream-next-offset"]
    assert "stream-closed" not in first.headers

    # A long-poll at the tail is answered by the stop's chunks (the log moves on).
    result: dict[str, httpx.Response] = {}
    polling = threading.Thread(
        target=lambda: result.update(
            poll=httpx.get(url, params={"offset": tail, "live": "long-poll"}, timeout=30)
        )
    )
    polling.start()
    stopped = httpx.post(
        f"{bridge.url}/api/chat/ds-long-poll/stop",
        headers={"content-type": "application/json"},
        content=b"{}",
        timeout=30,
    )
    assert stopped.status_code == 200, stopped.text
    polling.join(30)
    poll = result["poll"]
    assert poll.status_code == 200
    assert "abort" in types_of(poll.json())
    assert poll.headers["stream-cursor"].isdigit()
    assert poll.headers["stream-next-offset"] > tail

    # At the end of a closed log a long-poll answers at once: closed, nothing more.
    end = poll.headers["stream-next-offset"]
    closed = httpx.get(url, params={"offset": end, "live": "long-poll"}, timeout=30)
    assert closed.status_code == 200
    assert closed.json() == []
    assert closed.headers["stream-closed"] == "true"


def test_durable_long_poll_times_out_with_204_and_a_cursor(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(**openai_settings(openai_fake, bridge_max_poll_wait_seconds=0.3))
    openai_fake.enqueue([Text("Hi.")])
    answer(server, "ds-timeout")
    url = ds_url(server, "ds-timeout")
    caught_up = httpx.get(url, params={"offset": "now"})
    offset = caught_up.headers["stream-next-offset"]
    poll = httpx.get(url, params={"offset": offset, "live": "long-poll"}, timeout=30)
    assert poll.status_code == 204
    assert poll.headers["stream-up-to-date"] == "true"
    assert poll.headers["stream-next-offset"] == offset
    cursor = poll.headers["stream-cursor"]
    # A cursor echoed back is answered with a later one (no cache loop).
    again = httpx.get(
        url, params={"offset": offset, "live": "long-poll", "cursor": cursor}, timeout=30
    )
    assert again.status_code == 204
    assert int(again.headers["stream-cursor"]) > int(cursor)


def test_durable_generation_sse_sends_data_and_control_events(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text(["One", " two"])])
    generation = answer(bridge, "ds-sse")
    response = httpx.get(
        ds_url(bridge, "ds-sse", generation), params={"offset": "-1", "live": "sse"}, timeout=30
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b]
    kinds = [b.split("\n", 1)[0] for b in blocks]
    assert kinds == ["event: data", "event: control"]
    data = orjson.loads(blocks[0].split("data: ", 1)[1])
    assert types_of(data)[0] == "start" and types_of(data)[-1] == "finish"
    control = orjson.loads(blocks[1].split("data: ", 1)[1])
    assert control["streamClosed"] is True
    assert control["upToDate"] is True
    assert control["streamNextOffset"] == f"{len(data):016d}"
    assert control["streamCursor"].isdigit()


def test_durable_chat_stream_follows_turns_in_order(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    openai_fake.enqueue([Text("First answer.")])
    answer(bridge, "ds-chat", "one")
    url = ds_url(bridge, "ds-chat")
    first = httpx.get(url, params={"offset": "-1"})
    assert first.status_code == 200
    items = first.json()
    assert types_of(items)[0] == "data-user-message"
    assert items[0]["data"]["message"]["parts"][0]["text"] == "one"
    assert types_of(items)[-1] == "finish"
    offset = first.headers["stream-next-offset"]
    assert "stream-closed" not in first.headers  # a chat's stream never closes

    # A long-poll from there gets the next turn's user message at its start.
    result: dict[str, httpx.Response] = {}
    polling = threading.Thread(
        target=lambda: result.update(
            poll=httpx.get(url, params={"offset": offset, "live": "long-poll"}, timeout=30)
        )
    )
    polling.start()
    openai_fake.enqueue([Text("Second answer.")])
    answer(bridge, "ds-chat", "two")
    polling.join(30)
    poll = result["poll"]
    assert poll.status_code == 200
    got = poll.json()
    assert got[0]["type"] == "data-user-message"
    assert got[0]["data"]["message"]["parts"][0]["text"] == "two"
    assert poll.headers["stream-next-offset"] > offset

    # Catch-up from the poll's offset to the end: the rest of the second turn, no repeat.
    rest = httpx.get(url, params={"offset": poll.headers["stream-next-offset"]}).json()
    whole = got + rest
    assert types_of(whole)[-1] == "finish"
    assert types_of(whole).count("start") == 1
    texts = "".join(str(c.get("delta", "")) for c in whole)
    assert texts == "Second answer."


def test_durable_reads_check_the_owner_and_refuse_writes(
    bridge_factory: BridgeFactory, openai_fake: OpenAIFake
) -> None:
    server = bridge_factory(
        **openai_settings(openai_fake, bridge_auth_tokens=["tok-a:alice", "tok-b:bob"])
    )
    alice = {"authorization": "Bearer tok-a"}
    bob = {"authorization": "Bearer tok-b"}
    openai_fake.enqueue([Text("Private.")])
    response = httpx.post(
        f"{server.url}/api/chat", json=chat_body("ds-owned", "secret"), headers=alice, timeout=30
    )
    generation = response.headers["x-bridge-generation-id"]
    url = ds_url(server, "ds-owned", generation)
    assert httpx.get(url, headers=alice).status_code == 200
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=bob).status_code == 404
    # Someone else's chat stream reads as an unused id's: empty, no oracle.
    theirs = httpx.get(ds_url(server, "ds-owned"), headers=bob)
    unused = httpx.get(ds_url(server, "ds-never-used"), headers=bob)
    assert (theirs.status_code, theirs.content) == (unused.status_code, unused.content)
    assert (theirs.status_code, theirs.content) == (200, b"[]")
    assert httpx.head(url, headers=bob).status_code == 404
    for method in ("PUT", "POST", "DELETE"):
        refused = httpx.request(method, url, headers=alice)
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD"


def test_durable_bad_offsets_and_unknown_logs(bridge: LiveServer, openai_fake: OpenAIFake) -> None:
    openai_fake.enqueue([Text("Hi.")])
    generation = answer(bridge, "ds-bad")
    url = ds_url(bridge, "ds-bad", generation)
    for bad in ("12", "abc", "0000000000000001x", "-2"):
        response = httpx.get(url, params={"offset": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "bad_request"
    assert httpx.get(url, params={"live": "long-poll"}).status_code == 400
    # In SSE mode too, and for the chat's stream: an answer, not a stream cut after its
    # headers (the offset was once read only by the stream's body).
    for stream in (url, ds_url(bridge, "ds-bad")):
        for bad in ("abc", "-2"):
            response = httpx.get(stream, params={"offset": bad, "live": "sse"}, timeout=10)
            assert response.status_code == 400, (stream, bad)
            assert response.json()["error"]["code"] == "bad_request"
    assert httpx.get(ds_url(bridge, "ds-bad", "gen_unknown")).status_code == 404
    # An offset into a log that is gone: 410 (past retention).
    gone = httpx.get(ds_url(bridge, "ds-bad", "gen_unknown"), params={"offset": f"{5:016d}"})
    assert gone.status_code == 410


def test_durable_streams_python_client_reads_a_generation_and_a_chat(
    bridge: LiveServer, openai_fake: OpenAIFake
) -> None:
    durable_streams = pytest.importorskip("durable_streams")
    openai_fake.enqueue([Text(["Read", " by", " the", " client"])])
    generation = answer(bridge, "ds-client")
    with durable_streams.stream(ds_url(bridge, "ds-client", generation), live=False) as res:
        items = res.read_json()
        offset = res.offset
    assert types_of(items)[0] == "start"
    assert "".join(str(c.get("delta", "")) for c in items) == "Read by the client"
    assert offset == f"{len(items):016d}"

    # Live over long-poll and over SSE: the client follows the chat until the answer ends.
    for mode in ("long-poll", "sse"):
        seen: list[dict[str, Any]] = []
        with durable_streams.stream(
            ds_url(bridge, "ds-client"), offset="-1", live=mode, timeout=30
        ) as res:
            for item in res.iter_json():
                seen.append(item)
                if item["type"] == "finish":
                    break
        assert types_of(seen)[0] == "data-user-message", mode
        assert "".join(str(c.get("delta", "")) for c in seen) == "Read by the client", mode
