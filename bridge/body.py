"""Reading and validating request bodies: size cap, JSON, pydantic, clear errors."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from bridge.errors import InvalidRequest, PayloadTooLarge, RequestError

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    received = bytearray()
    async for piece in request.stream():
        received += piece
        if len(received) > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    return bytes(received)


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise RequestError("request body is empty; expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None


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
