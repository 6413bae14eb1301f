"""The way in: every HTTP route and every WebSocket frame passes one gate (README,
"Security model", the table of entry points).

Each route declares what it is with an `Entry` (the routes take it as a dependency, so a
route without one has no `Admitted` to work with, and tests/test_gate.py fails on any route
or frame type without one); `admit` applies the entry's checks, always in this order:

1. the request's form: a POST with a body must say `application/json`; a body-less POST
   (or a DELETE) must carry a header a cross-site form cannot send (`Content-Type:
   application/json` or `Authorization`/`X-*`), so a browser never sends it cross-site
   without a preflight (CSRF);
2. identity (`Auth.user_for`; on an open socket again for every frame, so an expired
   token stops working), user ids that look anonymous refused outside anonymous mode;
3. the request rate (a frame is counted as it arrives, before it is parsed);
4. the body: size, nesting depth, JSON;
5. the chat: the caller's own, a new one, or not theirs (someone else's, or one whose owner
   record is lost while its history is there: nobody's, it fails closed). A chat that is
   not the caller's answers like an unused id (`Admitted.visible` is False; a route that
   reads reads `Admitted.read_as`, an id no chat has) on every entry that only reads or
   controls; an entry that starts a turn answers 404;
6. concurrency: readers (streams, tails, polls) per user.

The chat id is claimed (its owner recorded) only by the turn's start, after all of this
(`bridge/chat/operations.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import HTTPConnection, Request

from bridge.access.body import check_json_media_type, read_json_body
from bridge.access.browser import origin_verdict, trusted_proxies
from bridge.access.identity import AnonymousAuth, is_anonymous
from bridge.access.limits import POLL_COST
from bridge.chat.operations import check_chat_id, may_use
from bridge.errors import GenerationGone, NotFound, RequestError, Unauthorized
from bridge.services import Services, services_of
from protocol.messages import is_chat_id

ChatSource = Literal["path", "body", "frame"]

_REGISTRY: dict[str, Entry] = {}
BodyRule = Literal["json", "none"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One way in and the checks it gets. `chat`: where the chat id comes from (None: the
    entry acts on no chat); `body`: a POST's body rule (None: GET or a frame); `reader`:
    the answer follows a log or a feed (counted against the per-user reader cap);
    `starts`: the entry starts a turn (the generation limits, then the chat is claimed)."""

    name: str
    identity: bool = True
    chat: ChatSource | None = None
    body: BodyRule | None = None
    cost: float = 1.0
    reader: bool = False
    starts: bool = False
    handshake: bool = False
    """The WebSocket handshake: the Origin and the sockets per user too."""

    def __post_init__(self) -> None:
        # Every entry is known to the gate (and to the README table's test) by being made.
        _REGISTRY.setdefault(self.name, self)

    @property
    def checks(self) -> tuple[str, ...]:
        """The checks, in the README table's words and order."""
        found: list[str] = []
        if not self.name.startswith("frame "):
            found.append("host")
        if self.body == "json":
            found.append("json content type")
        elif self.body == "none":
            found.append("csrf header")
        if self.handshake:
            found.append("origin")
        if self.identity:
            found += ["identity", "rate" if self.cost == 1.0 else f"rate ({self.cost:g})"]
        if self.body == "json" or self.name.startswith("frame "):
            found.append("size and depth")
        if self.chat is not None:
            found.append("owner")
        if self.reader:
            found.append("readers")
        if self.handshake:
            found.append("sockets")
        if self.starts:
            found += ["generations", "history size", "claim"]
        return tuple(found)

    async def __call__(self, request: Request) -> AsyncIterator[Admitted]:
        """The route's dependency: admitted for as long as its answer runs (a reader slot
        is given back when the response ends)."""
        admitted = await admit(services_of(request), request, self)
        try:
            yield admitted
        finally:
            admitted.release()


