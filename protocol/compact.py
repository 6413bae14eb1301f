"""Compacted replay: a run of log entries folded into as few chunks as the protocol allows.

A client that reloads a page (or a second device) replays a generation from `start`. Sent
raw, that is one event per token: thousands of events for a long answer with reasoning.
The client, though, only needs the *state* those chunks built. `compact` keeps every chunk
except that consecutive deltas of one text, reasoning or tool-input block (the bulk of any
log) become a single delta.

Only deltas that follow each other directly in the log merge, so every compacted chunk
stands for a contiguous range of offsets and carries the last of them: a client that holds
compacted chunk k holds exactly the state of the raw log up to that offset, and a
`Last-Event-ID` taken anywhere in a compacted replay resumes exactly, with no chunk applied
twice. A delta that carries its own `providerMetadata` never merges (the client may read
it); anything else between two deltas ends the run.

Works on the encoded chunks (the log's bytes), not on models: decoded once, re-encoded only
where deltas merged.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

_DELTA_FIELDS: dict[str, tuple[str, str]] = {
    # chunk type -> (the field naming its block, the field holding the delta)
    "text-delta": ("id", "delta"),
    "reasoning-delta": ("id", "delta"),
    "tool-input-delta": ("toolCallId", "inputTextDelta"),
}


def _delta_of(raw: bytes) -> tuple[tuple[str, str], str, dict[str, object], str] | None:
    """(block key, delta field, chunk, delta) of a mergeable delta chunk, else None."""
    if b'-delta"' not in raw:  # cheap pre-check: most other chunks are never parsed
        return None
    try:
        chunk = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(chunk, dict) or len(chunk) != 3:  # type, block id, delta: no more
        return None
    kind = chunk.get("type")
    fields = _DELTA_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return None
    block, delta = chunk.get(fields[0]), chunk.get(fields[1])
    if not isinstance(block, str) or not isinstance(delta, str):
        return None
    return (str(kind), block), fields[1], chunk, delta


def compact(entries: Iterable[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """`(offset, chunk)` entries in log order → `(last offset covered, chunk)`, fewer."""
    out: list[tuple[int, bytes]] = []
    run_key: tuple[str, str] | None = None
    run_field = ""
    run_chunk: dict[str, object] = {}
    run_pieces: list[str] = []
    run_first = b""
    run_last = -1

    def flush() -> None:
        if run_key is None:
            return
        if len(run_pieces) == 1:
            out.append((run_last, run_first))
        else:
            run_chunk[run_field] = "".join(run_pieces)
            out.append((run_last, orjson.dumps(run_chunk)))

    for offset, raw in entries:
        delta = _delta_of(raw)
        if delta is not None and delta[0] == run_key:
            run_pieces.append(delta[3])
            run_last = offset
            continue
        flush()
        run_key = None
        if delta is None:
            out.append((offset, raw))
            continue
        run_key, run_field, run_chunk, piece = delta
        run_pieces = [piece]
        run_first, run_last = raw, offset
    flush()
    return out
