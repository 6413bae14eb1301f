"""`/api/chat` as a WebSocket: the wire of the AI SDK's `WebSocketChatTransport`.

Same path as the POST, so `new WebSocketChatTransport({ url: '/api/chat' })` works as is.
The handshake is checked here (Origin, then the token: browsers cannot set handshake
headers, so `?token=` is accepted); the frames are served by `SocketSession`.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from bridge.auth import Unauthorized
from bridge.services import services_of
from bridge.websocket_session import POLICY_VIOLATION, SocketSession, close_reason

router = APIRouter()


def origin_allowed(headers: Headers, allowed: Sequence[str]) -> bool:
    """Same-origin, or listed in BRIDGE_CORS_ORIGINS ("*": any).

    Browsers always send Origin on a WebSocket handshake and never let a page forge it,
    so this stops other sites from opening sockets with the user's credentials
    (cross-site WebSocket hijacking). A handshake without Origin is not from a browser.
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    host = headers.get("host")
    return parts.scheme in {"http", "https"} and host is not None and parts.netloc == host


async def _deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse the handshake: an HTTP error (when the server can send one) the client can
    read, else a close before accepting (uvicorn answers 403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = {"error": {"code": code, "message": message}}
        await websocket.send_denial_response(JSONResponse(body, status_code=status))
    else:
        await websocket.close(POLICY_VIOLATION, close_reason(message))


@router.websocket("/api/chat")
async def chat_socket(websocket: WebSocket) -> None:
    services = services_of(websocket)
    if not origin_allowed(websocket.headers, services.settings.bridge_cors_origins):
        await _deny(websocket, 403, "origin_not_allowed", "this origin may not open a socket")
        return
    try:
        user = services.auth.user_for(websocket)
    except Unauthorized as exc:
        await _deny(websocket, exc.status_code, exc.code, exc.message)
        return
    await websocket.accept()
    await SocketSession(websocket, services, user).run()
