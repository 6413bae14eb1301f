"""`/api/chat` as a WebSocket: the wire of the AI SDK's `WebSocketChatTransport`.

Same path as the POST, so `new WebSocketChatTransport({ url: '/api/chat' })` works as is.
The handshake is checked first (Origin, then the token: browsers cannot set handshake
headers, so `?token=` is accepted); then one accepted socket carries many requests.

One anyio task group per socket:

* the reader loop validates every frame; `send` and `resume` each get their own task,
  `abort` is handled at once; a malformed or oversized frame closes the socket (1008);
* each request task is a reader of a generation log, like an SSE response: `start`
  (carrying the generation id), one `chunk` frame per log entry whose `sequence` is the
  entry's offset (the number the SSE `id:` and the long-poll cursor use), then `end`;
* the keep-alive task sends a frame whenever the socket has been quiet for
  `bridge_ws_ping_seconds`, so proxies with idle timeouts keep it open.

The socket going away cancels the group: request tasks stop reading, generations go on
(the runner owns them). Only an `abort` frame stops a generation, as the stop endpoint
does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import anyio
import anyio.abc
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.access.body import json_depth_exceeds, validation_details
from bridge.access.limits import retry_after_header
from bridge.api.gate import identify
from bridge.api.ws_live_routes import serve_live_frame
from bridge.chat.admission import start_admitted
from bridge.chat.operations import (
    authorize,
    check_chat_id,
    follow_generation,
    generation_to_resume,
    stop_generation,
)
from bridge.errors import (
    BridgeError,
    GenerationNotFound,
    InvalidRequest,
    LimitExceeded,
    Unauthorized,
)
from bridge.log.hub import HandedOver
from bridge.services import Services, services_of
from protocol.messages import ChatRequest
from protocol.websocket import (
    KEEPALIVE_FRAME,
    FrameError,
    WsAbortFrame,
    WsResumeFrame,
    WsSendFrame,
    encode_chunk_frame,
    encode_end_frame,
    encode_error_frame,
    encode_no_active_frame,
    encode_start_frame,
    parse_client_frame,
)
from protocol.websocket_live import WsLiveFrame, WsSteerFrame, parse_live_frame

logger = logging.getLogger("bridge.websocket")

POLICY_VIOLATION = 1008
# A close frame's payload is at most 125 bytes, 2 of which are the code.
MAX_CLOSE_REASON_BYTES = 123
# How long an abort may hold a closing socket's teardown while it waits for the end of the
# generation it stopped (the stop itself is requested first, so it is never lost).
STOP_WAIT_SECONDS = 10.0
INTERNAL_ERROR_TEXT = "An internal error occurred."
# Stands in for the prelude of a continuation (offsets 1..p, which rebuild the continued
# message for replays) on the socket that sent it: that client holds the message already,
# and the SDK client rejects a gap in `sequence`, so the offsets are kept and the content
# is a chunk the client ignores.
PRELUDE_FILLER = b'{"type":"finish-step"}'


class _SocketGone(Exception):
    """The socket is closed (by the client or by us): nothing more can be sent."""


@dataclass(eq=False, slots=True)
class _Request:
    request_id: str
    kind: Literal["send", "resume", "steer", "live"]
    chat_id: str
    generation_id: str | None = None
    aborted: bool = False
    # Covers only the reading part of the request: starting a generation is never cut in
    # half by an abort (the abort is applied once the generation id is known).
    reading: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def abort(self) -> None:
        self.aborted = True
        self.reading.cancel()


def close_reason(text: str) -> str:
    """`text` cut to what fits in a close frame, on a character boundary."""
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return text
    return encoded[: MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


def _chat_request(frame: WsSendFrame) -> ChatRequest:
    """The frame as the POST body it stands for; body errors answer like a 422."""
    try:
        return frame.to_chat_request()
    except ValidationError as exc:
        details = validation_details(exc)
        first = details[0] if details else {"field": "(body)", "message": "invalid"}
        raise InvalidRequest(
            f"invalid field `{first['field']}`: {first['message']}", details
        ) from None


class SocketSession:
    def __init__(self, websocket: WebSocket, services: Services, user: str) -> None:
        self._websocket = websocket
        self._services = services
        self._user = user
        self._settings = services.settings
        self._requests: dict[str, _Request] = {}
        self._send_lock = anyio.Lock()
        self._closed = False
        self._last_sent = anyio.current_time()
        self._group: anyio.abc.TaskGroup | None = None

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            self._group = group
            if self._settings.bridge_ws_ping_seconds > 0:
                group.start_soon(self._keep_alive)
            try:
                await self._read_frames()
            finally:
                group.cancel_scope.cancel()

    # --- sending ---------------------------------------------------------------------------

    async def _send(self, *frames: bytes) -> None:
        # One writer at a time: frames of concurrent requests never interleave mid-frame,
        # and a slow client holds every writer back (backpressure) instead of filling memory.
        async with self._send_lock:
            for frame in frames:
                if self._closed:
                    raise _SocketGone
                try:
                    await self._websocket.send({"type": "websocket.send", "text": frame.decode()})
                except (WebSocketDisconnect, RuntimeError) as exc:
                    self._closed = True
                    raise _SocketGone from exc
                self._last_sent = anyio.current_time()

    async def _close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self._websocket.close(code, close_reason(reason))

    async def _keep_alive(self) -> None:
        interval = self._settings.bridge_ws_ping_seconds
        while True:
            idle = anyio.current_time() - self._last_sent
            if idle < interval:
                await anyio.sleep(interval - idle)
                continue
            try:
                await self._send(KEEPALIVE_FRAME)
            except _SocketGone:
                return

    # --- the reader loop -------------------------------------------------------------------

    async def _read_frames(self) -> None:
        max_bytes = self._settings.bridge_ws_max_frame_bytes
        while True:
            try:
                message = await self._websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self._close(POLICY_VIOLATION, "binary frames are not supported")
                return
            if len(text) > max_bytes:  # cheap pre-check: a character is at least a byte
                await self._close(POLICY_VIOLATION, f"frame too large (> {max_bytes} bytes)")
                return
            raw = text.encode("utf-8")
            max_depth = self._settings.bridge_max_json_depth
            if json_depth_exceeds(raw, max_depth):
                await self._close(POLICY_VIOLATION, f"frame nests deeper than {max_depth} levels")
                return
            try:
                # Live-session frames (steer, live) first; every other one as before.
                frame = parse_live_frame(raw) or parse_client_frame(raw, max_bytes=max_bytes)
            except FrameError as exc:
                await self._close(POLICY_VIOLATION, str(exc))
                return
            if isinstance(frame, WsAbortFrame):
                # Unknown or finished request ids are ignored: the client may abort a
                # request whose `end` is still on its way.
                active = self._requests.get(frame.request_id)
                if active is not None:
                    active.abort()
                continue
            if frame.request_id in self._requests:
                await self._close(
                    POLICY_VIOLATION, f"requestId {frame.request_id[:40]!r} is already in use"
                )
                return
            try:
                self._services.limits.requests.check(self._user)
            except LimitExceeded as exc:
                await self._send_quietly(encode_error_frame(frame.request_id, exc.message))
                continue
            if len(self._requests) >= self._settings.bridge_ws_max_requests:
                await self._send_quietly(
                    encode_error_frame(
                        frame.request_id,
                        f"too many requests on this socket (at most "
                        f"{self._settings.bridge_ws_max_requests} at once)",
                    )
                )
                continue
            request = _Request(frame.request_id, frame.type, frame.id)
            self._requests[request.request_id] = request
            assert self._group is not None
            self._group.start_soon(self._serve, request, frame)

    async def _send_quietly(self, frame: bytes) -> None:
        with contextlib.suppress(_SocketGone):
            await self._send(frame)

    # --- requests --------------------------------------------------------------------------

    async def _serve(
        self, request: _Request, frame: WsSendFrame | WsResumeFrame | WsSteerFrame | WsLiveFrame
    ) -> None:
        """Run one request; its failures become an `error` frame for its request id only."""
        error_text: str | None = None
        try:
            if isinstance(frame, WsSendFrame):
                await self._send_turn(request, frame)
            elif isinstance(frame, WsResumeFrame):
                await self._resume(request, frame)
            else:
                await serve_live_frame(
                    self._send, self._services, self._user, request.reading, frame
                )
        except _SocketGone:
            return
        except BridgeError as exc:
            error_text = exc.message
        except GenerationNotFound:
            error_text = "the generation's log is gone (past its retention); reload the chat"
        except Exception:
            logger.exception("websocket request %s failed", request.request_id)
            error_text = INTERNAL_ERROR_TEXT
        finally:
            self._requests.pop(request.request_id, None)
        if error_text is not None and not request.aborted:
            await self._send_quietly(encode_error_frame(request.request_id, error_text))

    async def _send_turn(self, request: _Request, frame: WsSendFrame) -> None:
        chat_request = _chat_request(frame)
        # Shielded: a socket closing while the generation is being set up must not leave it
        # half-begun (it is bounded by the wait for the provider, one heartbeat at most).
        with anyio.CancelScope(shield=True):
            generation = await start_admitted(self._services, chat_request, self._user)
        request.generation_id = generation.generation_id
        await self._stream(request, after=-1, prelude_end=generation.prelude_end)

    async def _resume(self, request: _Request, frame: WsResumeFrame) -> None:
        chat_id = check_chat_id(frame.id)
        await authorize(self._services, self._user, chat_id)
        after = frame.last_sequence if frame.last_sequence is not None else -1
        generation_id = await generation_to_resume(
            self._services, chat_id, frame.generation_id, after
        )
        if generation_id is None:
            await self._send(encode_no_active_frame(request.request_id))
            return
        request.generation_id = generation_id
        await self._stream(request, after)

    async def _stream(self, request: _Request, after: int, prelude_end: int = 0) -> None:
        generation_id = request.generation_id
        assert generation_id is not None
        rid = request.request_id
        with request.reading:
            await self._send(encode_start_frame(rid, generation_id, prelude_end))
            entries = follow_generation(
                self._services, request.chat_id, generation_id, after, transport="websocket"
            )
            try:
                async for batch in entries:
                    if batch is None:  # heartbeat ticks: the keep-alive task covers idling
                        continue
                    await self._send(
                        *(
                            encode_chunk_frame(
                                rid,
                                entry.offset,
                                PRELUDE_FILLER if 0 < entry.offset <= prelude_end else entry.data,
                            )
                            for entry in batch
                        )
                    )
            except HandedOver:
                return  # no `end` frame: the socket closes with the server (1012)
            await self._send(encode_end_frame(rid))
        if request.aborted:
            with anyio.move_on_after(STOP_WAIT_SECONDS, shield=True):
                await stop_generation(self._services, request.chat_id, generation_id)


router = APIRouter()


def origin_allowed(
    headers: Headers,
    allowed: Sequence[str],
    peer: str | None = None,
    trusted_proxies: Sequence[str] = (),
) -> bool:
    """Same-origin, or listed in BRIDGE_CORS_ORIGINS ("*": any).

    Browsers always send Origin on a WebSocket handshake and never let a page forge it,
    so this stops other sites from opening sockets with the user's credentials
    (cross-site WebSocket hijacking). A handshake without Origin is not from a browser.
    Behind a proxy that rewrites Host (a Next.js rewrite), the page's own host arrives as
    `X-Forwarded-Host`, believed only from a trusted proxy (BRIDGE_FORWARDED_ALLOW_IPS).
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"}:
        return False
    hosts = [headers.get("host")]
    if peer is not None and ("*" in trusted_proxies or peer in trusted_proxies):
        forwarded = headers.get("x-forwarded-host")
        if forwarded:
            hosts.append(forwarded.split(",", 1)[0].strip())
    return any(host is not None and parts.netloc == host for host in hosts)


