"""Micro-benchmark of the provider stream path: CPU the bridge spends turning a provider's
event stream into provider events, per 10k upstream events.

    python -m bench.provider_parse [--events 20000] [--rounds 5] [--paths openai,anthropic]
        [--http aiohttp|httpx]

Each path streams one answer of N one-word text deltas from the fake server (no pacing)
through the real provider class and its SDK. The fake server runs in a thread of this
process; only the CPU time of the thread that consumes the stream (the event loop, where
the SDK reads and parses) is counted, so the server's own work is left out. Prints the
best and median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.providers._sdk_http import ProviderHTTP
from bridge.providers.anthropic import AnthropicProvider
from bridge.providers.base import ModelRequest, Provider, TextDelta
from bridge.providers.openai_chat import OpenAIChatProvider
from bridge.providers.openai_responses import OpenAIResponsesProvider
from protocol.messages import UIMessage
from tests.fakes.anthropic_server import AnthropicFake
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import ScriptedFake, Step, Text


@dataclass(frozen=True)
class Path:
    name: str
    make_fake: Callable[[], ScriptedFake]
    make_provider: Callable[[ScriptedFake, ProviderHTTP], Provider]


def _openai_url(fake: ScriptedFake) -> str:
    return fake.url + "/v1"


PATHS = {
    "openai": Path(
        "openai (Responses)",
        OpenAIFake,
        lambda fake, http: OpenAIResponsesProvider(
            api_key="k", base_url=_openai_url(fake), http=http
        ),
    ),
    "openai-chat": Path(
        "openai-chat (Chat Completions)",
        OpenAIFake,
        lambda fake, http: OpenAIChatProvider(api_key="k", base_url=_openai_url(fake), http=http),
    ),
    "anthropic": Path(
        "anthropic (Messages)",
        AnthropicFake,
        lambda fake, http: AnthropicProvider(api_key="k", base_url=fake.url, http=http),
    ),
}


def _request() -> ModelRequest:
    user = UIMessage.model_validate(
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "go"}]}
    )
    return ModelRequest(model="gpt-test", messages=[user])


async def _one_round(provider: Provider, fake: ScriptedFake, events: int) -> float:
    """CPU seconds of this thread to consume one answer of `events` text deltas."""
    steps: list[Step] = [Text(["tok "] * events)]
    fake.enqueue(steps)
    deltas = 0
    started = time.thread_time()
    async for event in provider.stream(_request()):
        if isinstance(event, TextDelta):
            deltas += 1
    spent = time.thread_time() - started
    if deltas != events:
        raise RuntimeError(f"expected {events} text deltas, got {deltas}")
    return spent


async def measure(path: Path, events: int, rounds: int, http: ProviderHTTP) -> list[float]:
    """CPU seconds per 10k events, one figure per round (after one warm-up round)."""
    with path.make_fake() as fake:
        provider = path.make_provider(fake, http)
        try:
            await _one_round(provider, fake, min(events, 1000))  # warm-up: imports, pool
            return [
                await _one_round(provider, fake, events) * 10_000 / events for _ in range(rounds)
            ]
        finally:
            await provider.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument(
        "--http", choices=["aiohttp", "httpx"], default="aiohttp", help="BRIDGE_PROVIDER_HTTP"
    )
    args = parser.parse_args()
    print(
        f"CPU seconds per 10k upstream events ({args.events} events x {args.rounds} rounds,"
        f" HTTP stack: {args.http})"
    )
    for key in args.paths.split(","):
        path = PATHS[key]
        figures = asyncio.run(measure(path, args.events, args.rounds, args.http))
        print(f"  {path.name:32s} best {min(figures):.3f}  median {statistics.median(figures):.3f}")


if __name__ == "__main__":
    main()
