"""The continuation of a taken-over step's open text part (bridge/generation/prefill.py):
which partial steps can be continued, and how the continuation's events become chunks of
the part the client has open."""

from __future__ import annotations

from typing import Any

import orjson

from bridge.generation.prefill import PrefillTransformer, open_text_tail
from bridge.providers import base as ev
from protocol.chunks import encode_chunk
from protocol.messages import UIMessage


def _message(*parts: dict[str, Any]) -> UIMessage:
    return UIMessage.model_validate({"id": "m1", "role": "assistant", "parts": list(parts)})


STEP = {"type": "step-start"}


def _chunks(transformer: PrefillTransformer, events: list[ev.ProviderEvent]) -> list[Any]:
    out = [chunk for event in events for chunk in transformer.transform(event)]
    out += list(transformer.close_open_blocks())
    return [orjson.loads(encode_chunk(chunk)) for chunk in out]


def test_open_text_tail_is_the_trailing_whitespace_of_one_open_text_part() -> None:
    text = {"type": "text", "text": "Hello there \n", "state": "streaming"}
    assert open_text_tail(_message(STEP, text)) == " \n"
    assert open_text_tail(_message(STEP, {**text, "text": "Hello"})) == ""
    # An earlier, finished step does not count: only the open one.
    done = {"type": "text", "text": "Earlier.", "state": "done"}
    assert open_text_tail(_message(STEP, done, STEP, text)) == " \n"


def test_open_text_tail_refuses_every_other_shape() -> None:
    text = {"type": "text", "text": "Hello", "state": "streaming"}
    reasoning = {"type": "reasoning", "text": "Hm.", "state": "done"}
    source = {"type": "source-url", "sourceId": "s1", "url": "https://example.com"}
    assert open_text_tail(_message(STEP, {**text, "state": "done"})) is None  # text-end logged
    assert open_text_tail(_message(STEP, reasoning, text)) is None  # a thinking block
    assert open_text_tail(_message(STEP, text, source)) is None
    assert open_text_tail(_message(STEP)) is None  # nothing to continue
    assert open_text_tail(_message(STEP, text, {**text, "text": "again"})) is None


def test_prefill_continuation_goes_on_in_the_open_part_without_the_repeated_space() -> None:
    transformer = PrefillTransformer(1, None, "s1-0", " ")
    chunks = _chunks(
        transformer,
        [
            ev.StreamOpened(),
            ev.TextStart("0"),
            ev.TextDelta("0", " "),
            ev.TextDelta("0", " world"),
            ev.TextEnd("0"),
            ev.StepFinished("stop"),
        ],
    )
    # The first delta repeated the logged space; the rest (its own space included) streams.
    assert chunks == [
        {"type": "text-delta", "id": "s1-0", "delta": " world"},
        {"type": "text-end", "id": "s1-0"},
    ]


def test_prefill_continuation_keeps_whitespace_the_log_does_not_hold() -> None:
    transformer = PrefillTransformer(0, None, "s0-3", "\n")
    chunks = _chunks(
        transformer, [ev.TextStart("0"), ev.TextDelta("0", "\n\nNext"), ev.StepFinished("stop")]
    )
    assert chunks == [
        {"type": "text-delta", "id": "s0-3", "delta": "\nNext"},
        {"type": "text-end", "id": "s0-3"},
    ]


def test_prefill_continuation_that_calls_a_tool_first_ends_the_text_part() -> None:
    transformer = PrefillTransformer(0, None, "s0-0", "")
    chunks = _chunks(
        transformer,
        [
            ev.ToolInputStart("call-1", "weather"),
            ev.ToolCall("call-1", "weather", '{"city": "Paris"}'),
            ev.TextStart("0"),
            ev.TextDelta("0", "After."),
            ev.StepFinished("tool-calls"),
        ],
    )
    types = [(c["type"], c.get("id")) for c in chunks]
    # The open part ends before the call; a later block with the part's id is kept apart.
    assert types[0] == ("text-end", "s0-0")
    assert ("text-start", "s0-0c") in types and ("text-delta", "s0-0c") in types
    assert [c["type"] for c in chunks].count("text-end") == 2


def test_prefill_continuation_with_nothing_more_closes_the_part() -> None:
    transformer = PrefillTransformer(2, None, "s2-1", "")
    assert _chunks(transformer, [ev.StepFinished("stop")]) == [{"type": "text-end", "id": "s2-1"}]
