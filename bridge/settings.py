"""Every setting is an environment variable with a safe default (see README, "Settings")."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Providers
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    provider_timeout_seconds: float = Field(default=600.0, gt=0)
    """Per provider request, whole stream."""

    # Models
    bridge_model: str | None = None
    """Default "provider:model"; unset: openai:gpt-4.1-mini, anthropic:claude-sonnet-4-5 or
    demo:scripted, by which key is set."""
    bridge_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Allowlist a request may choose from with the body field `model`."""
    bridge_system_prompt: str | None = None
    bridge_max_output_tokens: int | None = Field(default=None, gt=0)
    bridge_temperature: float | None = Field(default=None, ge=0, le=2)
    bridge_demo_token_delay_ms: float = Field(default=30, ge=0)
    """Pause between the tokens the `demo:` model writes."""

    # HTTP
    bridge_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    bridge_max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    bridge_heartbeat_seconds: float = Field(default=15.0, gt=0)
    bridge_max_poll_wait_seconds: float = Field(default=30.0, gt=0)
    """Cap on a long-poll's `wait`; keep it below your proxies' read timeouts."""
    bridge_ws_max_frame_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    """Largest WebSocket frame accepted (a `send` carries the whole history, like the POST
    body); a larger one closes the socket with 1008. uvicorn's `--ws-max-size` (16 MiB by
    default) must be at least this."""
    bridge_ws_ping_seconds: float = Field(default=20.0, ge=0)
    """A keep-alive frame goes out after this long without any frame on a socket, so idle
    sockets survive proxy idle timeouts; 0: off."""
    bridge_ws_max_requests: int = Field(default=16, gt=0)
    """Requests (send/resume) running at once on one socket; more get an `error` frame."""
    bridge_expose_errors: bool = False
    """Send provider/tool error details to clients; off: a generic text."""

    # Auth
    bridge_auth_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """`token:user` pairs; empty: no authentication, every caller is `anonymous`."""

    # Session store
    redis_url: str | None = None
    """`redis://host:port/db` (or `rediss://`); a Redis Cluster: `redis+cluster://host:port`
    (any node; `rediss+cluster://` with TLS)."""
    bridge_redis_socket_timeout_seconds: float = Field(default=10.0, gt=0)
    """Longest wait for one Redis reply. Quiet logs never wait on a socket (readers are
    woken by notifications), so this only bounds a dead connection."""
    bridge_redis_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    bridge_redis_health_check_seconds: float = Field(default=15.0, ge=0)
    """A Redis connection idle this long is checked with PING before reuse; 0: off."""
    bridge_redis_max_connections: int = Field(default=16, gt=0)
    """Command connections per process (per node in a cluster); callers beyond it wait."""
    bridge_redis_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long a Redis command waits for a free connection before it fails (overload
    slows requests down first; only this long a wait fails one)."""
    bridge_writer_buffer_chunks: int = Field(default=2048, gt=0)
    """Chunks a generation may have waiting for the store before its producer is paused."""
    bridge_writer_retry_seconds: float = Field(default=10.0, gt=0)
    """How long the writer retries a failed append round trip before the generation fails."""
    bridge_reader_queue_chunks: int = Field(default=4096, gt=0)
    """Chunks queued for one reader; a reader further behind (a client that stopped
    reading) is detached and catches up from the store at its own pace."""
    bridge_key_prefix: str = "aisdk"
    bridge_log_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    """How long a generation's log is kept after it ended (offset replay retention)."""
    bridge_history_ttl_seconds: int = Field(default=30 * 24 * 3600, gt=0)
    bridge_flush_ms: float = Field(default=5.0, ge=0)
    """Batching window: chunks produced within it are appended in one round trip."""
    bridge_lease_seconds: float = Field(default=15.0, gt=0)
    """A producer that has not written for this long is presumed dead."""
    bridge_resume_grace_seconds: float = Field(default=10.0, ge=0)
    """After a generation ends, a resume GET still replays it for this long."""

    # Tools
    bridge_tools: str | None = None
    """Module path with tool declarations, e.g. `myapp.tools`."""
    bridge_max_steps: int = Field(default=8, gt=0)
    bridge_tool_timeout_seconds: float = Field(default=60.0, gt=0)
    bridge_step_retries: int = Field(default=1, ge=0, le=5)
    """A step whose provider stream fails with a network or 5xx error is retried this many
    times (`reset-step` tells clients to drop the failed attempt)."""
    bridge_allow_client_tools: bool = False
    """Accept tool declarations (JSON schemas) from the request body `tools`."""

    @field_validator("bridge_models", "bridge_cors_origins", "bridge_auth_tokens", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)
