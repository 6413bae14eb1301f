"""Values of a message part that are computed when the message is read, not per chunk: a
growing text (appending is O(1)), a streaming tool input's raw text as of one delta, and its
partial-JSON value. They keep the assembler O(1) per token."""

from __future__ import annotations

import re
from typing import Any

from protocol.js_values import UNDEFINED
from protocol.partial_json import parse_partial_json

__all__ = ["Lazy", "PartialInput", "Text", "TextPrefix", "fix_surrogates", "materialise"]


class Lazy:
    __slots__ = ()

    def value(self) -> Any:
        raise NotImplementedError


class Text(Lazy):
    """A growing string: appending is O(1), joining happens when the text is read."""

    __slots__ = ("_pieces", "length")

    def __init__(self, initial: str = "") -> None:
        self._pieces = [initial]
        self.length = len(initial)

    def append(self, piece: str) -> None:
        self._pieces.append(piece)
        self.length += len(piece)

    def raw(self) -> str:
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        return self._pieces[0]

    def value(self) -> str:
        return fix_surrogates(self.raw())


_SURROGATE = re.compile("[\ud800-\udfff]")


def fix_surrogates(text: str) -> str:
    """Pairs a surrogate pair split across two deltas (JavaScript strings, being UTF-16, join
    them by themselves) and replaces unpaired ones with U+FFFD, so the text stays encodable."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class TextPrefix(Lazy):
    """The first `length` characters of a `Text` (the raw tool input as of one delta)."""

    __slots__ = ("_length", "_text")

    def __init__(self, text: Text) -> None:
        self._text = text
        self._length = text.length

    def value(self) -> str:
        full = self._text.raw()
        return fix_surrogates(full if len(full) == self._length else full[: self._length])


class PartialInput(Lazy):
    __slots__ = ("_raw", "_text_encoding")

    def __init__(self, raw: TextPrefix, text_encoding: bool) -> None:
        self._raw = raw
        self._text_encoding = text_encoding

    def value(self) -> Any:
        text = self._raw.value()
        return text if self._text_encoding else parse_partial_json(text)


def materialise(part: dict[str, Any]) -> dict[str, Any]:
    """The part as plain JSON values; a lazy value that is `undefined` leaves its key out."""
    out: dict[str, Any] = {}
    for key, value in part.items():
        if isinstance(value, Lazy):
            value = value.value()
            if value is UNDEFINED:
                continue
        out[key] = value
    return out
