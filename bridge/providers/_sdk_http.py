"""The HTTP client the provider SDKs are built with (BRIDGE_PROVIDER_HTTP).

`aiohttp` (the default) gives each SDK client its own `DefaultAioHttpClient` (the
`openai[aiohttp]` and `anthropic[aiohttp]` extras: httpx2's interface over aiohttp's
connection pool and C HTTP parser, which reads a streamed body for a fraction of the CPU
of the pure-Python default); `httpx` gives it the SDK's `DefaultAsyncHttpxClient` (its
httpx2 stack with the SDK's TCP keep-alive socket options). Both are the SDKs' own,
supported stacks: proxies come from the environment (`HTTPS_PROXY`, `HTTP_PROXY`,
`ALL_PROXY`, `NO_PROXY`) and a custom CA bundle from `SSL_CERT_FILE` / `SSL_CERT_DIR`, as
the SDKs document.

The limits and timeouts are the bridge's choice, the same for both stacks:

* at most 512 connections per provider client (one per streamed answer; a process runs
  256 generations at most by default), 100 idle ones kept for 30 s;
* connect within 10 s (a dead host fails fast, and the SDK retries), a free connection
  from the pool within 30 s, and `PROVIDER_TIMEOUT_SECONDS` for a read or a write (the
  whole stream has that limit too, kept by the bridge's own deadline).
"""

from __future__ import annotations

from types import ModuleType
from typing import Literal

import httpx2

ProviderHTTP = Literal["aiohttp", "httpx"]

CONNECTION_LIMITS = httpx2.Limits(
    max_connections=512, max_keepalive_connections=100, keepalive_expiry=30.0
)
CONNECT_TIMEOUT = 10.0
POOL_TIMEOUT = 30.0


def sdk_timeout(timeout: float | None) -> httpx2.Timeout:
    """The timeouts of an SDK client whose requests may take `timeout` seconds."""
    return httpx2.Timeout(timeout, connect=CONNECT_TIMEOUT, pool=POOL_TIMEOUT)


def sdk_http_client(sdk: ModuleType, mode: ProviderHTTP) -> httpx2.AsyncClient:
    """The `http_client=` for a client of `sdk` (the `openai` or `anthropic` module)."""
    name = "DefaultAioHttpClient" if mode == "aiohttp" else "DefaultAsyncHttpxClient"
    client: httpx2.AsyncClient = getattr(sdk, name)(limits=CONNECTION_LIMITS)
    return client
