"""protocol.sse: event framing, headers and the incremental parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.chunks import TextDeltaChunk, encode_chunk
from protocol.sse import (
    DONE_EVENT,
    UI_MESSAGE_STREAM_HEADERS,
    SSEEvent,
    SSEParser,
    comment,
    encode_event,
)


def test_headers() -> None:
    assert UI_MESSAGE_STREAM_HEADERS == {
        "content-type": "text/event-stream",
        "cache-control": "no-cache, no-transform",
        "connection": "keep-alive",
        "x-vercel-ai-ui-message-stream": "v1",
        "x-accel-buffering": "no",
    }


def test_encode_event() -> None:
    data = encode_chunk(TextDeltaChunk(id="t1", delta="hi"))
    assert encode_event(data) == b'data: {"type":"text-delta","id":"t1","delta":"hi"}\n\n'
    assert encode_event(data, 7) == b'id: 7\ndata: {"type":"text-delta","id":"t1","delta":"hi"}\n\n'
    assert encode_event(b"{}", "1-0") == b"id: 1-0\ndata: {}\n\n"
    assert encode_event(b"{}", 0) == b"id: 0\ndata: {}\n\n"


def test_done_and_comment() -> None:
    assert DONE_EVENT == b"data: [DONE]\n\n"
    assert comment("keep-alive") == b": keep-alive\n\n"
    assert comment() == b": \n\n"


@pytest.mark.parametrize("text", ["a\nb", "a\r\nb", "a\rb", "a\n", "\n\n\n"])
def test_comment_is_newline_safe(text: str) -> None:
    encoded = comment(text)
    assert encoded.endswith(b"\n\n")
    assert b"\n\n" not in encoded[:-2]  # no blank line inside: nothing can be dispatched
    events = SSEParser().feed(encoded + b"data: x\n\n")
    assert [e.data for e in events][-1] == "x"
    assert all(e.data is None for e in events[:-1])


@pytest.mark.parametrize(
    "data",
    [b'{"a":\n1}', b"line1\r\nline2", b"a\rb", b"\n", b"x\n\ny", b"trailing\n"],
)
def test_a_line_break_in_data_never_splits_the_event(data: bytes) -> None:
    encoded = encode_event(data, 3)
    assert encoded.endswith(b"\n\n")
    assert b"\n\n" not in encoded[:-2]
    events = SSEParser().feed(encoded)
    assert len(events) == 1
    # SSE joins data lines with LF: the data survives, CR/CRLF normalised to LF.
    expected = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").decode()
    assert events[0] == SSEEvent(data=expected, id="3")


@pytest.mark.parametrize("bad_id", ["a\nb", "a\rb", "a\0b"])
def test_event_id_must_be_one_line(bad_id: str) -> None:
    with pytest.raises(ValueError, match="event id"):
        encode_event(b"{}", bad_id)


# --- parser ------------------------------------------------------------------------------------


def test_parser_basic() -> None:
    parser = SSEParser()
    events = parser.feed(b"id: 1\ndata: one\n\ndata: two\n\n: ping\n\ndata: [DONE]\n\n")
    assert events == [
        SSEEvent(data="one", id="1"),
        SSEEvent(data="two", id="1"),  # the last event id persists (SSE rule)
        SSEEvent(data=None, comment="ping"),
        SSEEvent(data="[DONE]", id="1"),
    ]
    assert parser.last_event_id == "1"


def test_parser_fields() -> None:
    events = SSEParser().feed(
        b"event: update\ndata:no-space\ndata:  two spaces\nretry: 5\nunknown: x\ndata\n\n"
    )
    assert events == [SSEEvent(data="no-space\n two spaces\n", event="update")]


def test_parser_crlf_and_cr() -> None:
    events = SSEParser().feed(b"id: 9\r\ndata: a\r\n\r\ndata: b\r\rdata: c\n\r\n")
    assert [(e.id, e.data) for e in events] == [("9", "a"), ("9", "b"), ("9", "c")]


def test_parser_crlf_split_across_feeds() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    # The LF completes the CRLF; it must not count as a second (blank) line.
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r\n") == [SSEEvent(data="a\nb")]


def test_parser_utf8_split_inside_a_character() -> None:
    raw = encode_event("data: é😀".encode())
    parser = SSEParser()
    events = [event for byte in raw for event in parser.feed(bytes([byte]))]
    assert events == [SSEEvent(data="data: é😀")]


def test_parser_bom_and_empty_events() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef\xbb") == []
    assert parser.feed(b"\xbfdata: x\n\n\n\nid: 4\n\ndata:\n\n") == [
        SSEEvent(data="x"),
        SSEEvent(data="", id="4"),  # `id:` alone dispatches nothing but is remembered
    ]


def test_parser_ignores_id_with_nul() -> None:
    assert SSEParser().feed(b"id: 1\ndata: a\n\nid: x\0y\ndata: b\n\n") == [
        SSEEvent(data="a", id="1"),
        SSEEvent(data="b", id="1"),
    ]


def test_unterminated_event_is_not_returned() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: complete\n\ndata: cut off") == [SSEEvent(data="complete")]
    assert parser.feed(b"\n") == []  # still no blank line


def test_comment_forms() -> None:
    assert SSEParser().feed(b":\n:no space\n:  two\n\n") == [
        SSEEvent(data=None, comment=""),
        SSEEvent(data=None, comment="no space"),
        SSEEvent(data=None, comment=" two"),
    ]


_payloads = st.lists(
    st.tuples(
        st.text(
            alphabet=st.characters(exclude_characters="\r\n\0", exclude_categories=("Cs",)),
            max_size=20,
        ),
        st.none() | st.integers(0, 10**6),
    ),
    max_size=8,
)


@given(payloads=_payloads, cuts=st.lists(st.integers(0, 400), max_size=10), heartbeat=st.booleans())
def test_parser_handles_any_split(
    payloads: list[tuple[str, int | None]], cuts: list[int], heartbeat: bool
) -> None:
    body = (
        b"".join(
            (comment("keep-alive") if heartbeat else b"") + encode_event(text.encode(), event_id)
            for text, event_id in payloads
        )
        + DONE_EVENT
    )
    parser = SSEParser()
    events: list[SSEEvent] = []
    last = 0
    for cut in [*sorted({min(cut, len(body)) for cut in cuts}), len(body)]:
        events.extend(parser.feed(body[last:cut]))
        last = cut
    data = [event for event in events if event.data is not None]
    assert [event.data for event in data] == [text for text, _ in payloads] + ["[DONE]"]
    expected_ids: list[str | None] = []
    current: str | None = None
    for _, event_id in payloads:
        if event_id is not None:
            current = str(event_id)
        expected_ids.append(current)
    assert [event.id for event in data[:-1]] == expected_ids
    assert len(events) - len(data) == (len(payloads) if heartbeat else 0)
