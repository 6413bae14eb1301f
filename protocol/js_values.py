"""JavaScript value semantics the AI SDK client relies on, kept the same on the server:
`undefined` (the key is left out of JSON), and the client's `mergeObjects` for metadata."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["UNDEFINED", "defined", "merge_metadata", "set_value"]


class _Undefined:
    """JavaScript's `undefined`: the key is left out of the part."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()


def set_value(part: dict[str, Any], key: str, value: Any) -> None:
    """`part.key = value` where UNDEFINED removes the key (JSON drops undefined)."""
    if value is UNDEFINED:
        part.pop(key, None)
    else:
        part[key] = value


def defined(value: Any) -> Any:
    """An optional chunk field (None = absent) as a JS value."""
    return UNDEFINED if value is None else value


_UNSAFE_KEYS = frozenset({"__proto__", "constructor", "prototype"})


def _as_js_object(value: Any) -> dict[str, Any]:
    # `{...value}` in JavaScript: strings and arrays spread their indices, other
    # non-objects spread nothing.
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str | list):
        return {str(i): item for i, item in enumerate(value)}
    return {}


def merge_metadata(base: Any, overrides: Any) -> Any:
    """The client's `mergeObjects`: objects merge deeply, everything else (arrays included)
    is replaced by the override."""
    result = _as_js_object(base)
    for key, value in _as_js_object(overrides).items():
        if key in _UNSAFE_KEYS:
            continue
        current = result.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            result[key] = merge_metadata(current, value)
        else:
            result[key] = value
    return result
