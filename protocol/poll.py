"""The long-polling page: a generation's chunks after a cursor, as one JSON document.

    {"generationId": "g…", "chunks": [{"offset": 3, "chunk": {…}}, …],
     "cursor": 7, "done": false}
    {"generationId": "g…", "chunks": […], "cursor": 42, "done": true, "outcome": "finished"}
    {"generationId": null, "chunks": [], "cursor": -1, "done": true}   (nothing to read)

`cursor` is the offset of the last chunk the client holds (-1: none), exactly like the SSE
`id:` / `Last-Event-ID` and the WebSocket `sequence`; the next request sends the page's
`cursor` back. The stored chunk bytes are spliced in as they are: a page costs no JSON
parse or re-serialisation per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

__all__ = ["encode_poll_page"]


def encode_poll_page(
    generation_id: str | None,
    chunks: Iterable[tuple[int, bytes]],
    cursor: int,
    *,
    done: bool,
    outcome: str | None = None,
) -> bytes:
    """`chunks` are (offset, exact chunk JSON bytes) pairs in offset order."""
    items = b",".join(b'{"offset":%d,"chunk":' % offset + data + b"}" for offset, data in chunks)
    tail = b',"cursor":%d,"done":%s' % (cursor, b"true" if done else b"false")
    if outcome is not None:
        tail += b',"outcome":' + orjson.dumps(outcome)
    return (
        b'{"generationId":'
        + orjson.dumps(generation_id)
        + b',"chunks":['
        + items
        + b"]"
        + tail
        + b"}"
    )