@dataclass(slots=True)
class Admitted:
    """What passed the gate: the caller, the chat (and whether it is theirs), the body."""

    entry: Entry
    user: str
    chat_id: str | None = None
    visible: bool = True
    """False: the chat is someone else's (or nobody's); answer as for an unused id."""
    body: Any = None
    _held: ExitStack = field(default_factory=ExitStack)

    @property
    def read_as(self) -> str:
        """The chat id whose data the request reads: the chat's own when it is the caller's
        (or new), an id no client can send otherwise, so someone else's chat reads exactly
        as an unused id does, whatever the route reads (no existence oracle)."""
        assert self.chat_id is not None, "an entry without a chat reads none"
        return self.chat_id if self.visible else UNUSED_CHAT_ID

    def release(self) -> None:
        self._held.close()


UNUSED_CHAT_ID = "#unused"
"""Outside the chat id rule (`#`), so no chat is ever stored under it."""


# --- the entries ---------------------------------------------------------------------------

POST_CHAT = Entry("POST /api/chat", chat="body", body="json", reader=True, starts=True)
RESUME = Entry("GET /api/chat/{chat_id}/stream", chat="path", reader=True)
STOP = Entry("POST /api/chat/{chat_id}/stop", chat="path", body="none")
STEER = Entry("POST /api/chat/{chat_id}/steer", chat="path", body="json")
DELETE_CHAT = Entry("DELETE /api/chat/{chat_id}", chat="path", body="none")
"""A browser preflights every cross-site DELETE and a form cannot send one; it still gets
the body-less POST's check, so one marked cross-site needs what a form cannot send."""
MESSAGES = Entry("GET /api/chat/{chat_id}/messages", chat="path")
CHAT_LIST = Entry("GET /api/chats")
LIVE_TAIL = Entry("GET /api/chat/{chat_id}/live", chat="path", reader=True)
POLL = Entry("GET /api/chat/{chat_id}/poll", chat="path", cost=POLL_COST, reader=True)
POST_POLL = Entry("POST /api/chat/poll", chat="body", body="json", reader=True, starts=True)
MODELS = Entry("GET /api/models")
HEALTH = Entry("GET /healthz", identity=False)
READY = Entry("GET /readyz", identity=False)
METRICS = Entry("GET /metrics", identity=False)
SOCKET = Entry("WEBSOCKET /api/chat", handshake=True)
"""The handshake: identity, the rate, the sockets per user (and the Origin, ws_routes.py)."""

FRAMES: dict[str, Entry] = {
    "send": Entry("frame send", chat="frame", reader=True, starts=True),
    "resume": Entry("frame resume", chat="frame", reader=True),
    "abort": Entry("frame abort"),
    "steer": Entry("frame steer", chat="frame"),
    "live": Entry("frame live", chat="frame", reader=True),
}
"""Every WebSocket frame type a client may send (an `abort` is the socket's stop; the
keep-alive frames are the server's). A frame of a type not listed here closes the socket."""


def entries() -> list[Entry]:
    """Every entry declared (by any route module imported so far)."""
    return list(_REGISTRY.values())


# --- the checks ----------------------------------------------------------------------------

# Headers a page may add to a cross-site request only after a CORS preflight.
_NON_SIMPLE_HEADERS = ("authorization",)
_CROSS_SITE_FETCH = ("cross-site", "same-site")


def check_bodyless_post(connection: HTTPConnection, services: Services) -> None:
    """A POST without a body (stop), or a DELETE, is a state change a cross-site form could send. It
    passes with what a form cannot send (a JSON content type, `Authorization`, an `X-*`
    header: a browser asks the server first), or when nothing marks it as cross-site: a
    browser names a page's origin in `Origin` and `Sec-Fetch-Site` on every such POST, so
    one from another site (not listed in BRIDGE_CORS_ORIGINS) is refused (CSRF)."""
    headers = connection.headers
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type:
        check_json_media_type(connection)
        return
    if any(name in headers for name in _NON_SIMPLE_HEADERS):
        return
    if any(name.startswith("x-") for name in headers):
        return
    settings = services.settings
    cross_site = headers.get("sec-fetch-site", "").lower() in _CROSS_SITE_FETCH
    if "origin" in headers:
        verdict = origin_verdict(
            connection.scope, settings.bridge_cors_origins, trusted_proxies(settings)
        )
        cross_site = verdict != "same" and verdict != "listed"
    if cross_site:
        raise RequestError(
            "a cross-site POST without a body (or a DELETE) needs "
            "`Content-Type: application/json` or an `X-Requested-With` header "
            "(a form cannot send either)"
        )


