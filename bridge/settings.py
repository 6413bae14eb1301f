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
    """`token:user` pairs (static bearer tokens)."""
    bridge_jwt_secret: str | None = None
    """Accept JWT bearer tokens signed with this HMAC secret (HS256/384/512)."""
    bridge_jwt_jwks_url: str | None = None
    """Accept JWT bearer tokens signed by a key of this JWKS (RS*/ES*/PS*/EdDSA)."""
    bridge_jwt_issuer: str | None = None
    """Required `iss` of JWTs (unset: not checked)."""
    bridge_jwt_audience: str | None = None
    """Required `aud` of JWTs (unset: a token carrying `aud` is refused)."""
    bridge_jwt_user_claim: str = "sub"
    """The claim that names the user."""
    bridge_jwks_cache_seconds: float = Field(default=300.0, gt=0)
    """How long fetched JWKS keys are reused (an unknown `kid` refetches at most every 10 s)."""
    bridge_secret_key: str | None = None
    """Signs the anonymous identity cookie; unset: a random key per process (identities
    then end with the process and differ between processes)."""
    bridge_allow_client_system: bool = False
    """Accept `system` messages from clients (only as the start of a new chat)."""
    bridge_forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"]
    )
    """Peers whose `X-Forwarded-Host` is trusted by the WebSocket origin check ("*": any)."""

    # Limits (per process; see README "Security model")
    bridge_rate_limit_per_minute: int = Field(default=300, ge=0)
    """Requests per user per minute (HTTP requests and WebSocket send/resume frames); 0: off."""
    bridge_max_generations_per_user: int = Field(default=4, ge=0)
    """Generations running at once for one user; 0: off."""
    bridge_max_generations: int = Field(default=256, ge=0)
    """Generations running at once in this process; 0: off."""
    bridge_max_sockets_per_user: int = Field(default=8, ge=0)
    """WebSockets open at once for one user; 0: off."""
    bridge_max_history_messages: int = Field(default=1000, gt=0)
    """Messages of one chat's history; a turn past it is refused (413)."""
    bridge_max_history_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Bytes (JSON) of one chat's history; a turn past it is refused (413)."""
    bridge_max_generation_seconds: float = Field(default=900.0, gt=0)
    """Total duration of one generation (every step and tool); past it the generation ends
    with an error."""
    bridge_max_json_depth: int = Field(default=64, ge=8, le=200)
    """Nesting depth of request JSON (bodies, frames); deeper is refused (400)."""

    # Session store
    redis_url: str | None = None
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

    @field_validator(
        "bridge_models",
        "bridge_cors_origins",
        "bridge_auth_tokens",
        "bridge_forwarded_allow_ips",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)
