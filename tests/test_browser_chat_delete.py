"""Chat delete in the demo's sidebar, in Chromium against the real bridge: the set-up of
tests/test_browser_demo.py (its fixtures: the bridge, the built demo, the scenario runner),
the `delete` scenario of frontend-demo/e2e/run.mjs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_browser_demo import (  # noqa: F401  (the fixtures the scenario needs)
    bridge,
    bridge_process,
    bridge_url,
    chromium,
    demo,
    demo_build,
    demo_port,
    node_env,
    scenario,
)

pytestmark = pytest.mark.browser


def test_sidebar_delete_removes_another_chat_and_the_open_one_mid_answer(
    scenario: Any,  # noqa: F811  (the imported fixture)
) -> None:
    result = scenario("delete")
    names = [check["name"] for check in result["checks"]]
    assert "the open chat, deleted mid-answer, is gone from the bridge" in names
    assert all(check["ok"] for check in result["checks"])
