"""Shared fixtures: a real redis-server, the bridge served by uvicorn on a free port."""

from __future__ import annotations

from tests.bridge_server import bridge_factory, fake, memory_bridge, openai_fake  # noqa: F401
from tests.node_harness import node_fixture  # noqa: F401
from tests.support.bridge_process import bridge_processes  # noqa: F401
from tests.support.redis import admin, redis_server  # noqa: F401
