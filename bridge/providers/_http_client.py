"""The HTTP client the provider SDKs are built with (BRIDGE_PROVIDER_HTTP).

`lean` (the default) gives the SDK its own `DefaultAsyncHttpxClient` (the SDK's limits,
timeouts and redirects) around `_http.LeanTransport`; `sdk` leaves the SDK to build its
default stack. An SDK whose client is not an `httpx2` one (older releases use `httpx`)
gets its default silently: the lean transport speaks `httpx2`'s transport interface only.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import httpx2

ProviderHTTP = Literal["lean", "sdk"]


def _is_httpx2_client(client_class: type) -> bool:
    return any(
        kind.__name__ == "AsyncClient" and kind.__module__.partition(".")[0] == "httpx2"
        for kind in client_class.__mro__
    )


def sdk_http_client(sdk: ModuleType, mode: ProviderHTTP) -> httpx2.AsyncClient | None:
    """The `http_client=` for a client of `sdk` (the `openai` or `anthropic` module), or
    None to let the SDK build its own."""
    client_class = getattr(sdk, "DefaultAsyncHttpxClient", None)
    if mode != "lean" or not isinstance(client_class, type):
        return None
    if not _is_httpx2_client(client_class):
        return None
    from bridge.providers._http import LeanTransport, environment_proxy_mounts

    mounts = environment_proxy_mounts()
    if mounts is None:
        return None
    client: httpx2.AsyncClient = client_class(transport=LeanTransport(), mounts=mounts)
    return client
