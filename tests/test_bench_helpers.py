"""The benchmark's pure helpers: its upstream's wire format, SSE splitting, lateness."""

from __future__ import annotations

import math
from typing import Any

import orjson

from bench.fake_server import answer_tokens, render_stream
from bench.workload import SSESplitter, lateness, percentile, token_ends
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Pause, Text, Turn


def _events(stream: bytes) -> list[Any]:
    events: list[Any] = []
    for payload in SSESplitter().feed(stream):
        event = orjson.loads(payload) if payload != b"[DONE]" else "[DONE]"
        if isinstance(event, dict):
            event.pop("id", None)
            event.pop("created", None)
            event.pop("model", None)
        events.append(event)
    return events


def test_bench_fake_upstream_speaks_the_test_fakes_chat_completions_format() -> None:
    tokens = answer_tokens(3)
    for include_usage in (False, True):
        opening, body, closing = render_stream(tokens, include_usage)
        body_of_request = {"model": "m", "stream_options": {"include_usage": include_usage}}
        rendered = OpenAIFake()._render_chat(Turn((Text(tokens),), 0.0), body_of_request)
        reference = b"".join(item for item in rendered if not isinstance(item, Pause))
        mine, theirs = _events(opening + b"".join(body) + closing), _events(reference)
        if include_usage:  # the prompt's token count differs by design
            for events in (mine, theirs):
                for name in ("prompt_tokens", "total_tokens"):
                    events[-2]["usage"].pop(name)
        assert mine == theirs


def test_bench_sse_splitter_joins_events_cut_across_pieces() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b'data: {"a"') == []
    assert splitter.feed(b":1}\n\ndata: [DONE]\n") == [b'{"a":1}']
    assert splitter.feed(b"\n") == [b"[DONE]"]


def test_bench_lateness_times_each_token_by_the_delta_that_completes_it() -> None:
    ends = token_ends(["ab", "cd", "ef"])  # [2, 4, 6]
    # Tokens 0 and 1 arrive together at t=10.5, token 2 alone at t=11.0; rate 2/s from t=10.
    arrivals = [(4, 10.5), (6, 11.0)]
    assert lateness(arrivals, ends, started=10.0, rate=2.0) == [0.5, 0.0, 0.0]
    # An answer cut after its first token counts only that token.
    assert lateness([(3, 10.25)], ends, started=10.0, rate=2.0) == [0.25]


def test_bench_percentile_is_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert math.isnan(percentile([], 0.5))
