"""`openai:<model>`: the OpenAI Responses API, in three modules: `client.py` (the
provider, the SDK call, the error mapping both OpenAI providers share), `request.py`
(UI messages and tools → the request) and `events.py` (stream events → provider
events)."""

from bridge.providers.openai_responses.client import (
    OpenAIResponsesProvider,
    make_openai_client,
    openai_error,
)
from bridge.providers.openai_responses.request import is_reasoning_model, to_tool

__all__ = [
    "OpenAIResponsesProvider",
    "is_reasoning_model",
    "make_openai_client",
    "openai_error",
    "to_tool",
]
