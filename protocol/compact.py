"""Compacted replay: a log prefix folded into as few chunks as the protocol allows.

A client that reloads a page (or a second device) replays a generation from `start`. Sent
raw, that is one event per token: thousands of events for a long answer with reasoning.
The client, though, only needs the *state* those chunks built. `compact` keeps every chunk
except the deltas, and merges each run of consecutive deltas of one text, reasoning or
tool-input block into a single delta placed where the run began.

Why the client's message comes out identical: a part is created by its `*-start` chunk
and a delta only appends to the part it names, so moving the later deltas of a block up
to its first delta changes no part's position nor its final text. Runs are cut wherever
that reasoning could fail: at a delta that carries its own `providerMetadata` (it may
overwrite the part's), at the block's end, and at every step boundary and `reset-step`
(which drops the unfinished step's parts). Blocks still open at the cut stay open with
their ids, so the live chunks that follow apply to them as usual.

Works on the encoded chunks (the log's bytes), not on models: a replay of 20,000 tokens
is decoded once and re-encoded only where deltas merged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

_DELTA_FIELDS: dict[str, tuple[str, str]] = {
    # chunk type -> (the field naming its block, the field holding the delta)
    "text-delta": ("id", "delta"),
    "reasoning-delta": ("id", "delta"),
    "tool-input-delta": ("toolCallId", "inputTextDelta"),
}
_BLOCK_OF_CLOSER: dict[str, tuple[str, str]] = {
    # a chunk that ends (or settles) a block -> (the delta type it closes, its id field)
    "text-end": ("text-delta", "id"),
    "reasoning-end": ("reasoning-delta", "id"),
    "tool-input-available": ("tool-input-delta", "toolCallId"),
    "tool-input-error": ("tool-input-delta", "toolCallId"),
}
_CUTS_EVERY_RUN = frozenset({"start-step", "finish-step", "reset-step", "abort", "error"})


@dataclass(slots=True)
class _Run:
    """Consecutive deltas of one block, to be sent as one."""

    raw: bytes
    chunk: dict[str, object]
    delta_field: str
    pieces: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        if len(self.pieces) == 1:
            return self.raw
        self.chunk[self.delta_field] = "".join(self.pieces)
        return orjson.dumps(self.chunk)


def compact(chunks: Iterable[bytes]) -> list[bytes]:
    """The chunks a client needs to reach the state `chunks` build, in order.

    Chunks that are not valid JSON objects are passed through unchanged (the log holds
    only what the producer encoded, so this is a guard, not a path)."""
    slots: list[bytes | _Run] = []
    open_runs: dict[tuple[str, str], _Run] = {}
    for raw in chunks:
        try:
            chunk = orjson.loads(raw)
        except orjson.JSONDecodeError:
            slots.append(raw)
            continue
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if not isinstance(kind, str):
            slots.append(raw)
            continue
        fields = _DELTA_FIELDS.get(kind)
        if fields is not None:
            id_field, delta_field = fields
            block, delta = chunk.get(id_field), chunk.get(delta_field)
            mergeable = (
                isinstance(block, str) and isinstance(delta, str) and len(chunk) == 3
            )  # type, id, delta: nothing else the client would read from this chunk
            if mergeable:
                key = (kind, str(block))
                run = open_runs.get(key)
                if run is None:
                    run = _Run(raw, chunk, delta_field)
                    open_runs[key] = run
                    slots.append(run)
                run.pieces.append(str(delta))
                continue
            if isinstance(block, str):
                open_runs.pop((kind, block), None)
            slots.append(raw)
            continue
        if kind in _CUTS_EVERY_RUN:
            open_runs.clear()
        else:
            closer = _BLOCK_OF_CLOSER.get(kind)
            if closer is not None:
                block = chunk.get(closer[1])
                if isinstance(block, str):
                    open_runs.pop((closer[0], block), None)
        slots.append(raw)
    return [slot.encode() if isinstance(slot, _Run) else slot for slot in slots]
