"""The fake OpenAI server in a process of its own, so the benchmark measures the bridge.

python -m bench.fake_server --port P --tokens T --token-delay-ms D
"""

from __future__ import annotations

import argparse

import uvicorn

from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Step, Text


class BenchFake(OpenAIFake):
    """Every request gets the same answer of `tokens` one-word deltas."""

    def __init__(self, tokens: int, token_delay: float) -> None:
        super().__init__(token_delay=token_delay)
        self._answer = ["tok "] * tokens

    def default_turn(self) -> list[Step]:
        return [Text(self._answer)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--token-delay-ms", type=float, default=2.0)
    args = parser.parse_args()
    fake = BenchFake(args.tokens, args.token_delay_ms / 1000)
    uvicorn.run(fake.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
