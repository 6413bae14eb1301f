"""The bridge's exception hierarchy.

BridgeError
├── RequestError            the client's request is wrong (4xx)
│   ├── InvalidRequest      422: JSON, but not a valid request (`details` per field)
│   ├── ModelNotAllowed     400: `model` outside the allowlist
│   ├── ApprovalRejected    400: an answer to an approval the server never asked for
│   ├── ApprovalAnswered    409: an approval answered already
│   ├── ChatConflict        409: the chat has a running generation
│   ├── NotFound            404
│   └── GenerationGone      410: a log past its retention
├── PayloadTooLarge         413
├── RequestTimeout          408: a body too slow to arrive
├── Unauthorized            401
├── ProviderError           the model provider failed
│   ├── ProviderAuthError   rejected our credentials (-> 502)
│   ├── ProviderRateLimited 429 from the provider (-> 503)
│   ├── ProviderBadRequest  the provider refused the request (-> 502)
│   └── ProviderUnavailable network failure, 5xx, timeout (-> 502/504)
└── StoreError              the session store (-> 503); a backend's own exceptions
    │                       (redis-py's) are mapped to these at the store boundary
    ├── GenerationNotFound  the log does not exist (never created, or expired)
    ├── OffsetConflict      an append at an offset that is not the log's next one
    └── ChatBusy            begin on a chat whose active generation is alive
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def public_message(self) -> str:
        """What a client is told. The same as `message`, except for the errors whose
        message may carry what only the operator should read (an upstream's own error
        text, a host, a key name, a file path): those answer a short fixed text and the
        full message goes to the log."""
        return self.message


class RequestError(BridgeError):
    status_code = 400
    code = "bad_request"


class InvalidRequest(RequestError):
    """The body is JSON but not a valid request; `details` names each bad field."""

    status_code = 422
    code = "invalid_request"

    def __init__(self, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.details = details


class PayloadTooLarge(BridgeError):
    status_code = 413
    code = "payload_too_large"


class RequestTimeout(BridgeError):
    """The request's body did not arrive in time (BRIDGE_BODY_TIMEOUT_SECONDS)."""

    status_code = 408
    code = "request_timeout"


class Unauthorized(BridgeError):
    status_code = 401
    code = "unauthorized"


class ApprovalRejected(RequestError):
    """An approval answer for an approval the server never requested."""

    code = "approval_rejected"


class ApprovalAnswered(RequestError):
    status_code = 409
    code = "approval_already_answered"


class GenerationGone(RequestError):
    status_code = 410
    code = "generation_gone"


class ModelNotAllowed(RequestError):
    code = "model_not_allowed"


class ChatConflict(RequestError):
    status_code = 409
    code = "generation_active"


class NotFound(RequestError):
    status_code = 404
    code = "not_found"


class Draining(BridgeError):
    """A new generation asked of a process that is shutting down: a load balancer retries
    it on another process (the answer carries `Retry-After`)."""

    status_code = 503
    code = "draining"
    retry_after_seconds = 1


class ProviderError(BridgeError):
    """A provider failure. `message` never contains a secret but may quote the upstream's
    own error text, so clients get `public_message` (the kind of failure and the upstream
    status) and the log the full text."""

    status_code = 502
    code = "provider_error"
    public_text = "the model provider failed"

    def __init__(self, message: str, *, provider: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.upstream_status = upstream_status

    @property
    def public_message(self) -> str:
        status = f" (HTTP {self.upstream_status})" if self.upstream_status is not None else ""
        return f"{self.public_text}{status}"


class ProviderAuthError(ProviderError):
    code = "provider_auth_failed"
    public_text = "the model provider rejected the server's credentials"


class ProviderRateLimited(ProviderError):
    status_code = 503
    code = "provider_rate_limited"
    public_text = "the model provider is rate limiting requests; try again shortly"


class ProviderBadRequest(ProviderError):
    code = "provider_bad_request"
    public_text = "the model provider refused the request"


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"
    public_text = "the model provider is unavailable"


class StoreError(BridgeError):
    """The session store failed or refused an operation. Its message may name a host,
    a key or a file (for the log); clients get `public_text`."""

    status_code = 503
    code = "store_unavailable"
    public_text = "the session store is unavailable; try again shortly"

    def __init__(self, message: str = "the session store is unavailable") -> None:
        super().__init__(message)

    @property
    def public_message(self) -> str:
        return self.public_text


class GenerationNotFound(StoreError):
    """The generation's log does not exist: never created, or expired (retention)."""

    status_code = 404
    code = "generation_not_found"
    public_text = "the generation's log is gone (past its retention)"


class OffsetConflict(StoreError):
    """An append or end marker at an offset that is not the log's next one."""

    status_code = 409
    code = "offset_conflict"
    public_text = "the generation's log changed under this request"


class ChatBusy(StoreError):
    """`begin_generation` on a chat whose active generation is still alive."""

    status_code = 409
    code = "generation_active"
    public_text = "the chat has a running generation"

    def __init__(self, active_generation_id: str) -> None:
        super().__init__(f"chat has an active generation {active_generation_id}")
        self.active_generation_id = active_generation_id


class StaleRevision(StoreError):
    """`begin_generation` planned against a history revision that is no longer current:
    another request changed the chat in between (two approval answers racing)."""

    status_code = 409
    code = "history_changed"
    public_text = "the chat's history changed meanwhile; reload it and try again"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"the chat's history changed (revision {current}, expected {expected})")
        self.expected = expected
        self.current = current


class Fenced(StoreError):
    """A write by a producer that lost its generation: its lease lapsed and another
    process took over (a higher epoch). It must stop and never write again."""

    status_code = 409
    code = "producer_fenced"
    public_text = "the generation moved to another process"


class HistoryConflict(RequestError):
    """The request's messages conflict with the stored history (the only truth)."""

    status_code = 409
    code = "history_conflict"


class ClientSystemMessage(RequestError):
    """A `system` message from the client while BRIDGE_ALLOW_CLIENT_SYSTEM is off."""

    code = "system_message_not_allowed"


class UnsupportedMediaType(BridgeError):
    status_code = 415
    code = "unsupported_media_type"


class Forbidden(BridgeError):
    status_code = 403
    code = "forbidden"


class LimitExceeded(BridgeError):
    """A rate or concurrency limit: 429 with `Retry-After`."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        if code is not None:
            self.code = code