async def identify(services: Services, connection: HTTPConnection, cost: float = 1.0) -> str:
    """The authenticated caller, counted against the per-user request rate."""
    user = await authenticate(services, connection)
    services.limits.requests.check(user, cost)
    return user


async def authenticate(services: Services, connection: HTTPConnection) -> str:
    """The caller's user id. Outside anonymous mode a user id that looks like an anonymous
    identity (`anon:…`, `anonymous`) is refused: among anonymous identities a chat id is
    the only key, so such a token would share every anonymous chat."""
    user = await services.auth.user_for(connection)
    if is_anonymous(user) and not isinstance(services.auth, AnonymousAuth):
        raise Unauthorized("this user id is reserved for anonymous mode")
    return user


async def may_access(services: Services, user: str, chat_id: str) -> bool:
    """Whether the chat is the caller's to use: theirs, or new. A chat whose record has no
    owner (lost: evicted, expired before its history) but whose history is there is
    nobody's: ownership fails closed."""
    store = services.store
    chat = await store.get_chat(chat_id)
    if chat is not None and chat.owner is not None:
        return may_use(chat.owner, user)
    return await store.history_size(chat_id) == 0  # its size: the history is not parsed


def _body_chat_id(body: Any) -> str | None:
    chat_id = body.get("id") if isinstance(body, dict) else None
    return chat_id if isinstance(chat_id, str) and is_chat_id(chat_id) else None


async def admit(services: Services, connection: HTTPConnection, entry: Entry) -> Admitted:
    """Apply an HTTP entry's (or the WebSocket handshake's) checks, in the module
    docstring's order."""
    settings = services.settings
    if entry.body == "json":
        check_json_media_type(connection)
    elif entry.body == "none":
        check_bodyless_post(connection, services)
    user = await identify(services, connection, entry.cost) if entry.identity else ""
    body: Any = None
    if entry.body == "json":
        assert isinstance(connection, Request)
        body = await read_json_body(
            connection,
            max_bytes=settings.bridge_max_body_bytes,
            max_depth=settings.bridge_max_json_depth,
            within=settings.bridge_body_timeout_seconds,
        )
    chat_id: str | None = None
    if entry.chat == "path":
        chat_id = check_chat_id(str(connection.path_params.get("chat_id", "")))
    elif entry.chat == "body":
        chat_id = _body_chat_id(body)  # an invalid id is the body's validation error
    return await _admit_chat(services, Admitted(entry, user, chat_id, body=body))


async def check_socket_identity(services: Services, connection: HTTPConnection, user: str) -> None:
    """A frame on an open socket: the identity is asked again (an expired token, a session
    the embedding app ended) and must still be the handshake's."""
    if await authenticate(services, connection) != user:
        raise Unauthorized("the socket's identity changed")


async def admit_frame(services: Services, entry: Entry, user: str, chat_id: str) -> Admitted:
    """A WebSocket request frame's checks past those of its arrival (the rate, the identity,
    size and depth, in the socket's reader loop): the chat, the readers."""
    return await _admit_chat(services, Admitted(entry, user, check_chat_id(chat_id)))


async def _admit_chat(services: Services, admitted: Admitted) -> Admitted:
    entry, chat_id = admitted.entry, admitted.chat_id
    if chat_id is not None and entry.chat is not None:
        admitted.visible = await may_access(services, admitted.user, chat_id)
        if not admitted.visible and entry.starts:
            raise NotFound(f"chat {chat_id} not found")
    if entry.reader:
        admitted._held.enter_context(services.limits.readers.hold(admitted.user))
    return admitted


def unused_chat_resume(generation_id: str | None) -> str | None:
    """What a resume of an unused chat id finds (nothing, or a gone generation when one is
    named), for a chat that is not the caller's: the answers are the same."""
    if generation_id is not None:
        raise GenerationGone(
            f"generation {generation_id} is unknown or past its retention; "
            "load the chat's messages instead"
        )
    return None