async def _deny(
    websocket: WebSocket,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Refuse the handshake: an HTTP error (when the server can send one) the client can
    read, else a close before accepting (uvicorn answers 403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = {"error": {"code": code, "message": message}}
        await websocket.send_denial_response(
            JSONResponse(body, status_code=status, headers=headers)
        )
    else:
        await websocket.close(POLICY_VIOLATION, close_reason(message))


@router.websocket("/api/chat")
async def chat_socket(websocket: WebSocket) -> None:
    services = services_of(websocket)
    settings = services.settings
    peer = websocket.client.host if websocket.client else None
    trusted = [ip.strip() for ip in settings.bridge_forwarded_allow_ips.split(",") if ip.strip()]
    if not origin_allowed(websocket.headers, settings.bridge_cors_origins, peer, trusted):
        await _deny(websocket, 403, "origin_not_allowed", "this origin may not open a socket")
        return
    try:
        user = await identify(services, websocket)
        with services.limits.sockets.hold(user):
            await websocket.accept()
            await SocketSession(websocket, services, user).run()
    except Unauthorized as exc:
        await _deny(websocket, exc.status_code, exc.code, exc.message)
    except LimitExceeded as exc:
        retry = {"retry-after": retry_after_header(exc.retry_after)}
        await _deny(websocket, exc.status_code, exc.code, exc.message, retry)
