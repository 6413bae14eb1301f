"""ResilientChatTransport (frontend-demo/transport) driving the real `Chat` of @ai-sdk/react
behind a misbehaving proxy: it completes on each tier, resumes from its offset after a cut
connection (no duplicate, no gap), and stop and approvals work on every tier."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bridge_server import BridgeFactory
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Hang, LiveServer, Text
from tests.node_harness import NodeSetupError, node_binary
from tests.support.proxy import FaultProxy

pytestmark = pytest.mark.node

PACKAGE = Path(__file__).resolve().parents[1] / "frontend-demo" / "transport"
TIERS = ["websocket", "sse", "poll"]
# What each tier's network does to the others: the proxy in front of the bridge.
NETWORKS: dict[str, dict[str, bool]] = {
    "websocket": {},
    "sse": {"refuse_websocket": True},
    "poll": {"refuse_websocket": True, "buffer_responses": True},
}
# Short timeouts so a test sees a downgrade or a stall in about a second.
CLIENT = {
    "firstByteTimeoutMs": 1500,
    "stallTimeoutMs": 3000,
    "pollWaitSeconds": 2,
    "backoff": {"initialMs": 50, "maxMs": 400},
}
BRIDGE = {
    "bridge_heartbeat_seconds": 0.3,
    "bridge_ws_ping_seconds": 0.5,
    "bridge_demo_token_delay_ms": 10,
    "bridge_resume_grace_seconds": 60,
}


@functools.cache
def _build() -> str:
    """Installs the package's dev dependencies (once) and builds it with tsc: a type error
    fails every test here."""
    node = node_binary()
    env = {**os.environ, "PATH": f"{Path(node).parent}{os.pathsep}{os.environ['PATH']}"}
    if not (PACKAGE / "node_modules" / "typescript").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=warn"],
            cwd=PACKAGE,
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
    tsc = PACKAGE / "node_modules" / "typescript" / "bin" / "tsc"
    built = subprocess.run(
        [node, str(tsc), "-p", "tsconfig.json"],
        cwd=PACKAGE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0:
        raise NodeSetupError(f"tsc failed:\n{built.stdout}\n{built.stderr}")
    return node


@pytest.fixture(scope="session")
def transport_node() -> str:
    try:
        return _build()
    except (NodeSetupError, subprocess.SubprocessError, OSError) as exc:
        pytest.fail(f"the resilient transport could not be built:\n{exc}", pytrace=False)


def run_chat(node: str, scenario: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    proc = subprocess.run(
        [node, str(PACKAGE / "test" / "chat-run.mjs")],
        input=json.dumps(scenario).encode(),
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
        check=False,
    )
    output: dict[str, Any] = json.loads(proc.stdout or b"{}")
    assert proc.returncode == 0 and output.get("ok"), (output, proc.stderr.decode()[-3000:])
    return output


@pytest.fixture
def proxies() -> Iterator[Callable[..., FaultProxy]]:
    started: list[FaultProxy] = []

    def start(server: LiveServer, **modes: bool) -> FaultProxy:
        proxy = FaultProxy(int(server.url.rsplit(":", 1)[1]), **modes).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def scenario(url: str, chat_id: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "api": f"{url}/api/chat",
        "chatId": chat_id,
        "options": dict(CLIENT),
        "steps": steps,
        **extra,
    }


def stored(server: LiveServer, chat_id: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{server.url}/api/chat/{chat_id}/messages", timeout=10).json()
    messages: list[dict[str, Any]] = body["messages"]
    return messages


def log_length(server: LiveServer, chat_id: str) -> int:
    """How many chunks the chat's latest generation logged (a whole-log poll page)."""
    page = httpx.get(f"{server.url}/api/chat/{chat_id}/poll", timeout=10).json()
    assert page["done"], page
    return len(page["chunks"])


def events(output: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event for event in output["events"] if event["type"] == kind]


def tier_path(output: dict[str, Any]) -> list[str]:
    return [event["tier"] for event in events(output, "tier")]


EXPECTED_PATH = {"websocket": [], "sse": ["sse"], "poll": ["sse", "poll"]}


