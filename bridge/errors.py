"""The bridge's exception hierarchy.

    BridgeError
    ├── RequestError            the client's request is wrong (4xx)
    │   ├── ModelNotAllowed     400: `model` outside the allowlist
    │   ├── ChatConflict        409: the chat has a running generation
    │   └── NotFound            404
    └── ProviderError           the model provider failed
        ├── ProviderAuthError   rejected our credentials (-> 502)
        ├── ProviderRateLimited 429 from the provider (-> 503)
        ├── ProviderBadRequest  the provider refused the request (-> 502)
        └── ProviderUnavailable network failure, 5xx, timeout (-> 502/504)

Store errors live in `bridge.store.base` (StoreError and subclasses).
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestError(BridgeError):
    status_code = 400
    code = "bad_request"


class ModelNotAllowed(RequestError):
    code = "model_not_allowed"


class ChatConflict(RequestError):
    status_code = 409
    code = "generation_active"


class NotFound(RequestError):
    status_code = 404
    code = "not_found"


class ProviderError(BridgeError):
    """A provider failure. `message` is safe to show: it never contains a secret."""

    status_code = 502
    code = "provider_error"

    def __init__(self, message: str, *, provider: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.upstream_status = upstream_status


class ProviderAuthError(ProviderError):
    code = "provider_auth_failed"


class ProviderRateLimited(ProviderError):
    status_code = 503
    code = "provider_rate_limited"


class ProviderBadRequest(ProviderError):
    code = "provider_bad_request"


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"
