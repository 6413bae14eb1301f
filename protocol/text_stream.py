"""The plain text stream protocol (`TextStreamChatTransport`, `useCompletion` text mode).

The body is just the generated text, UTF-8, no framing: the client turns every piece it
reads into a `text-delta` of one synthesized text part. Only `text-delta` chunks carry
anything for it; reasoning, tools, data, errors and metadata have no representation.
"""

from __future__ import annotations

import orjson

__all__ = ["TEXT_STREAM_HEADERS", "text_of_chunk"]

TEXT_STREAM_HEADERS: dict[str, str] = {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "connection": "keep-alive",
    "x-accel-buffering": "no",
}

# encode_chunk writes `type` first, so a delta from this service starts with this prefix.
_TEXT_DELTA_PREFIX = b'{"type":"text-delta",'
_TEXT_DELTA_TYPE = b'"text-delta"'


def text_of_chunk(chunk_json: bytes) -> bytes | None:
    """The UTF-8 text to send for one encoded chunk: its `delta` for a `text-delta`, None
    for any other chunk (and for an empty delta, which would send nothing anyway)."""
    if not chunk_json.startswith(_TEXT_DELTA_PREFIX) and _TEXT_DELTA_TYPE not in chunk_json:
        # Cheap rejection of every other chunk; the substring test keeps chunks written by
        # other producers (other key order, spaces) working.
        return None
    try:
        chunk = orjson.loads(chunk_json)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(chunk, dict) or chunk.get("type") != "text-delta":
        return None
    delta = chunk.get("delta")
    if not isinstance(delta, str) or not delta:
        return None
    return delta.encode()
