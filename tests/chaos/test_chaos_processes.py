"""A bridge process dies (SIGKILL) or is told to go (SIGTERM) mid-answer, with two bridges
on one Redis: the other one carries the answer to its end, for every reader, once."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import httpx
import pytest

from tests.bridge_server import chat_body, sse_events
from tests.chaos.checks import (
    assert_delivered_once_in_order,
    assert_stored_matches,
    stored_answer,
    texts,
    tool_parts,
)
from tests.chaos.conftest import ClusterFactory
from tests.chaos.readers import Delivery, Progress, follow_sse
from tests.chaos.scenario import (
    BUDGET,
    answer_hurt_mid_text,
    assert_whole_answer,
    blocking,
    chat_id_for,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.chaos]

EXITED_ON_SIGTERM = (0, -signal.SIGTERM)
"""uvicorn re-raises the signal it caught once it has shut down: -15 is a clean exit."""


async def test_chaos_sigkill_mid_text_is_taken_over(make_cluster: ClusterFactory) -> None:
    """Scenario 1: SIGKILL of the producing bridge mid-text; the other bridge takes the
    generation over (re-running the interrupted step) and every reader gets the whole
    answer once, with no error."""
    cluster = make_cluster()
    a, b = cluster.bridges
    chat_id = chat_id_for("kill")
    deliveries = await answer_hurt_mid_text(cluster.urls, chat_id, blocking(a.kill))
    assert_whole_answer(b.url, chat_id, deliveries, takeovers=1)


async def test_chaos_sigterm_mid_text_drains_to_the_end(make_cluster: ClusterFactory) -> None:
    """Scenario 2a: SIGTERM mid-text with a drain period longer than the answer: the
    process refuses new generations (503 + Retry-After), finishes the running one for its
    readers, then exits on its own."""
    cluster = make_cluster(BRIDGE_DRAIN_SECONDS="30")
    a, b = cluster.bridges
    chat_id = chat_id_for("drain")
    refused: list[httpx.Response] = []

    def terminate_then_post() -> None:
        a.terminate()
        # The listener may be closed already: then a load balancer retries elsewhere.
        with contextlib.suppress(httpx.TransportError):
            late = chat_body(chat_id_for("late"), "hi")
            refused.append(httpx.post(f"{a.url}/api/chat", json=late, timeout=60))

    deliveries = await answer_hurt_mid_text(cluster.urls, chat_id, blocking(terminate_then_post))
    assert_whole_answer(b.url, chat_id, deliveries, takeovers=0)
    poster = deliveries[0]
    # Drained, not handed over: the answer ended where it began, for its reader there too.
    assert poster.connections == 1, poster.summary()
    assert await asyncio.to_thread(a.wait_exit) in EXITED_ON_SIGTERM, a.output()[-3000:]
    for response in refused:
        if response.status_code == 200:  # it came before the signal was seen: served whole
            assert sse_events(response)[-2][1].startswith('{"type":"finish"'), response.text
        else:
            assert response.status_code == 503, response.text
            assert "retry-after" in response.headers


async def test_chaos_sigterm_mid_text_hands_over(make_cluster: ClusterFactory) -> None:
    """Scenario 2b: SIGTERM mid-text with no drain time left: the process hands the
    generation over at once (flushed, lease released), ends its readers, exits; the other
    bridge continues it and every reader gets the whole answer once."""
    cluster = make_cluster(BRIDGE_DRAIN_SECONDS="0")
    a, b = cluster.bridges
    chat_id = chat_id_for("handover")
    deliveries = await answer_hurt_mid_text(cluster.urls, chat_id, blocking(a.terminate))
    assert_whole_answer(b.url, chat_id, deliveries, takeovers=1)
    assert await asyncio.to_thread(a.wait_exit) in EXITED_ON_SIGTERM, a.output()[-3000:]


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
async def test_chaos_signal_while_a_tool_runs(make_cluster: ClusterFactory, how: str) -> None:
    """Scenario 3a: SIGKILL (or SIGTERM with no drain time) while a server tool runs. The
    other bridge takes over without ever starting the tool again (a tool cut short gets a
    result: an "interrupted" error, as it is not idempotent) and the answer goes on to its
    end."""
    cluster = make_cluster(BRIDGE_DRAIN_SECONDS="0")
    a, b = cluster.bridges
    chat_id = chat_id_for("tool")
    progress = Progress()

    def tool_started(delivery: Delivery) -> bool:
        return any(chunk.get("type") == "data-tool-run" for chunk in delivery.chunks)

    async with asyncio.TaskGroup() as group:
        poster = group.create_task(
            follow_sse(
                "poster",
                cluster.urls,
                chat_id,
                post_body=chat_body(chat_id, "Please use chaos_nap now."),
                budget=BUDGET,
                progress=progress,
            )
        )
        await progress.until("the tool's run marker", tool_started)
        watcher = group.create_task(follow_sse("SSE reader on b", [b.url], chat_id, budget=BUDGET))
        await asyncio.to_thread(
            wait_until, lambda: "start" in cluster.tool_events("chaos_nap"), 30, "chaos_nap runs"
        )
        await asyncio.to_thread(a.kill if how == "sigkill" else a.terminate)
    deliveries = [poster.result(), watcher.result()]

    runs = cluster.tool_events("chaos_nap")
    assert runs.count("start") == 1, f"the tool ran again after the {how}: {runs}"
    for delivery in deliveries:
        assert_delivered_once_in_order(delivery)
        assert delivery.types[-1] == "finish", delivery.summary()
        message = delivery.message()
        (part,) = tool_parts(message)
        print(f"{delivery.name}: tool runs {runs}, tool part {part}")
        assert part["state"] in ("output-error", "output-available"), part
        assert texts(message), f"no answer after the tool: {message}"
    assert_stored_matches(stored_answer(b.url, chat_id), *deliveries)


async def test_chaos_sigkill_while_an_approval_is_pending(make_cluster: ClusterFactory) -> None:
    """Scenario 3b: the answer waits for an approval; the bridge that asked is killed; the
    user approves through the other bridge, which runs the tool once and answers."""
    cluster = make_cluster()
    a, b = cluster.bridges
    chat_id = chat_id_for("approve")
    asked = await follow_sse(
        "asker",
        [a.url],
        chat_id,
        post_body=chat_body(chat_id, "Please use chaos_guarded."),
        budget=BUDGET,
    )
    assert_delivered_once_in_order(asked)
    assert "tool-approval-request" in asked.types, asked.summary()
    await asyncio.to_thread(a.kill)

    history = stored_answer(b.url, chat_id)["messages"]
    (part,) = tool_parts(history[-1])
    assert part["state"] == "approval-requested", part
    part["state"] = "approval-responded"
    part["approval"] = {**part["approval"], "approved": True}
    body = {
        "id": chat_id,
        "messages": history,
        "trigger": "submit-message",
        "messageId": history[-1]["id"],
    }
    answer = await follow_sse("approver on b", [b.url], chat_id, post_body=body, budget=BUDGET)
    # The POST's answer leaves out the prelude its sender holds; a reader from offset 0
    # gets the whole log.
    resumed = await follow_sse(
        "late reader on b", [b.url], chat_id, generation_id=answer.generation_id, budget=BUDGET
    )

    assert cluster.tool_events("chaos_guarded") == ["start", "end"]
    assert_delivered_once_in_order(resumed)
    assert answer.done and answer.types[-1] == "finish", answer.summary()
    assert resumed.types[-1] == "finish", resumed.summary()
    message = resumed.message()
    (part,) = tool_parts(message)
    assert part["state"] == "output-available", part
    assert part["output"] == "guarded action done"
    assert_stored_matches(stored_answer(b.url, chat_id), resumed)
