"""Provider-defined tools in the demo, end to end: the bridge of tests/test_browser_demo.py
started again with a provider tool offered to its model (`provider_tools` in
BRIDGE_MODEL_OPTIONS) and the provider's API replaced by a replay server answering with a
recorded stream (tests/recordings/). The demo page sends a message; a web search shows a
search card with the query and the pages read, another provider tool a card collapsed by
default with its input and output, and the cards come back the same after a reload (from
the stored chat).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.replay import ReplayServer
from tests.test_browser_demo import (  # noqa: F401 (fixtures, found by name)
    ARTIFACTS,
    BridgeProcess,
    bridge,
    bridge_process,
    bridge_url,
    chromium,
    demo,
    demo_build,
    demo_port,
    node_env,
    run_scenario,
)

pytestmark = pytest.mark.browser

RECORDINGS = Path(__file__).parent / "recordings"


@dataclass(frozen=True)
class Case:
    """One provider tool: how the bridge reaches it, what the cards must show."""

    recording: str
    model: str
    tool: dict[str, Any]
    env: dict[str, str]
    path: str
    # The search cards: state, query, and each page read (href, the lines: title, domain).
    search: list[dict[str, Any]]
    # The other provider tools' cards (name, state, open), collapsed at first.
    other: list[dict[str, Any]] = field(default_factory=list)
    # What each of those shows once opened (a piece of its input, of its output).
    opened: list[tuple[str, str]] = field(default_factory=list)


OPENAI = Case(
    recording="openai/web-search.sse",
    model="openai:gpt-5-mini",
    tool={
        "type": "web_search",
        "user_location": {"type": "approximate", "country": "FR", "city": "Paris"},
    },
    env={"OPENAI_API_KEY": "test-key"},
    path="/v1/responses",
    # The Responses API lists the page untitled: named by its host and path.
    search=[
        {
            "state": "output-available",
            "query": "weather paris today",
            "links": [
                {
                    "href": "https://weather.example.com/paris",
                    "text": ["weather.example.com/paris", "weather.example.com"],
                }
            ],
        }
    ],
)
ANTHROPIC = Case(
    recording="anthropic/web-search.sse",
    model="anthropic:claude-sonnet-4-5",
    tool={"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    env={"ANTHROPIC_API_KEY": "test-key"},
    path="/v1/messages",
    search=[
        {
            "state": "output-available",
            "query": "weather paris",
            "links": [
                {
                    "href": "https://weather.example.com/paris",
                    "text": ["Paris weather", "weather.example.com"],
                },
                {
                    "href": "https://meteo.example.fr/paris",
                    "text": ["Météo Paris", "meteo.example.fr"],
                },
            ],
        }
    ],
)
CODE_INTERPRETER = Case(
    recording="openai/code-interpreter.sse",
    model="openai:gpt-5-mini",
    tool={"type": "code_interpreter", "container": {"type": "auto"}},
    env={"OPENAI_API_KEY": "test-key"},
    path="/v1/responses",
    search=[],
    other=[{"name": "code_interpreter", "state": "output-available", "open": False}],
    opened=[('"code": "print(2 ** 10)"', "1024")],
)


@pytest.fixture(
    params=[OPENAI, ANTHROPIC, CODE_INTERPRETER],
    ids=["openai-web-search", "anthropic-web-search", "openai-code-interpreter"],
)
def web_search_bridge(
    request: pytest.FixtureRequest,
    bridge_process: BridgeProcess,  # noqa: F811
) -> Iterator[tuple[Case, ReplayServer]]:
    """The session's bridge on the replay server, its model offered the case's tool; the
    scripted demo bridge again afterwards, for the other browser tests."""
    case: Case = request.param
    with ReplayServer() as replay:
        base_url = replay.url + "/v1" if case.model.startswith("openai:") else replay.url
        provider = case.model.split(":", 1)[0].upper()
        bridge_process.kill_and_restart(
            **case.env,
            **{f"{provider}_BASE_URL": base_url},
            BRIDGE_MODEL=case.model,
            BRIDGE_MODEL_OPTIONS=json.dumps({case.model: {"provider_tools": [case.tool]}}),
        )
        try:
            yield case, replay
        finally:
            bridge_process.kill_and_restart()


def test_provider_tools_show_their_cards_that_survive_a_reload(
    web_search_bridge: tuple[Case, ReplayServer],
    demo: str,  # noqa: F811
    chromium: str,  # noqa: F811
    node_env: dict[str, str],  # noqa: F811
) -> None:
    case, replay = web_search_bridge
    replay.serve((RECORDINGS / case.recording).read_bytes())
    # The reloaded page, for a look at the cards (test-artifacts/).
    screenshot = ARTIFACTS / f"demo-provider-tools-{case.recording.replace('/', '-')}.png"
    screenshot.unlink(missing_ok=True)
    result: dict[str, Any] = run_scenario(
        "provider-tools", demo, chromium, node_env, "--screenshot", str(screenshot)
    )
    assert screenshot.stat().st_size > 10_000

    # The page's turn reached the provider with the configured tool.
    (request,) = replay.requests
    assert request["path"] == case.path
    assert request["body"]["model"] == case.model.split(":", 1)[1]
    assert case.tool in request["body"]["tools"]

    assert result["cardsLive"] == {"search": case.search, "other": case.other}
    opened = result["openedCards"]
    assert [card["open"] for card in opened] == [True] * len(case.opened)
    for card, (input_piece, output_piece) in zip(opened, case.opened, strict=True):
        assert input_piece in card["input"]
        assert output_piece in card["output"]
    assert result["cardsAfterReload"] == result["cardsLive"]
