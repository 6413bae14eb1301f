"""Redis misbehaves under two bridges mid-answer: paused past the lease, connections cut,
restarted with its data or without, and a step that stays silent for over a minute."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.bridge_server import chat_body
from tests.chaos.checks import (
    assert_delivered_once_in_order,
    assert_stored_matches,
    demo_reply,
    stored_answer,
    texts,
    tool_parts,
)
from tests.chaos.conftest import LEASE_SECONDS, Cluster, ClusterFactory
from tests.chaos.readers import Delivery, Progress, follow_poll, follow_sse
from tests.chaos.scenario import (
    BUDGET,
    LONG,
    MID_TEXT,
    answer_hurt_mid_text,
    assert_whole_answer,
    blocking,
    chat_id_for,
    holds_text,
)

pytestmark = [pytest.mark.redis, pytest.mark.chaos]

FAULTS = 4
"""Network faults between the bridges and Redis during one answer."""
FAULT_EVERY = 30
"""Text deltas between two of them."""


def _hold(seconds: float) -> None:
    # The fault's duration, not a synchronisation: Redis stays paused this long.
    time.sleep(seconds)


async def test_chaos_redis_paused_past_the_lease(make_cluster: ClusterFactory) -> None:
    """Scenario 4: SIGSTOP redis-server for twice the lease mid-answer, then SIGCONT. The
    lease lapsed meanwhile: the producer must stop writing (fenced) and one process takes
    over; exactly one producer goes on, one answer is stored, every reader completes."""
    cluster = make_cluster()
    b = cluster.bridges[1]
    chat_id = chat_id_for("pause")

    def pause_redis() -> None:
        cluster.redis.pause()
        try:
            _hold(2 * LEASE_SECONDS)
        finally:
            cluster.redis.resume()

    deliveries = await answer_hurt_mid_text(cluster.urls, chat_id, blocking(pause_redis))
    # The lease lapsed: the producer was fenced and exactly one takeover re-ran the step.
    assert_whole_answer(b.url, chat_id, deliveries, takeovers=1)
    history = stored_answer(b.url, chat_id)
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"], history


async def test_chaos_redis_connections_cut_mid_answer(make_cluster: ClusterFactory) -> None:
    """Scenario 5: a TCP proxy between the bridges and Redis, mid-answer, twice drops the
    reply to an append Redis applied (then resets that connection) and twice resets every
    connection at once. Appends are retried (they name their offset, so a retry never
    duplicates) and the answer completes with no error."""
    cluster = make_cluster(via_proxy=True)
    assert cluster.proxy is not None
    proxy = cluster.proxy
    b = cluster.bridges[1]
    chat_id = chat_id_for("cut")

    def lose_an_append_reply() -> None:
        proxy.lose_reply(b'"type":"text-delta"')

    def cut_everything() -> None:
        assert proxy.cut_all() > 0, "no connection to cut"

    faults = [lose_an_append_reply, cut_everything] * (FAULTS // 2)

    async def strike_repeatedly(poster: Progress) -> None:
        for number, fault in enumerate(faults):
            due = MID_TEXT + FAULT_EVERY * number
            await poster.until(f"{due} text deltas", holds_text(due))
            await asyncio.to_thread(fault)

    deliveries = await answer_hurt_mid_text(cluster.urls, chat_id, strike_repeatedly)
    assert proxy.lost_replies >= FAULTS // 2 and proxy.cuts > 0, (proxy.lost_replies, proxy.cuts)
    # The producer itself carried on (appends retried): no step was re-run by a takeover.
    assert_whole_answer(b.url, chat_id, deliveries, takeovers=0)


def _restart_redis(cluster: Cluster, *, keep_data: bool) -> None:
    cluster.redis.shutdown(save=keep_data)
    cluster.redis.start()


def _assert_finished_or_clear_error(delivery: Delivery) -> None:
    assert_delivered_once_in_order(delivery, errors_allowed=True)
    _, text = demo_reply(LONG)
    errors = [chunk for chunk in delivery.chunks if chunk["type"] == "error"]
    if delivery.unlogged_end is not None:
        errors.append(delivery.unlogged_end)
    if errors:
        assert all(str(chunk.get("errorText", "")).strip() for chunk in errors), errors
    else:
        assert texts(delivery.message()) == [text], delivery.summary()


async def test_chaos_redis_restarted_with_its_data(make_cluster: ClusterFactory) -> None:
    """Scenario 6a: Redis shuts down (SHUTDOWN SAVE) and comes back on the same address
    with its data mid-answer: the answer finishes, or ends with a clear error chunk; no
    reader hangs, nothing is delivered twice, and the stored message is what they saw."""
    cluster = make_cluster()
    b = cluster.bridges[1]
    chat_id = chat_id_for("restart")
    deliveries = await answer_hurt_mid_text(
        cluster.urls, chat_id, blocking(lambda: _restart_redis(cluster, keep_data=True))
    )
    for delivery in deliveries:
        _assert_finished_or_clear_error(delivery)
    assert_stored_matches(stored_answer(b.url, chat_id), *deliveries)


async def test_chaos_redis_restarted_without_its_data(make_cluster: ClusterFactory) -> None:
    """Scenario 6b: Redis comes back empty mid-answer (SHUTDOWN NOSAVE). The log is gone:
    every streaming reader's response ends with a clear error chunk (a long-poller gets
    its protocol's error answer, 404/410), within its budget, nothing delivered twice;
    the chat still answers its history."""
    cluster = make_cluster()
    b = cluster.bridges[1]
    chat_id = chat_id_for("amnesia")
    deliveries = await answer_hurt_mid_text(
        cluster.urls, chat_id, blocking(lambda: _restart_redis(cluster, keep_data=False))
    )
    for delivery in deliveries:
        if delivery.name.startswith("poller") and delivery.gone is not None:
            offsets = delivery.offsets
            assert offsets == list(range(len(offsets))), delivery.summary()
            assert delivery.stalls == 0, delivery.summary()
        else:
            _assert_finished_or_clear_error(delivery)
    stored_answer(b.url, chat_id)  # answers, whatever is left


@pytest.mark.slow
async def test_chaos_silent_step_of_a_minute_holds(make_cluster: ClusterFactory) -> None:
    """Scenario 7: a tool that sleeps 61 s: nothing is written meanwhile, the lease is
    renewed and readers get keep-alives over quiet Redis connections (past every default
    socket timeout); the answer completes and nobody takes the generation for dead."""
    cluster = make_cluster()
    a, b = cluster.bridges
    chat_id = chat_id_for("silence")
    budget = BUDGET + 61
    progress = Progress()
    async with asyncio.TaskGroup() as group:
        poster = group.create_task(
            follow_sse(
                "poster",
                [a.url],
                chat_id,
                post_body=chat_body(chat_id, "Please use chaos_silence."),
                budget=budget,
                progress=progress,
            )
        )
        await progress.until("the first chunks", lambda delivery: bool(delivery.entries))
        watcher = group.create_task(follow_sse("SSE reader on b", [b.url], chat_id, budget=budget))
        poller = group.create_task(follow_poll("poller on b", [b.url], chat_id, budget=budget))
    deliveries = [poster.result(), watcher.result(), poller.result()]
    assert cluster.tool_events("chaos_silence") == ["start", "end"]
    for delivery in deliveries:
        assert_delivered_once_in_order(delivery)
        assert delivery.connections == 1 or delivery.name.startswith("poller"), delivery.summary()
        (part,) = tool_parts(delivery.message())
        assert part["state"] == "output-available", part
    assert_stored_matches(stored_answer(b.url, chat_id), *deliveries)
