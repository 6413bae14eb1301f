"""Which providers exist, from the settings, and how "provider:model" strings resolve.

openai:<model>        OpenAI Responses API        OPENAI_API_KEY, or OPENAI_BASE_URL alone
openai-chat:<model>   Chat Completions (vLLM, …)  same as openai
anthropic:<model>     Anthropic Messages API      ANTHROPIC_API_KEY
azure:<deployment>    Azure OpenAI (Chat Compl.)  AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT
<endpoint>:<model>    any OpenAI-compatible       BRIDGE_ENDPOINTS (several at once)
demo:<anything>       scripted, no network        always
<name>:<model>        your own provider or agent  BRIDGE_PROVIDERS=name=module:attribute,
                                                  or `create_app(providers=...)` in code

Which models a request may name: BRIDGE_MODELS (the default model always among them), else
the default model alone; and any model of a provider registered by name (in code or
BRIDGE_PROVIDERS): naming it was the choice. A listed model whose provider is not configured
(no key) stops the start-up with a ModelConfigError, rather than failing each request.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

from bridge.errors import ModelNotAllowed
from bridge.providers._sdk_http import ProviderHTTP, sdk_http_client, sdk_timeout
from bridge.providers.base import (
    ModelOptions,
    ModelRequest,
    Provider,
    ProviderEvent,
    accepts_prefill,
    reattaches,
)
from bridge.providers.demo import DemoProvider
from bridge.settings import Endpoint, Settings

logger = logging.getLogger(__name__)

DEMO_MODEL = "demo:scripted"
OPENAI_DEFAULT = "openai:gpt-4.1-mini"
ANTHROPIC_DEFAULT = "anthropic:claude-sonnet-4-5"
KNOWN_PROVIDERS = ("openai", "openai-chat", "anthropic", "demo")
# A local OpenAI-compatible server usually wants no key, but the SDK insists on one.
PLACEHOLDER_KEY = "unused"

_SETUP_HINTS = {
    "openai": "set OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)",
    "openai-chat": "set OPENAI_BASE_URL and/or OPENAI_API_KEY",
    "anthropic": "set ANTHROPIC_API_KEY",
}


def parse_model_string(model_string: str) -> tuple[str, str]:
    """ "provider:model" → (provider, model); ModelNotAllowed when malformed."""
    provider, sep, model = model_string.partition(":")
    provider, model = provider.strip(), model.strip()
    if not sep or not provider or not model:
        raise ModelNotAllowed(
            f'model "{model_string}" is not of the form "provider:model" '
            f"(providers: {', '.join(KNOWN_PROVIDERS)})"
        )
    return provider, model


class ModelConfigError(ValueError):
    """The model settings name a model this process cannot serve (found at start-up)."""


def default_model(settings: Settings) -> str:
    """BRIDGE_MODEL, else the first of BRIDGE_MODELS, else the first provider with a key,
    else the demo model."""
    if settings.bridge_model:
        return settings.bridge_model
    if settings.bridge_models:
        return settings.bridge_models[0]
    if settings.openai_api_key:
        return OPENAI_DEFAULT
    if settings.anthropic_api_key:
        return ANTHROPIC_DEFAULT
    logger.warning(
        "no provider key set (OPENAI_API_KEY, ANTHROPIC_API_KEY) and no BRIDGE_MODEL: "
        "serving the scripted demo model %s",
        DEMO_MODEL,
    )
    return DEMO_MODEL


class _WithOptions:
    """A provider whose requests carry a model's options (BRIDGE_MODEL_OPTIONS)."""

    def __init__(self, provider: Provider, options: ModelOptions) -> None:
        self.name = provider.name
        self._provider = provider
        self._options = options

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        return self._provider.stream(replace(request, options=self._options))

    def accepts_prefill(self, request: ModelRequest) -> bool:
        return accepts_prefill(self._provider, replace(request, options=self._options))

    def reattaches(self, request: ModelRequest) -> bool:
        return reattaches(self._provider, replace(request, options=self._options))

    def reattach(self, request: ModelRequest, response_id: str) -> AsyncIterator[ProviderEvent]:
        reattach: Any = getattr(self._provider, "reattach")  # noqa: B009 (reattaches said so)
        events: AsyncIterator[ProviderEvent] = reattach(
            replace(request, options=self._options), response_id
        )
        return events

    async def aclose(self) -> None:
        """The wrapped provider belongs to the registry, which closes it."""


