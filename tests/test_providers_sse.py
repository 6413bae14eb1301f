"""The SSE decoder the providers read their event streams with."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.providers._sse import EventTooLarge, SSEDecoder, SSEEvent

STREAM = (
    b": a comment before anything\n"
    b"event: message_start\n"
    b'data: {"type":"message_start","text":"h\xc3\xa9llo"}\n'
    b"\n"
    b"data: first line\n"
    b"data: second line\n"
    b"data:no space after the colon\n"
    b"\n"
    b": ping\n"
    b"\n"
    b"event: ping\n"
    b"data: {}\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)

EXPECTED: list[SSEEvent] = [
    ("message_start", b'{"type":"message_start","text":"h\xc3\xa9llo"}'),
    (None, b"first line\nsecond line\nno space after the colon"),
    ("ping", b"{}"),
    (None, b"[DONE]"),
]


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def test_sse_decoder_reads_a_whole_stream() -> None:
    assert decode(STREAM) == EXPECTED


def test_sse_decoder_events_split_at_every_byte() -> None:
    assert decode(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_sse_decoder_events_split_anywhere(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode(*chunks) == EXPECTED


@given(
    st.sampled_from([b"\r\n", b"\r", b"\n"]),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_sse_decoder_any_line_end_split_anywhere(line_end: bytes, cuts: list[int]) -> None:
    """CRLF split between CR and LF is one line end, not two (which would end the event
    early)."""
    stream = STREAM.replace(b"\n", line_end)
    bounds = [0, *sorted(min(cut, len(stream)) for cut in cuts), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode(*chunks) == EXPECTED


def test_sse_decoder_crlf_split_between_cr_and_lf() -> None:
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [(None, b"a\nb")]


def test_sse_decoder_cr_at_the_end_of_the_body_ends_the_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: last\r\r") == []  # the second CR may be half of a CRLF
    assert decoder.close() == [(None, b"last")]


def test_sse_decoder_never_returns_an_event_the_body_left_open() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"done":true}\n\ndata: {"cut":') == [(None, b'{"done":true}')]
    assert decoder.feed(b'"mid-answer"}\n') == []  # no blank line yet: not dispatched


def test_sse_decoder_event_name_applies_to_one_event_only() -> None:
    assert decode(b"event: error\ndata: 1\n\ndata: 2\n\n") == [("error", b"1"), (None, b"2")]


def test_sse_decoder_blank_lines_without_data_dispatch_nothing() -> None:
    assert decode(b"\n\n: keep-alive\n\nevent: lonely\n\n\ndata: x\n\n") == [(None, b"x")]


def test_sse_decoder_empty_data_line_is_an_event() -> None:
    assert decode(b"data:\n\n") == [(None, b"")]


def test_sse_decoder_ignores_id_retry_and_unknown_fields() -> None:
    assert decode(b"id: 7\nretry: 100\nfoo: bar\ndata: x\n\n") == [(None, b"x")]


def test_sse_decoder_skips_a_byte_order_mark_split_across_chunks() -> None:
    assert decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [(None, b"x")]


def test_sse_decoder_keeps_data_after_the_first_colon() -> None:
    assert decode(b'data: {"url":"https://x"}\n\n') == [(None, b'{"url":"https://x"}')]


# --------------------------------------------------------------------------- size


def feed_in_pieces(decoder: SSEDecoder, stream: bytes, size: int) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for start in range(0, len(stream), size):
        events += decoder.feed(stream[start : start + size])
    return events + decoder.close()


def test_sse_decoder_reads_a_4_mib_event_read_in_small_pieces() -> None:
    payload = b'{"delta":"' + b"x" * (4 * 1024 * 1024) + b'"}'
    stream = b"event: big\ndata: " + payload + b"\n\ndata: after\n\n"
    decoder = SSEDecoder(max_event_bytes=8 * 1024 * 1024)
    assert feed_in_pieces(decoder, stream, 16 * 1024) == [("big", payload), (None, b"after")]


@pytest.mark.parametrize("piece", [1024, 16 * 1024, 64 * 1024])
def test_sse_decoder_work_is_linear_in_the_bytes_read(piece: int) -> None:
    """Every byte is looked at once however the event is cut: no re-scan of what an
    unfinished event already holds (which made a 4 MiB event cost seconds)."""
    stream = b"data: " + b"y" * (1024 * 1024) + b"\ndata: z\n\n"
    decoder = SSEDecoder()
    events = feed_in_pieces(decoder, stream, piece)
    assert [len(data) for _, data in events] == [1024 * 1024 + 2]
    assert decoder.scanned == len(stream)


def test_sse_decoder_refuses_an_event_past_its_cap() -> None:
    decoder = SSEDecoder(max_event_bytes=64 * 1024)
    assert decoder.feed(b"data: " + b"a" * 60_000 + b"\n\n") != []  # under the cap
    with pytest.raises(EventTooLarge) as caught:
        feed_in_pieces(decoder, b"data: " + b"a" * 70_000 + b"\n\n", 4096)
    assert caught.value.limit == 64 * 1024


def test_sse_decoder_cap_counts_every_line_of_an_event() -> None:
    decoder = SSEDecoder(max_event_bytes=2048)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"".join(b"data: " + b"b" * 100 + b"\n" for _ in range(30)))


def test_sse_decoder_cap_holds_for_a_line_that_never_ends() -> None:
    decoder = SSEDecoder(max_event_bytes=4096)
    decoder.feed(b"data: " + b"c" * 4000)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"c" * 200)
