"""protocol.poll: the long-poll page is built around the stored chunk bytes."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from protocol.poll import encode_poll_page


def test_poll_page_splices_the_stored_bytes_unchanged() -> None:
    # Valid JSON a re-serialiser would rewrite (spaces, \u escapes, key order).
    odd = b'{ "delta" : "caf\\u00e9",  "type":"text-delta", "id":"t1" }'
    page = encode_poll_page("gen_1", [(3, b'{"type":"start-step"}'), (4, odd)], 4, done=False)
    assert odd in page
    assert orjson.loads(page) == {
        "generationId": "gen_1",
        "chunks": [
            {"offset": 3, "chunk": {"type": "start-step"}},
            {"offset": 4, "chunk": {"type": "text-delta", "id": "t1", "delta": "café"}},
        ],
        "cursor": 4,
        "done": False,
    }


def test_poll_page_when_done_and_when_empty() -> None:
    done = orjson.loads(encode_poll_page("g", [], 9, done=True, outcome="aborted"))
    assert done == {
        "generationId": "g",
        "chunks": [],
        "cursor": 9,
        "done": True,
        "outcome": "aborted",
    }
    nothing = orjson.loads(encode_poll_page(None, [], -1, done=True))
    assert nothing == {"generationId": None, "chunks": [], "cursor": -1, "done": True}


@given(
    st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3), max_size=8),
    st.text(min_size=1, max_size=30),
)
def test_poll_page_is_valid_json_for_any_chunks(
    chunks: list[dict[str, str]], generation: str
) -> None:
    items = [(offset, orjson.dumps(chunk)) for offset, chunk in enumerate(chunks)]
    page = orjson.loads(encode_poll_page(generation, items, len(items) - 1, done=False))
    assert page["generationId"] == generation
    assert [item["chunk"] for item in page["chunks"]] == chunks
    assert [item["offset"] for item in page["chunks"]] == list(range(len(chunks)))