def _endpoint_provider(
    name: str, endpoint: Endpoint, timeout: float, http: ProviderHTTP, max_event_bytes: int
) -> Provider:
    if ":" in name or not name.strip():
        raise ValueError(f"BRIDGE_ENDPOINTS name {name!r} must be non-empty and have no ':'")
    key = os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""
    if endpoint.api_key_env and not key:
        logger.warning("endpoint %s: %s is not set", name, endpoint.api_key_env)
    from bridge.providers.openai_chat import OpenAIChatProvider
    from bridge.providers.openai_responses import OpenAIResponsesProvider

    kind = OpenAIResponsesProvider if endpoint.api == "responses" else OpenAIChatProvider
    return kind(
        api_key=key or PLACEHOLDER_KEY,
        base_url=endpoint.base_url,
        timeout=timeout,
        http=http,
        max_event_bytes=max_event_bytes,
    )


def load_provider(entry: str) -> tuple[str, Provider]:
    """`name=package.module:attribute` → (name, provider). The attribute is a provider (an
    object with `stream` and `aclose`) or a callable returning one, called once."""
    name, sep, path = entry.partition("=")
    module_name, colon, attribute = path.strip().partition(":")
    name = name.strip()
    if not sep or not colon or not name or ":" in name or not module_name or not attribute:
        raise ValueError(
            f"BRIDGE_PROVIDERS entry {entry!r} must look like name=package.module:attribute"
        )
    target: object = importlib.import_module(module_name)
    for step in attribute.split("."):
        target = getattr(target, step)
    provider = target if hasattr(target, "stream") else target() if callable(target) else None
    if provider is None or not hasattr(provider, "stream") or not hasattr(provider, "aclose"):
        raise ValueError(f"{path} is not a provider (an object with stream() and aclose())")
    return name, cast("Provider", provider)


