"""Compacted replay: every compacted chunk stands for a contiguous range of offsets, and the
state after it is the raw log's state at its offset (so any offset it carries resumes
exactly); the live chunks after any cut apply to it as they would to the raw prefix."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import chunks as c
from protocol.assembler import MessageAssembler
from protocol.chunks import encode_chunk, parse_chunk
from protocol.compact import compact
from tests.test_protocol_assembler import random_chunks


def _fold(encoded: list[bytes]) -> MessageAssembler:
    assembler = MessageAssembler()
    for raw in encoded:
        assembler.apply(parse_chunk(raw))
    return assembler


def _state(assembler: MessageAssembler) -> tuple[object, ...]:
    return (assembler.to_dict(), assembler.finish_reason, assembler.aborted, assembler.error_text)


@settings(max_examples=200, deadline=None)
@given(rng=st.randoms(use_true_random=False), data=st.data())
def test_compact_every_offset_it_carries_is_a_raw_prefix(
    rng: random.Random, data: st.DataObject
) -> None:
    encoded = [encode_chunk(chunk) for chunk in random_chunks(rng)]
    cut = data.draw(st.integers(0, len(encoded)), label="cut")
    folded = compact(enumerate(encoded[:cut]))
    assert len(folded) <= cut
    offsets = [offset for offset, _ in folded]
    assert offsets == sorted(set(offsets))
    resumed = MessageAssembler()
    for offset, raw in folded:
        resumed.apply(parse_chunk(raw))
        # A client holding this chunk holds the raw log up to `offset`, no more, no less.
        assert _state(resumed) == _state(_fold(encoded[: offset + 1]))
    for raw in encoded[cut:]:  # the live part, applied to the compacted state
        resumed.apply(parse_chunk(raw))
    assert _state(resumed) == _state(_fold(encoded))


def test_compact_merges_a_run_of_deltas_into_one() -> None:
    chunks = [
        c.StartChunk(message_id="m"),
        c.StartStepChunk(),
        c.ReasoningStartChunk(id="r"),
        *[c.ReasoningDeltaChunk(id="r", delta=f"r{i} ") for i in range(50)],
        c.ReasoningEndChunk(id="r"),
        c.TextStartChunk(id="t"),
        *[c.TextDeltaChunk(id="t", delta=f"w{i} ") for i in range(100)],
    ]
    folded = compact(enumerate(encode_chunk(chunk) for chunk in chunks))
    types = [orjson.loads(raw)["type"] for _, raw in folded]
    assert types == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
    ]
    assert [offset for offset, _ in folded] == [0, 1, 2, 52, 53, 54, 154]
    assert orjson.loads(folded[-1][1])["delta"] == "".join(f"w{i} " for i in range(100))
    # The text block is still open: a live delta after the cut lands in the same part.
    resumed = _fold(
        [raw for _, raw in folded] + [encode_chunk(c.TextDeltaChunk(id="t", delta="x"))]
    )
    assert resumed.to_dict()["parts"][2]["text"].endswith("w99 x")


@pytest.mark.parametrize(
    "between",
    [
        c.TextDeltaChunk(id="t", delta="b", provider_metadata={"p": {"k": 1}}),
        c.ToolInputDeltaChunk(tool_call_id="call", input_text_delta="{"),
        c.DataChunk(type="data-progress", data={"n": 1}),
    ],
)
def test_compact_never_merges_across_another_chunk(between: c.UIMessageChunk) -> None:
    chunks = [
        c.StartChunk(message_id="m"),
        c.TextStartChunk(id="t"),
        c.TextDeltaChunk(id="t", delta="a"),
        between,
        c.TextDeltaChunk(id="t", delta="c"),
    ]
    encoded = [encode_chunk(item) for item in chunks]
    assert compact(enumerate(encoded)) == list(enumerate(encoded))


def test_compact_passes_what_is_not_a_delta_through() -> None:
    odd = [(0, b"not json"), (1, b'{"type":"text-delta"}'), (2, b'{"no":"type"}')]
    assert compact(odd) == odd
