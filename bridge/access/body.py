"""Reading and validating request bodies: media type, size cap, nesting depth, JSON,
pydantic, clear errors."""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

import anyio
import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, HTTPConnection, Request

from bridge.errors import (
    InvalidRequest,
    PayloadTooLarge,
    RequestError,
    RequestTimeout,
    UnsupportedMediaType,
)
from protocol.messages import ChatRequest

logger = logging.getLogger("bridge.access.body")

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_body(request: Request, limit: int, within: float | None = None) -> bytes:
    """The body, at most `limit` bytes, in full within `within` seconds (408 past it: a
    slow or stalled client never holds a request open). A client that leaves mid-body is
    a 400 nobody reads, never an error in the log."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    received = bytearray()
    try:
        with anyio.fail_after(within):
            async for piece in request.stream():
                received += piece
                if len(received) > limit:
                    raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {within:g} s") from None
    except ClientDisconnect:
        # Nobody reads the answer: a line in the log, never a traceback.
        logger.info("a client left before its request body was complete")
        raise RequestError("the client left before its request body was complete") from None
    return bytes(received)


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def check_json_media_type(request: HTTPConnection) -> None:
    """POST bodies are JSON, said so: a cross-site form or `text/plain` POST (which a
    browser sends without asking the server first) is refused."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType(
            f"the body must be application/json, not {media_type[:60] or 'untyped'!r}"
        )


def json_depth_exceeds(raw: bytes, max_depth: int) -> bool:
    """True when the JSON text nests arrays/objects deeper than `max_depth`.

    Strings are cut out, then innermost `[]`/`{}` pairs are removed one level per pass:
    each pass runs in C, and no more than `max_depth + 1` passes are needed."""
    brackets = _STRINGS.sub(b"", raw).translate(None, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return False
        shorter = _INNERMOST.sub(b"", brackets)
        if len(shorter) == len(brackets):
            return False  # unbalanced: not JSON, which the parser reports
        brackets = shorter
    return bool(brackets)


def parse_json(raw: bytes, max_depth: int = 64) -> Any:
    if not raw.strip():
        raise RequestError("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(raw)  # fails fast past its own limit of 1024 levels
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None
    if json_depth_exceeds(raw, max_depth):
        raise RequestError(f"the JSON nests deeper than {max_depth} levels")
    return data


async def read_json_body(
    request: Request, *, max_bytes: int, max_depth: int, within: float | None = None
) -> Any:
    """A POST's JSON body: 415 unless application/json, 413 past `max_bytes`, 408 past
    `within`, 400 when not JSON or nested past `max_depth`."""
    check_json_media_type(request)
    return parse_json(await read_body(request, max_bytes, within), max_depth)


def validation_details(error: ValidationError) -> list[dict[str, str]]:
    details = []
    for item in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in item["loc"]) or "(body)"
        details.append({"field": location, "message": item["msg"]})
    return details


def validate(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc)
        first = details[0] if details else {"field": "(body)", "message": "invalid"}
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise InvalidRequest(
            f"invalid field `{first['field']}`: {first['message']}{more}", details
        ) from None


def body_schemas() -> dict[str, Any]:
    """The JSON schemas of the hand-parsed bodies, keyed by component name, for
    /openapi.json (the routes read their bodies themselves to keep the size, depth and
    media type checks in front of pydantic)."""
    schema = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = dict(schema.pop("$defs", {}))
    components["ChatRequest"] = schema
    return components


CHAT_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}},
    }
}