class ProviderRegistry:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        default_model: str,
        allowed_models: Sequence[str] | None = None,
        model_options: Mapping[str, ModelOptions] | None = None,
        open_providers: Sequence[str] = (),
    ) -> None:
        self.providers = dict(providers)
        self._model_options = dict(model_options or {})
        self.default_model = default_model
        # The default model is always allowed: a request that names none must be served.
        self.allowed_models: list[str] = list(
            dict.fromkeys([default_model, *(allowed_models or [])])
        )
        self.open_providers = frozenset(open_providers)
        """Providers registered by name (code, BRIDGE_PROVIDERS): any model of theirs."""

    @classmethod
    def from_settings(
        cls, settings: Settings, extra: Mapping[str, Provider] | None = None
    ) -> ProviderRegistry:
        """The built-in providers the settings configure, then those named by
        BRIDGE_PROVIDERS, then `extra` (given in code); a later one replaces an earlier one
        of the same name."""
        providers: dict[str, Provider] = {
            "demo": DemoProvider(token_delay=settings.bridge_demo_token_delay_ms / 1000)
        }
        timeout = settings.provider_timeout_seconds
        http = settings.bridge_provider_http
        max_event_bytes = settings.bridge_provider_max_event_bytes
        if settings.openai_api_key or settings.openai_base_url:
            # Each SDK is imported only when its provider is configured (start-up time).
            from bridge.providers.openai_chat import OpenAIChatProvider
            from bridge.providers.openai_responses import OpenAIResponsesProvider

            key = settings.openai_api_key or PLACEHOLDER_KEY
            base_url = settings.openai_base_url
            providers["openai"] = OpenAIResponsesProvider(
                api_key=key,
                base_url=base_url,
                timeout=timeout,
                http=http,
                max_event_bytes=max_event_bytes,
            )
            providers["openai-chat"] = OpenAIChatProvider(
                api_key=key,
                base_url=base_url,
                timeout=timeout,
                http=http,
                max_event_bytes=max_event_bytes,
            )
        if settings.azure_openai_api_key and settings.azure_openai_endpoint:
            import openai
            from openai import AsyncAzureOpenAI

            from bridge.providers.openai_chat import OpenAIChatProvider

            providers["azure"] = OpenAIChatProvider(
                api_key=settings.azure_openai_api_key,
                timeout=timeout,
                max_event_bytes=max_event_bytes,
                client=AsyncAzureOpenAI(
                    api_key=settings.azure_openai_api_key,
                    azure_endpoint=settings.azure_openai_endpoint,
                    api_version=settings.openai_api_version,
                    timeout=sdk_timeout(timeout),
                    http_client=sdk_http_client(openai, http),
                ),
            )
        for name, endpoint in settings.bridge_endpoints.items():
            providers[name] = _endpoint_provider(name, endpoint, timeout, http, max_event_bytes)
        if settings.anthropic_api_key:
            # Imported only when configured: the SDK takes seconds to import, and a bridge
            # that serves no Anthropic model should not start that much slower.
            from bridge.providers.anthropic import AnthropicProvider

            providers["anthropic"] = AnthropicProvider(
                api_key=settings.anthropic_api_key,
                base_url=settings.anthropic_base_url,
                timeout=timeout,
                http=http,
                max_event_bytes=max_event_bytes,
            )
        registered: list[str] = []
        for entry in settings.bridge_providers:
            name, provider = load_provider(entry)
            providers[name] = provider
            registered.append(name)
        providers.update(extra or {})
        registered.extend(extra or {})
        registry = cls(
            providers,
            default_model=default_model(settings),
            allowed_models=settings.bridge_models or None,
            model_options={
                model: ModelOptions(**options.model_dump())
                for model, options in settings.bridge_model_options.items()
            },
            open_providers=registered,
        )
        # Before any request: the SDK clients made so far have opened no connection yet.
        registry.check_servable()
        return registry

    def check_servable(self) -> None:
        """Raises ModelConfigError naming every allowed model no provider here can serve."""
        problems = []
        for model_string in self.allowed_models:
            try:
                self.resolve(model_string)
            except ModelNotAllowed as exc:
                problems.append(f"{model_string}: {exc.message}")
        if problems:
            raise ModelConfigError(
                "BRIDGE_MODEL / BRIDGE_MODELS name models this server cannot serve: "
                + "; ".join(problems)
            )

    @property
    def configured(self) -> list[str]:
        """Names of the providers that can serve requests."""
        return sorted(self.providers)

    def resolve(self, model_string: str) -> tuple[Provider, str]:
        """The provider and its own model name for "provider:model"."""
        name, model = parse_model_string(model_string)
        provider = self.providers.get(name)
        if provider is not None:
            return provider, model
        if name in _SETUP_HINTS:
            raise ModelNotAllowed(
                f'provider "{name}" is not configured on this server: {_SETUP_HINTS[name]}'
            )
        raise ModelNotAllowed(
            f'unknown provider "{name}" in model "{model_string}" '
            f"(providers: {', '.join(sorted({*KNOWN_PROVIDERS, *self.providers}))})"
        )

    def choose(self, requested: str | None) -> tuple[Provider, str, str]:
        """The model a request asked for (or the default), checked against the allowlist:
        (provider, provider's model name, "provider:model")."""
        model_string = requested or self.default_model
        provider_name = model_string.partition(":")[0].strip()
        if model_string not in self.allowed_models and provider_name not in self.open_providers:
            raise ModelNotAllowed(
                f'model "{model_string}" is not allowed; choose one of: '
                + ", ".join(self.allowed_models)
            )
        provider, model = self.resolve(model_string)
        options = self._model_options.get(model_string)
        if options is not None:
            provider = _WithOptions(provider, options)
        return provider, model, model_string

    async def aclose(self) -> None:
        for name, provider in self.providers.items():
            try:
                await provider.aclose()
            except Exception:  # closing one must not keep the others open
                logger.exception("closing provider %s failed", name)
