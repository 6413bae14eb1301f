"""Compacted replay: the folded prefix builds the same message as the raw chunks, at every cut,
and live chunks after the cut apply to it exactly as they would have to the raw prefix."""

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


@settings(max_examples=300, deadline=None)
@given(rng=st.randoms(use_true_random=False), data=st.data())
def test_compact_prefix_then_live_builds_the_same_message(
    rng: random.Random, data: st.DataObject
) -> None:
    encoded = [encode_chunk(chunk) for chunk in random_chunks(rng)]
    cut = data.draw(st.integers(0, len(encoded)), label="cut")
    expected_at_cut = _state(_fold(encoded[:cut]))
    folded = compact(encoded[:cut])
    assert len(folded) <= cut
    resumed = _fold(folded)
    assert _state(resumed) == expected_at_cut
    for raw in encoded[cut:]:  # the live part, applied to the compacted state
        resumed.apply(parse_chunk(raw))
    assert _state(resumed) == _state(_fold(encoded))


def test_compact_merges_each_blocks_deltas_into_one() -> None:
    chunks = [
        c.StartChunk(message_id="m"),
        c.StartStepChunk(),
        c.ReasoningStartChunk(id="r"),
        *[c.ReasoningDeltaChunk(id="r", delta=f"r{i} ") for i in range(50)],
        c.ReasoningEndChunk(id="r"),
        c.TextStartChunk(id="t"),
        c.ToolInputStartChunk(tool_call_id="call", tool_name="lookup"),
        *[
            chunk
            for i in range(100)
            for chunk in (
                c.TextDeltaChunk(id="t", delta=f"w{i} "),
                c.ToolInputDeltaChunk(tool_call_id="call", input_text_delta="" if i else '{"q":"'),
            )
        ],
    ]
    folded = compact([encode_chunk(chunk) for chunk in chunks])
    types = [orjson.loads(raw)["type"] for raw in folded]
    assert types == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "tool-input-start",
        "text-delta",
        "tool-input-delta",
    ]
    assert orjson.loads(folded[7])["delta"] == "".join(f"w{i} " for i in range(100))
    # The text block is still open: a live delta after the cut lands in the same part.
    resumed = _fold([*folded, encode_chunk(c.TextDeltaChunk(id="t", delta="more"))])
    assert resumed.to_dict()["parts"][2]["text"].endswith("w99 more")


@pytest.mark.parametrize(
    "chunk",
    [
        c.TextDeltaChunk(id="t", delta="b", provider_metadata={"p": {"k": 1}}),
        c.ResetStepChunk(),
        c.FinishStepChunk(),
    ],
)
def test_compact_never_merges_across_a_chunk_the_client_reads(chunk: c.UIMessageChunk) -> None:
    chunks = [
        c.StartChunk(message_id="m"),
        c.StartStepChunk(),
        c.TextStartChunk(id="t"),
        c.TextDeltaChunk(id="t", delta="a"),
        chunk,
        c.TextDeltaChunk(id="t", delta="c"),
    ]
    encoded = [encode_chunk(item) for item in chunks]
    assert compact(encoded) == encoded


def test_compact_passes_unknown_bytes_through() -> None:
    assert compact([b"not json", b"[1]", b'{"no":"type"}']) == [
        b"not json",
        b"[1]",
        b'{"no":"type"}',
    ]