@pytest.mark.parametrize("tier", TIERS)
def test_resilient_transport_completes_on_each_tier(
    transport_node: str,
    bridge_factory: BridgeFactory,
    proxies: Callable[..., FaultProxy],
    tier: str,
) -> None:
    server = bridge_factory(**BRIDGE)
    proxy = proxies(server, **NETWORKS[tier])
    chat_id = f"tier-{tier}"
    output = run_chat(
        transport_node,
        scenario(
            proxy.url,
            chat_id,
            [
                {"op": "send", "text": "a long answer please"},
                {"op": "settle"},
            ],
        ),
    )
    assert output["status"] == "ready", output["error"]
    assert output["tier"] == tier
    assert tier_path(output) == EXPECTED_PATH[tier]
    messages = output["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1] == stored(server, chat_id)[-1]
    assert output["chunksSeen"] == log_length(server, chat_id)  # every chunk exactly once
    if tier == "websocket":
        assert [frame["type"] for frame in proxy.ws_frames] == ["send"]
    else:
        assert any(f"/api/chat/{chat_id}/poll?" in line for line in proxy.requests) == (
            tier == "poll"
        )


# Where each tier's connection is cut: in the middle of the answer, inside chunk 40.
CUTS: dict[str, tuple[bytes, Callable[[str, bool], bool]]] = {
    "websocket": (b'"sequence":40,', lambda line, upgrade: upgrade),
    "sse": (b"\nid: 40\n", lambda line, upgrade: "/stream?" in line),
    "poll": (b'"chunks":[', lambda line, upgrade: line.startswith("GET") and "/poll?" in line),
}


@pytest.mark.parametrize("tier", TIERS)
def test_resilient_transport_resumes_from_its_offset_after_a_cut(
    transport_node: str,
    bridge_factory: BridgeFactory,
    proxies: Callable[..., FaultProxy],
    tier: str,
) -> None:
    server = bridge_factory(**BRIDGE)
    proxy = proxies(server, **NETWORKS[tier])
    after, when = CUTS[tier]
    proxy.arm_cut(after, when)
    chat_id = f"cut-{tier}"
    output = run_chat(
        transport_node,
        scenario(
            proxy.url,
            chat_id,
            [
                {"op": "send", "text": "a long answer please"},
                {"op": "settle"},
            ],
        ),
    )
    assert output["status"] == "ready", output["error"]
    assert output["tier"] == tier
    assert len(proxy.cuts) == 1
    # One message, exactly the stored one: nothing doubled, nothing missing.
    messages = output["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1] == stored(server, chat_id)[-1]
    assert output["chunksSeen"] == log_length(server, chat_id)
    reconnects = events(output, "reconnect")
    assert reconnects
    cursor = reconnects[0]["cursor"]
    generation = reconnects[0]["generationId"]
    assert generation
    # ...and the server was asked for what follows the last chunk held.
    if tier == "websocket":
        resumes = [f for f in proxy.ws_frames if f["type"] == "resume"]
        assert cursor == 39
        assert resumes[0]["lastSequence"] == cursor
        assert resumes[0]["generationId"] == generation
    elif tier == "sse":
        assert cursor == 39
        assert any(f"/stream?generation={generation}&cursor=39 " in line for line in proxy.requests)
    else:
        polls = [line for line in proxy.requests if line.startswith("GET") and "/poll?" in line]
        cut_at = polls.index(proxy.cuts[0])
        assert f"cursor={cursor}&" in polls[cut_at]
        assert f"cursor={cursor}&" in polls[cut_at + 1]  # the same cursor, asked again
        assert cursor >= 0


@pytest.mark.parametrize("tier", TIERS)
def test_resilient_transport_stop_reaches_the_provider_on_each_tier(
    transport_node: str,
    bridge_factory: BridgeFactory,
    proxies: Callable[..., FaultProxy],
    openai_fake: OpenAIFake,
    tier: str,
) -> None:
    words = " ".join(f"word{index}" for index in range(600))
    openai_fake.enqueue([Text(words)], token_delay=0.01)
    server = bridge_factory(
        **BRIDGE,
        openai_api_key="test-key",
        openai_base_url=openai_fake.base_url,
        bridge_model="openai:gpt-test",
    )
    proxy = proxies(server, **NETWORKS[tier])
    chat_id = f"stop-{tier}"
    output = run_chat(
        transport_node,
        scenario(
            proxy.url,
            chat_id,
            [
                {"op": "send", "text": "go", "wait": False},
                {"op": "waitChunks", "n": 30},
                {"op": "stop"},
                {"op": "settle"},
            ],
        ),
    )
    assert output["status"] == "ready", output["error"]
    assert output["tier"] == tier
    assert openai_fake.disconnected.wait(10)  # the provider call was cancelled
    assert any(
        line.startswith(f"POST /api/chat/{chat_id}/stop?generation=") for line in proxy.requests
    )
    if tier == "websocket":
        assert [frame["type"] for frame in proxy.ws_frames] == ["send", "abort"]
    history = httpx.get(f"{server.url}/api/chat/{chat_id}/messages", timeout=10).json()
    assert history["activeGenerationId"] is None
    text = "".join(p["text"] for p in history["messages"][-1]["parts"] if p["type"] == "text")
    assert 0 < len(text) < len(words)


@pytest.mark.parametrize("tier", TIERS)
def test_resilient_transport_approval_continues_the_message_on_each_tier(
    transport_node: str, bridge_factory: BridgeFactory, tier: str
) -> None:
    server = bridge_factory(**BRIDGE, bridge_tools="bridge.tools.examples")
    chat_id = f"approve-{tier}"
    run = scenario(
        server.url,
        chat_id,
        [
            {"op": "send", "text": "delete /tmp/report.txt"},
            {"op": "settle"},
            {"op": "approve", "approved": True},
            {"op": "settle"},
        ],
        auto="approvals",
    )
    run["options"]["tiers"] = [tier]
    output = run_chat(transport_node, run)
    assert output["status"] == "ready", output["error"]
    messages = output["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    tool = next(p for p in messages[1]["parts"] if p["type"] == "tool-delete_file")
    assert tool["state"] == "output-available"
    assert messages[1]["parts"] == stored(server, chat_id)[-1]["parts"]


def test_resilient_transport_resumes_a_continuation_past_its_prelude(
    transport_node: str, bridge_factory: BridgeFactory, proxies: Callable[..., FaultProxy]
) -> None:
    """Cut right after `start` of a continuation: the chunks that follow rebuild the message
    this client sent, so its resume must ask for what comes after them."""
    server = bridge_factory(**BRIDGE, bridge_tools="bridge.tools.examples")
    proxy = proxies(server)
    chat_id = "prelude-cut"
    run_chat(
        transport_node,
        scenario(
            proxy.url,
            chat_id,
            [
                {"op": "send", "text": "delete /tmp/report.txt"},
                {"op": "settle"},
            ],
        ),
    )
    proxy.arm_cut(b'"sequence":1,', lambda line, upgrade: upgrade)
    output = run_chat(
        transport_node,
        scenario(
            proxy.url,
            chat_id,
            [
                {"op": "approve", "approved": True},
                {"op": "settle"},
            ],
            auto="approvals",
            initialMessages=stored(server, chat_id),
        ),
    )
    assert output["status"] == "ready", output["error"]
    assert len(proxy.cuts) == 1
    messages = output["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["parts"] == stored(server, chat_id)[-1]["parts"]
    resume = next(f for f in proxy.ws_frames if f["type"] == "resume")
    assert resume["lastSequence"] > 1  # past the prelude, not from `start`


def start_in_background(server: LiveServer, chat_id: str, text: str) -> None:
    """Starts a turn the way a second device would; it runs on without any reader."""
    body = {
        "id": chat_id,
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}],
    }
    response = httpx.post(f"{server.url}/api/chat/poll", json=body, timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("tier", TIERS)
def test_resilient_transport_reports_a_refusal_before_streaming(
    transport_node: str, bridge_factory: BridgeFactory, tier: str
) -> None:
    server = bridge_factory(**BRIDGE)
    start_in_background(server, f"busy-{tier}", "a long answer please")
    run = scenario(
        server.url,
        f"busy-{tier}",
        [
            {"op": "send", "text": "me too"},
            {"op": "settle"},
        ],
    )
    run["options"]["tiers"] = [tier]
    output = run_chat(transport_node, run)
    assert output["status"] == "error"
    assert "already has a generation running" in output["error"]
    assert [m["role"] for m in output["messages"]] == ["user"]
    assert not events(output, "reconnect")  # a refusal is final, not a network problem


@pytest.mark.parametrize("tier", TIERS)
def test_resilient_transport_resume_replays_the_running_answer(
    transport_node: str, bridge_factory: BridgeFactory, tier: str
) -> None:
    server = bridge_factory(**BRIDGE)
    start_in_background(server, f"resume-{tier}", "a long answer please")
    history = stored(server, f"resume-{tier}")
    run = scenario(
        server.url, f"resume-{tier}", [{"op": "resume"}, {"op": "settle"}], initialMessages=history
    )
    run["options"]["tiers"] = [tier]
    output = run_chat(transport_node, run)
    assert output["status"] == "ready", output["error"]
    messages = output["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1] == stored(server, f"resume-{tier}")[-1]
    # Nothing runs any more (and a finished answer is not replayed past the grace period):
    idle = bridge_factory(**{**BRIDGE, "bridge_resume_grace_seconds": 0})
    run = scenario(idle.url, "idle", [{"op": "resume"}, {"op": "settle"}])
    run["options"]["tiers"] = [tier]
    nothing = run_chat(transport_node, run)
    assert nothing["status"] == "ready"
    assert nothing["messages"] == []
    assert nothing["chunksSeen"] == 0


def test_resilient_transport_leaves_a_socket_that_dies_after_every_upgrade(
    transport_node: str, bridge_factory: BridgeFactory, proxies: Callable[..., FaultProxy]
) -> None:
    server = bridge_factory(**BRIDGE)
    proxy = proxies(server)
    # Every upgrade succeeds, then the connection is reset before any frame passes.
    proxy.arm_cut(b"\r\n\r\n", lambda line, upgrade: upgrade, times=100)
    output = run_chat(
        transport_node,
        scenario(
            proxy.url,
            "flaky-socket",
            [
                {"op": "send", "text": "a long answer please"},
                {"op": "settle"},
            ],
        ),
    )
    assert output["status"] == "ready", output["error"]
    assert output["tier"] == "sse"
    assert tier_path(output) == ["sse"]
    assert len(proxy.cuts) == 3
    messages = output["messages"]
    assert messages[1] == stored(server, "flaky-socket")[-1]


def test_resilient_transport_resumes_a_start_whose_answer_was_lost(
    transport_node: str, bridge_factory: BridgeFactory, proxies: Callable[..., FaultProxy]
) -> None:
    """The turn started but its answer never arrived: it is resumed, never sent twice
    (a second send could run tools twice)."""
    server = bridge_factory(**BRIDGE)
    proxy = proxies(server, refuse_websocket=True)
    proxy.arm_cut(b'"chunks":[', lambda line, upgrade: line.startswith("POST /api/chat/poll"))
    output = run_chat(
        transport_node,
        scenario(
            proxy.url,
            "lost-start",
            [
                {"op": "send", "text": "a long answer please"},
                {"op": "settle"},
            ],
        ),
    )
    assert output["status"] == "ready", output["error"]
    assert len(proxy.cuts) == 1
    starts = [line for line in proxy.requests if line.startswith("POST /api/chat/poll")]
    assert len(starts) == 1
    messages = output["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1] == stored(server, "lost-start")[-1]
    # Every chunk at most once: the whole log, or fewer when the transport (holding no
    # offset yet) resumed with a full replay, which the bridge sends compacted.
    assert 0 < output["chunksSeen"] <= log_length(server, "lost-start")


@pytest.mark.parametrize("tier", TIERS)
def test_resilient_transport_steer_interrupts_the_answer_on_each_tier(
    transport_node: str,
    bridge_factory: BridgeFactory,
    proxies: Callable[..., FaultProxy],
    openai_fake: OpenAIFake,
    tier: str,
) -> None:
    # A model call that has produced nothing yet is the one an interrupt cuts (a call with
    # output runs to its end and the message is delivered at the step boundary).
    openai_fake.enqueue([Hang()])
    openai_fake.enqueue([Text("Steered.")])
    server = bridge_factory(
        **BRIDGE,
        openai_api_key="test-key",
        openai_base_url=openai_fake.base_url,
        bridge_model="openai:gpt-test",
    )
    proxy = proxies(server, **NETWORKS[tier])
    chat_id = f"steer-{tier}"
    output = run_chat(
        transport_node,
        scenario(
            proxy.url,
            chat_id,
            [
                {"op": "send", "text": "go", "wait": False},
                {"op": "waitChunks", "n": 2},  # start, start-step: the model is called
                {"op": "steer", "text": "Stop rambling", "mode": "interrupt"},
                {"op": "settle"},
                # A new message (its own id; the same id would be a retry of the first).
                {"op": "steer", "text": "Too late", "id": "steer-2"},
            ],
        ),
    )
    assert output["status"] == "ready", output["error"]
    first, late = events(output, "steer")
    assert first["queued"] is True and first["status"] == 202
    assert late == {**late, "queued": False, "status": 409}
    assistant = output["messages"][-1]
    kinds = [part["type"] for part in assistant["parts"]]
    # The silent call was cut; the message opens the step that answers it.
    assert kinds == ["step-start", "steering-message", "step-start", "text"]
    assert assistant["parts"][1]["parts"] == [{"type": "text", "text": "Stop rambling"}]
    assert assistant["parts"][-1]["text"] == "Steered."
    assert assistant["parts"] == stored(server, chat_id)[-1]["parts"]
