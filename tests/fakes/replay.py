"""A replay server: the next request to any endpoint (`/v1/responses`,
`/v1/chat/completions`, `/v1/messages`) is answered with a recorded provider stream, byte
for byte, as `text/event-stream`. What the client sent is kept (`requests`), so a test can
check the next turn's request too.

    with ReplayServer() as replay:
        replay.serve(Path("tests/recordings/openai/text.sse").read_bytes())
        ...  # AsyncOpenAI(base_url=replay.url + "/v1")
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import LiveServer

# Pieces the body is sent in: a recorded stream arrives in many network reads, not one.
_PIECE = 512


class ReplayServer(LiveServer):
    def __init__(self) -> None:
        self._bodies: deque[bytes] = deque()
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        app = Starlette(routes=[Route("/{path:path}", self._answer, methods=["POST"])])
        super().__init__(app)

    def serve(self, body: bytes) -> None:
        """Answer the next request with `body`."""
        with self._lock:
            self._bodies.append(body)

    async def _answer(self, request: Request) -> Response:
        payload = await request.body()
        with self._lock:
            self.requests.append(
                {
                    "path": request.url.path,
                    "headers": dict(request.headers),
                    "body": orjson.loads(payload or b"{}"),
                }
            )
            body = self._bodies.popleft() if self._bodies else None
        if body is None:
            return Response(b'{"error":{"message":"nothing to replay"}}', status_code=500)

        async def pieces() -> Any:
            for start in range(0, len(body), _PIECE):
                yield body[start : start + _PIECE]

        return StreamingResponse(pieces(), media_type="text/event-stream")

    def __enter__(self) -> ReplayServer:
        self.start()
        return self
