"""`openai-chat:<model>`: Chat Completions, for OpenAI-compatible servers, in three
modules: `client.py` (the provider, the SDK call, the stream read), `request.py` (UI
messages and tools → the request) and `events.py` (stream chunks → provider events)."""

from bridge.providers.openai_chat.client import OpenAIChatProvider

__all__ = ["OpenAIChatProvider"]
