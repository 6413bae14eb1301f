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

A `send` applies the busy policy as POST /api/chat does (bridge/chat/busy.py; the policy
from the frame's `headers` `x-bridge-busy` or its body's `busy`). Since `sequence` is the
log offset, what happened is told in `start` frames (a bridge extension the stock client
ignores): `start {busy: {policy, state, steeringId, runningGenerationId}}` first; for
`steer` its `generationId` is the running generation, read from its start; for `queue` /
`interrupt` a second `start {generationId}` names the turn once it began, then its chunks;
a queued message that will not run gets one chunk, `data-busy` dropped, then `end`. An
`abort` of a request still waiting stops nothing (the message stays queued).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Literal

import anyio
import anyio.abc
import orjson
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.access.body import json_depth_exceeds, validation_details
from bridge.access.browser import origin_verdict, trusted_proxies
from bridge.access.limits import retry_after_header
from bridge.api.gate import (
    FRAMES,
    SOCKET,
    Admitted,
    admit,
    admit_frame,
    check_socket_identity,
    unused_chat_resume,
)
from bridge.api.ws_live_routes import serve_live_frame
from bridge.chat.busy import BUSY_HEADER, busy_policy, start_turn, turn_started
from bridge.chat.operations import follow_generation, generation_to_resume, stop_generation
from bridge.errors import (
    BridgeError,
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
# Frames past the request rate are parsed (for their request id) only up to this size;
# a larger one closes the socket unparsed: parsing is the costly part of a frame.
OVER_RATE_PARSE_BYTES = 64 * 1024
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
            # Every frame counts against the rate as it arrives, before it is parsed.
            over_rate: LimitExceeded | None = None
            try:
                self._services.limits.requests.check(self._user)
            except LimitExceeded as exc:
                over_rate = exc
                if len(text) > OVER_RATE_PARSE_BYTES:
                    await self._close(POLICY_VIOLATION, exc.message)
                    return
            try:
                # The identity again: an expired token or an ended session stops the socket.
                await check_socket_identity(self._services, self._websocket, self._user)
            except Unauthorized as exc:
                await self._close(POLICY_VIOLATION, exc.message)
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
            if over_rate is not None:
                await self._send_quietly(encode_error_frame(frame.request_id, over_rate.message))
                continue
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
        admitted: Admitted | None = None
        try:
            admitted = await admit_frame(self._services, FRAMES[frame.type], self._user, frame.id)
            if isinstance(frame, WsSendFrame):
                await self._send_turn(request, frame)
            elif isinstance(frame, WsResumeFrame):
                await self._resume(request, frame, admitted.visible)
            else:
                await serve_live_frame(self._send, self._services, admitted, request.reading, frame)
        except _SocketGone:
            return
        except BridgeError as exc:
            error_text = exc.public_message
            if error_text != exc.message:
                logger.warning("websocket request %s: %s", request.request_id, exc)
        except Exception:
            logger.exception("websocket request %s failed", request.request_id)
            error_text = INTERNAL_ERROR_TEXT
        finally:
            if admitted is not None:
                admitted.release()
            self._requests.pop(request.request_id, None)
        if error_text is not None and not request.aborted:
            await self._send_quietly(encode_error_frame(request.request_id, error_text))

    async def _send_turn(self, request: _Request, frame: WsSendFrame) -> None:
        chat_request = _chat_request(frame)
        default = self._settings.bridge_busy_policy
        headers = {name.lower(): value for name, value in frame.headers.items()}
        policy = busy_policy(headers, chat_request, default)
        # Shielded: a socket closing while the generation is being set up must not leave it
        # half-begun (it is bounded by the wait for the provider, one heartbeat at most).
        with anyio.CancelScope(shield=True):
            started = await start_turn(self._services, chat_request, self._user, policy)
        rid = request.request_id
        busy: dict[str, str] | None = None
        if BUSY_HEADER in started.headers:
            busy = {
                "policy": policy,
                "state": started.headers[BUSY_HEADER],
                "steeringId": started.headers["x-bridge-steering-id"],
                "runningGenerationId": started.headers["x-bridge-running-generation-id"],
            }
        queued = started.queued
        if queued is not None and busy is not None:
            await self._send(_busy_start_frame(rid, busy))
            found: tuple[str | None, str | None] | None = None
            with request.reading:
                found = await turn_started(self._services, request.chat_id, queued)
            if found is None:  # aborted while waiting: the message stays queued
                return
            turn, reason = found
            if turn is None:
                await self._send(
                    encode_chunk_frame(rid, 0, queued.chunk("dropped", reason)),
                    encode_end_frame(rid),
                )
                return
            request.generation_id = turn
            busy = None  # said in the first `start` frame
        else:
            request.generation_id = started.generation_id
        await self._stream(request, after=-1, prelude_end=started.skip_through, busy=busy)

    async def _resume(self, request: _Request, frame: WsResumeFrame, visible: bool) -> None:
        after = frame.last_sequence if frame.last_sequence is not None else -1
        generation_id = (
            await generation_to_resume(self._services, frame.id, frame.generation_id, after)
            if visible
            else unused_chat_resume(frame.generation_id)  # not the caller's: as unused
        )
        if generation_id is None:
            await self._send(encode_no_active_frame(request.request_id))
            return
        request.generation_id = generation_id
        await self._stream(request, after)

    async def _stream(
        self,
        request: _Request,
        after: int,
        prelude_end: int = 0,
        busy: dict[str, str] | None = None,
    ) -> None:
        generation_id = request.generation_id
        assert generation_id is not None
        rid = request.request_id
        with request.reading:
            start = encode_start_frame(rid, generation_id, prelude_end)
            await self._send(start if busy is None else _busy_start_frame(rid, busy, start))
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


def _busy_start_frame(request_id: str, busy: dict[str, str], start: bytes = b"") -> bytes:
    """A `start` frame saying what the busy policy did (with `start`'s keys, if given)."""
    frame = orjson.loads(start) if start else {"type": "start", "requestId": request_id}
    return orjson.dumps({**frame, "busy": busy})


router = APIRouter()


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
    # The host was checked (and a `*`-only origin's cookies dropped) by BrowserGuard.
    verdict = origin_verdict(
        websocket.scope, settings.bridge_cors_origins, trusted_proxies(settings)
    )
    if verdict == "refused":
        await _deny(websocket, 403, "origin_not_allowed", "this origin may not open a socket")
        return
    try:
        admitted = await admit(services, websocket, SOCKET)
        with services.limits.sockets.hold(admitted.user):
            await websocket.accept()
            await SocketSession(websocket, services, admitted.user).run()
    except Unauthorized as exc:
        await _deny(websocket, exc.status_code, exc.code, exc.public_message)
    except LimitExceeded as exc:
        retry = {"retry-after": retry_after_header(exc.retry_after)}
        await _deny(websocket, exc.status_code, exc.code, exc.message, retry)
