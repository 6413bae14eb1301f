"""`anthropic:<model>`: the Anthropic Messages API, in three modules: `client.py` (the
provider, the SDK call, the error mapping), `request.py` (UI messages and tools → the
request) and `events.py` (stream events → provider events)."""

from bridge.providers.anthropic.client import AnthropicProvider

__all__ = ["AnthropicProvider"]
