"""Every setting is an environment variable with a safe default (see README, "Settings")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Endpoint(BaseModel):
    """One OpenAI-compatible server (BRIDGE_ENDPOINTS)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(min_length=1)
    api: Literal["chat", "responses"] = "chat"
    api_key_env: str | None = None
    """The environment variable holding the key (kept out of the settings themselves)."""


class ModelOptionsSetting(BaseModel):
    """Options for one model (BRIDGE_MODEL_OPTIONS)."""

    model_config = ConfigDict(extra="forbid")

    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    thinking_budget: int | None = Field(default=None, ge=1024)
    provider_tools: list[dict[str, Any]] = Field(default_factory=list, max_length=32)
    """Tools the provider runs itself, each in its API's own shape (README, Providers)."""
    background: bool = False
    """OpenAI Responses: background mode (the API stores the response and keeps generating
    without the client), so a takeover reads the rest of the same response instead of
    asking again (README, Surviving restarts)."""

    @field_validator("provider_tools")
    @classmethod
    def _typed_tools(cls, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for tool in tools:
            if not isinstance(tool.get("type"), str) or not tool["type"]:
                raise ValueError('every provider tool needs its API\'s "type"')
        return tools


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Serving (read by `python -m bridge`; an ASGI server of your own has its own options)
    bridge_host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("bridge_host", "host")
    )
    """Address to listen on; `HOST` is the fallback a PaaS sets. A container needs
    `0.0.0.0`."""
    bridge_port: int = Field(
        default=8000, ge=0, le=65535, validation_alias=AliasChoices("bridge_port", "port")
    )
    """Port to listen on; `PORT` is the fallback a PaaS sets."""
    bridge_workers: int = Field(default=1, ge=1)
    """Worker processes. More than one needs Redis (`REDIS_URL`): they share its store."""
    bridge_proxy_headers: bool = True
    """Take the client address and scheme from `X-Forwarded-For` / `X-Forwarded-Proto`,
    when the peer is in `bridge_forwarded_allow_ips`."""
    bridge_forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        validation_alias=AliasChoices("bridge_forwarded_allow_ips", "forwarded_allow_ips"),
    )
    """Comma-separated peers (IPs, networks, `*`) whose proxy headers are believed (the
    client address, and `X-Forwarded-Host` in the WebSocket origin check);
    `FORWARDED_ALLOW_IPS` (uvicorn's own name) is the fallback."""

    # Providers
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    provider_timeout_seconds: float = Field(default=600.0, gt=0)
    """Per provider request, whole stream."""
    bridge_provider_http: Literal["aiohttp", "httpx"] = "aiohttp"
    """The provider SDKs' HTTP stack, both their own: `aiohttp` (their aiohttp transport,
    less CPU per streamed event) or `httpx` (their default httpx2 stack)."""
    bridge_provider_max_event_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """The largest provider stream event read (one SSE event); a larger one ends the
    answer with a provider error rather than growing memory."""
    bridge_endpoints: dict[str, Endpoint] = Field(default_factory=dict)
    """More OpenAI-compatible servers, each served as `<name>:<model>`: a JSON object
    `{"<name>": {"base_url": "...", "api": "chat" | "responses", "api_key_env": "VAR"}}`
    (the key is read from the variable named by `api_key_env`; none: a placeholder)."""
    azure_openai_api_key: str | None = None
    azure_openai_endpoint: str | None = None
    """`https://<resource>.openai.azure.com`: serves `azure:<deployment>` (Chat Completions)."""
    openai_api_version: str = "2024-10-21"
    """The Azure OpenAI API version."""
    bridge_model_options: dict[str, ModelOptionsSetting] = Field(default_factory=dict)
    """Per-model options as JSON, keyed by "provider:model": `reasoning_effort` (OpenAI
    reasoning models), `thinking_budget` (Anthropic extended thinking, >= 1024 tokens),
    `provider_tools` (tools the provider runs itself, in its API's shape)."""
    bridge_providers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Your own providers or agents: `name=package.module:attribute` entries, comma
    separated; served as `name:<model>`."""

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
    bridge_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Host names (the `Host` header, port left out) this server answers to; every other
    request and WebSocket handshake gets 400 (DNS rebinding). Unset: any host with a
    token or JWT, only loopback names (localhost, 127.0.0.1, ::1) in anonymous mode; `*`:
    any host."""
    bridge_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long a request's line and headers may take to arrive (from the connection's
    start, or the request's first byte) before the connection is closed, with a 408 when a
    request had begun: a slow or silent client never holds a connection longer
    (`python -m bridge` only; an embedding app's server has its own)."""
    bridge_body_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long a request body may take to arrive in full before the request is answered
    408 (a slow or stalled client never holds a request open longer)."""
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

    # Operations
    bridge_ready_timeout_seconds: float = Field(default=2.0, gt=0)
    """GET /readyz answers 503 when the store does not answer a ping within this."""
    bridge_metrics: bool = True
    """Serve Prometheus metrics on GET /metrics."""
    bridge_log_format: str = Field(default="text", pattern="^(text|json)$")
    """`json`: one JSON object per log line (uvicorn's access log too), with chat,
    generation and user ids; `text`: plain lines with the ids appended."""
    bridge_log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

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
    """Signs the anonymous identity cookie; unset: a random key made at start-up (the
    workers of one `python -m bridge` share it; identities end when it restarts)."""
    bridge_allow_client_system: bool = False
    """Accept `system` messages from clients (only as the start of a new chat)."""

    # Limits (per process; see README "Security model")
    bridge_rate_limit_per_minute: int = Field(default=300, ge=0)
    """Requests per user per minute (HTTP requests and WebSocket send/resume frames); 0: off."""
    bridge_max_generations_per_user: int = Field(default=4, ge=0)
    """Generations running at once for one user; 0: off."""
    bridge_max_generations: int = Field(default=256, ge=0)
    """Generations running at once in this process; 0: off."""
    bridge_max_sockets_per_user: int = Field(default=8, ge=0)
    bridge_max_readers_per_user: int = Field(default=32, ge=0)
    """Streams, resumes, live tails and long-polls open at once for one user (every
    transport); more get 429. 0: off."""
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
    """`redis://host:port/db` (or `rediss://`); a Redis Cluster: `redis+cluster://host:port`
    (any node; `rediss+cluster://` with TLS)."""
    bridge_redis_socket_timeout_seconds: float = Field(default=10.0, gt=0)
    """Longest wait for one Redis reply. Quiet logs never wait on a socket (readers are
    woken by notifications), so this only bounds a dead connection."""
    bridge_redis_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    bridge_redis_health_check_seconds: float = Field(default=15.0, ge=0)
    """A Redis connection idle this long is checked with PING before reuse; 0: off."""
    bridge_redis_max_connections: int = Field(default=7, gt=0)
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
    bridge_store: Literal["auto", "sqlite", "memory", "redis"] = "auto"
    """auto: Redis when REDIS_URL is set, else SQLite under BRIDGE_DATA_DIR. memory: in this
    process only (lost on restart)."""
    bridge_data_dir: Path = Path("data")
    """Where the SQLite store keeps `bridge.sqlite3` (one bridge process per directory)."""
    bridge_sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """NORMAL: what was written survives the process being killed, the last writes may be
    lost on power loss or an OS crash; FULL: survives those too, one disk flush per write."""
    bridge_key_prefix: str = "aisdk"
    bridge_log_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    """How long a generation's log is kept after it ended (offset replay retention)."""
    bridge_history_ttl_seconds: int = Field(default=30 * 24 * 3600, gt=0)
    bridge_flush_ms: float = Field(default=40.0, ge=0)
    """The longest batching window: the chunks of every generation produced within it share
    one append round trip. It is this long from 32 generations writing at once, shorter
    with fewer (a chunk after a quiet spell goes at once)."""
    bridge_lease_seconds: float = Field(default=15.0, gt=0)
    """A producer that has not written for this long is presumed dead."""
    bridge_resume_grace_seconds: float = Field(default=10.0, ge=0)
    """After a generation ends, a resume GET still replays it for this long."""
    bridge_drain_seconds: float = Field(default=25.0, ge=0)
    """On SIGTERM, how long running generations may go on here before they are handed
    over to another process (fits Kubernetes' 30 s grace period)."""
    bridge_end_timeout_seconds: float = Field(default=10.0, gt=0)
    """The longest a generation's end may take (the log flushed and closed or handed over,
    the embedder's `on_finish` and hooks); past it the end is abandoned: the log stops
    being renewed and its lease lapses, so another process takes it over. Drain waits this
    long at most for the generations it cancelled."""
    bridge_takeover_sweep_seconds: float = Field(default=10.0, ge=0)
    """How often each process looks for generations whose producer is gone and that no
    reader noticed (readers notice at once); 0: off."""
    bridge_recovery_max_takeovers: int = Field(default=20, ge=0)
    """Takeovers of one generation at most; the next one ends it with an error (a producer
    that crashes every time is not taken over forever). Hand-overs on SIGTERM count too."""
    bridge_recovery_max_stall_seconds: float = Field(default=300.0, gt=0)
    """A generation taken over again without any progress since this long ago is ended
    with an error instead."""
    bridge_provider_idle_seconds: float = Field(default=120.0, gt=0)
    """A model call that receives nothing for this long (a stalled upstream: bytes stop,
    the connection stays open) is cut: retried as a failed step, or the answer ends."""
    bridge_busy_policy: Literal["reject", "queue", "interrupt", "steer"] = "reject"
    """What a new message does while the chat's answer runs (per request: the
    `x-bridge-busy` header or a `busy` body field): 409, the next turn, stop the answer and
    answer it, or steer the running answer."""

    # Tools
    bridge_tools: str | None = None
    """Module path with tool declarations, e.g. `myapp.tools`."""
    bridge_max_steps: int = Field(default=8, gt=0)
    bridge_tool_timeout_seconds: float = Field(default=60.0, gt=0)
    bridge_tool_threads: int = Field(default=16, gt=0)
    """Threads for synchronous tools, their own (never the server's shared pool). A sync
    tool that timed out keeps its thread until it returns; calls beyond the limit wait
    for a thread, within their own timeout."""
    bridge_step_retries: int = Field(default=1, ge=0, le=5)
    """A step whose provider stream fails with a network or 5xx error is retried this many
    times (`reset-step` tells clients to drop the failed attempt)."""
    bridge_allow_client_tools: bool = False
    """Accept tool declarations (JSON schemas) from the request body `tools`."""
    bridge_client_level: Literal["auto", "5", "6", "7"] = "auto"
    """The `ai` major version of the clients (5, 6 or 7): older ones get the stream degraded
    to what they know. A request may say its own (`?client=` or `x-ai-sdk-level`). `auto`:
    a request that says nothing gets what every client accepts (ai 6's chunks, streamed)."""

    @model_validator(mode="after")
    def _redis_store_needs_url(self) -> Settings:
        if self.bridge_store == "redis" and not self.redis_url:
            raise ValueError("BRIDGE_STORE=redis needs REDIS_URL")
        return self

    @field_validator("bridge_client_level", mode="before")
    @classmethod
    def _level_text(cls, value: object) -> object:
        # `BRIDGE_CLIENT_LEVEL=7` and `Settings(bridge_client_level=7)` mean the same.
        return str(value).strip() if isinstance(value, int | str) else value

    @field_validator("bridge_port", mode="before")
    @classmethod
    def _port_number(cls, value: object) -> object:
        # Kubernetes sets `<SERVICE>_PORT=tcp://10.0.0.1:8000` for every Service in the
        # namespace, so a Service named `bridge` would hand us a URL here.
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError(
                f"must be a port number, not {value!r} (a Kubernetes Service named `bridge` "
                "sets BRIDGE_PORT to its address: rename it or set enableServiceLinks: false)"
            )
        return value

    @field_validator(
        "bridge_models",
        "bridge_cors_origins",
        "bridge_allowed_hosts",
        "bridge_auth_tokens",
        "bridge_providers",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)
