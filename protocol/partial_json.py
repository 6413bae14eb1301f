"""Partial JSON as the AI SDK client reads it.

While a tool input streams in, the client shows `input` = its text parsed as far as
possible: JSON.parse, else JSON.parse of a repaired text (cut back to the last complete
token, open strings/objects/arrays closed, a started true/false/null completed), else
undefined. The repair below follows the same rules, so both sides show the same input.
"""

from __future__ import annotations

import json
from typing import Any

from protocol.js_values import UNDEFINED

__all__ = ["parse_partial_json"]

_OBJECT_STATES = frozenset(
    {"obj_start", "obj_key", "obj_colon", "obj_value", "obj_next", "obj_comma"}
)
_ARRAY_STATES = frozenset({"arr_start", "arr_next", "arr_comma"})
_LITERALS = ("true", "false", "null")
_HEX = frozenset("0123456789abcdefABCDEF")


def _repair_json(text: str) -> str:
    stack = ["root"]
    good = -1  # index of the last character that can stay
    literal_start = 0
    hex_count = 0

    def begin_value(ch: str, i: int, then: str) -> None:
        nonlocal good, literal_start
        pushed = {'"': "str", "{": "obj_start", "[": "arr_start", "-": "num"}.get(ch)
        if pushed is None and ch in "ftn":
            pushed, literal_start = "lit", i
        elif pushed is None and ch.isascii() and ch.isdigit():
            pushed = "num"
        if pushed is None:
            return  # whitespace (or garbage) before the value
        if ch != "-":  # a lone minus sign is not a number yet
            good = i
        stack[-1] = then
        stack.append(pushed)

    def after_object_value(ch: str, i: int) -> None:
        nonlocal good
        if ch == ",":
            stack[-1] = "obj_comma"
        elif ch == "}":
            good = i
            stack.pop()

    def after_array_value(ch: str, i: int) -> None:
        nonlocal good
        if ch == ",":
            stack[-1] = "arr_comma"
        elif ch == "]":
            good = i
            stack.pop()

    def after_value(ch: str, i: int) -> None:
        if stack[-1] == "obj_next":
            after_object_value(ch, i)
        elif stack[-1] == "arr_next":
            after_array_value(ch, i)

    for i, ch in enumerate(text):
        state = stack[-1]
        if state == "str":
            if ch == '"':
                stack.pop()
                good = i
            elif ch == "\\":
                stack.append("str_esc")
            else:
                good = i
        elif state == "str_esc":
            stack.pop()
            if ch == "u":
                stack.append("str_hex")
                hex_count = 0
            else:
                good = i
        elif state == "str_hex":
            if ch in _HEX:
                hex_count += 1
                if hex_count == 4:
                    stack.pop()
                    good = i
        elif state == "num":
            if ch.isascii() and ch.isdigit():
                good = i
            elif ch in "eE-.":
                pass
            else:
                stack.pop()
                if ch in ",}]":
                    after_value(ch, i)
        elif state == "lit":
            if any(word.startswith(text[literal_start : i + 1]) for word in _LITERALS):
                good = i
            else:
                stack.pop()
                after_value(ch, i)
        elif state == "root":
            begin_value(ch, i, "done")
        elif state in ("obj_start", "obj_comma"):
            if ch == '"':
                stack[-1] = "obj_key"
            elif ch == "}" and state == "obj_start":
                good = i
                stack.pop()
        elif state == "obj_key":
            if ch == '"':
                stack[-1] = "obj_colon"
        elif state == "obj_colon":
            if ch == ":":
                stack[-1] = "obj_value"
        elif state == "obj_value":
            begin_value(ch, i, "obj_next")
        elif state == "obj_next":
            after_object_value(ch, i)
        elif state == "arr_start":
            if ch == "]":
                good = i
                stack.pop()
            else:
                begin_value(ch, i, "arr_next")
        elif state == "arr_next":
            if ch in ",]":
                after_array_value(ch, i)
            else:
                good = i
        elif state == "arr_comma":
            begin_value(ch, i, "arr_next")
        # "done": anything after the top-level value is ignored

    closing = [text[: good + 1]]
    for state in reversed(stack):
        if state == "str":
            closing.append('"')
        elif state in _OBJECT_STATES:
            closing.append("}")
        elif state in _ARRAY_STATES:
            closing.append("]")
        elif state == "lit":
            started = text[literal_start:]
            word = next((w for w in _LITERALS if w.startswith(started)), None)
            if word is not None:
                closing.append(word[len(started) :])
    return "".join(closing)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # JSON.parse has no NaN/Infinity


def _json_parse(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def parse_partial_json(text: str) -> Any:
    """The value of a possibly incomplete JSON text as the client shows it, or `UNDEFINED`."""
    try:
        return _json_parse(text)
    except (ValueError, RecursionError):
        pass
    try:
        return _json_parse(_repair_json(text))
    except (ValueError, RecursionError):
        return UNDEFINED
