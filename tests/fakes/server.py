"""Run ASGI apps for real in tests, and the scripting vocabulary of the fake providers.

`LiveServer` serves an app with uvicorn in a background thread on a free loopback port,
so clients (the real provider SDKs, httpx, a browser) talk to it over TCP.

`ScriptedFake` is the base of the fake provider servers: a queue of scripted turns, a
record of every request, and disconnect counting. A turn is a list of steps (`Text`,
`Reasoning`, `ToolCall`, …); each fake renders the steps in its API's real wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

# --------------------------------------------------------------------------- LiveServer


class LiveServer:
    """An ASGI app served by uvicorn in a daemon thread, on 127.0.0.1 and a free port."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", log_level: str = "warning"):
        self.app = app
        self.host = host
        self.port = 0
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> LiveServer:
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))  # a restart keeps the port (and the URL)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="auto",
            log_level=self._log_level,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"live-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread died during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not start within {timeout} s")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():  # connections that would not close: stop waiting for them
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None

    def transport_of(self, client: tuple[str, int]) -> asyncio.Transport | None:
        """The transport of the open connection from `client` (the ASGI scope's
        "client"), so a test server can drop it (server thread only)."""
        server = self._server
        if server is None:
            return None
        for connection in list(server.server_state.connections):
            if tuple(getattr(connection, "client", None) or ()) == client:
                # uvloop's transports do not derive from asyncio's: the protocol decides.
                return cast(asyncio.Transport | None, getattr(connection, "transport", None))
        return None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- steps

_TOKEN = re.compile(r"\S+\s*|\s+")


def _pieces(value: str | Sequence[str]) -> tuple[str, ...]:
    """A string is split into word tokens; a sequence is taken as the deltas to send."""
    return tuple(_TOKEN.findall(value)) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class Text:
    """Assistant text. Consecutive `Text` (and `Citation`) steps share one text block."""

    text: str | Sequence[str]

    @property
    def deltas(self) -> tuple[str, ...]:
        return _pieces(self.text)


@dataclass(frozen=True)
class Reasoning:
    """A reasoning block: Anthropic thinking (with `signature`), an OpenAI reasoning
    summary (with `encrypted_content`; `continues=True` adds a summary part to the
    previous reasoning item), Chat Completions `reasoning_content` deltas."""

    text: str | Sequence[str]
    signature: str | None = "sig-fake-signature"
    encrypted_content: str | None = None
    continues: bool = False

    @property
    def deltas(self) -> tuple[str, ...]:
        return _pieces(self.text)


@dataclass(frozen=True)
class RedactedReasoning:
    """Anthropic `redacted_thinking`; ignored by the OpenAI fake."""

    data: str = "redacted-opaque-data"


@dataclass(frozen=True)
class ToolCall:
    """A function call. `arguments` is the JSON text: one string is sent as one delta,
    a sequence as those deltas."""

    name: str
    arguments: str | Sequence[str] = "{}"
    call_id: str | None = None

    @property
    def deltas(self) -> tuple[str, ...]:
        return (self.arguments,) if isinstance(self.arguments, str) else tuple(self.arguments)


@dataclass(frozen=True)
class ParallelToolCalls:
    """Several calls in one step. Chat Completions interleaves their deltas by index; the
    other APIs stream parallel calls one after the other."""

    calls: Sequence[ToolCall]


@dataclass(frozen=True)
class Citation:
    """A URL citation (`url` set) or a document citation, in the current text block."""

    url: str | None = None
    title: str = "A source"
    cited_text: str = "cited text"
    document_index: int = 0


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 12
    output_tokens: int | None = None
    """None: the number of deltas streamed."""
    reasoning_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class Finish:
    """The provider's own finish reason, e.g. "length": OpenAI Responses
    "max_output_tokens"/"content_filter" (→ response.incomplete), Chat Completions
    "stop"/"length"/"tool_calls"/"content_filter", Anthropic "end_turn"/"max_tokens"/
    "tool_use"/"refusal"/"stop_sequence". Unset: the natural one for the turn."""

    reason: str


@dataclass(frozen=True)
class HttpError:
    """Answer with this status and the provider's real error body instead of a stream.
    Must be the turn's first step."""

    status: int
    message: str | None = None
    error_type: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamError:
    """An error event in the middle of the stream, which then ends. `error_type` is the
    Anthropic error type / the OpenAI error code (e.g. "overloaded_error",
    "server_error")."""

    message: str = "Internal server error"
    error_type: str | None = None


@dataclass(frozen=True)
class ResponseFailed:
    """OpenAI Responses `response.failed` (a `StreamError` for the other fakes)."""

    message: str = "The model failed to generate a response."
    code: str = "server_error"


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class Hang:
    """Stop sending and keep the response open until the client disconnects."""


@dataclass(frozen=True)
class RawBytes:
    """Bytes sent as they are, e.g. an event that is not what the API documents."""

    data: bytes


@dataclass(frozen=True)
class Cut:
    """Drop the connection mid-answer, as a provider or a proxy on the way does: what was
    sent so far reaches the client, then the connection closes before the chunked body
    ends (`reset=False`: the client reads an incomplete body) or is reset (`reset=True`:
    a TCP RST, the client's read fails with "connection reset")."""

    reset: bool = False


Step = (
    Text
    | Reasoning
    | RedactedReasoning
    | ToolCall
    | ParallelToolCalls
    | Citation
    | Usage
    | Finish
    | HttpError
    | StreamError
    | ResponseFailed
    | Delay
    | Hang
    | Cut
    | RawBytes
)


@dataclass(frozen=True)
class Turn:
    steps: tuple[Step, ...]
    token_delay: float = 0.0


@dataclass(frozen=True)
class Pause:
    """Rendered output: sleep this long (None: until the client disconnects)."""

    seconds: float | None


@dataclass(frozen=True)
class Drop:
    """Rendered output: flush what was sent, then drop the connection (see `Cut`)."""

    reset: bool


Output = bytes | Pause | Drop


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: Any
    """The parsed JSON body (None when not JSON)."""

    @property
    def json(self) -> Any:
        return self.body


def sse(data: Any, event: str | None = None) -> bytes:
    prefix = b"event: " + event.encode() + b"\n" if event else b""
    return prefix + b"data: " + orjson.dumps(data) + b"\n\n"


# --------------------------------------------------------------------------- the fake


class ScriptedFake:
    """Base of the fake provider servers.

    Scripting: `enqueue([...steps], token_delay=...)` adds a turn; each streaming request
    takes the next turn (or `default_turn()` when the queue is empty). Recording:
    `requests` (every request, in order), `disconnects` (streams the client closed before
    they ended), `disconnected` (a threading.Event set at each such disconnect),
    `completed` (streams sent to the end), `cuts` (streams dropped by a `Cut` step).
    `api_key`: when set, requests with another key
    get the provider's real 401.
    """

    auth_header = "authorization"

    def __init__(self, *, token_delay: float = 0.0, api_key: str | None = None) -> None:
        self.token_delay = token_delay
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self.completed = 0
        self.cuts = 0
        self.disconnected = threading.Event()
        self._turns: deque[Turn] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._counter = 0
        self.app = Starlette(routes=self.routes())
        self._server = LiveServer(self.app)

    # -- lifecycle

    @property
    def url(self) -> str:
        """The server's root URL (no path)."""
        return self._server.url

    def start(self) -> ScriptedFake:
        self._stopping.clear()
        self._server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends `Hang` steps, so the server can shut down
        self._server.stop()

    def __enter__(self) -> ScriptedFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and recording

    def enqueue(self, steps: Sequence[Step], *, token_delay: float | None = None) -> None:
        delay = self.token_delay if token_delay is None else token_delay
        with self._lock:
            self._turns.append(Turn(tuple(steps), delay))

    def default_turn(self) -> list[Step]:
        return [Text("Hello from the fake provider.")]

    def reset(self) -> None:
        with self._lock:
            self._turns.clear()
            self.requests.clear()
            self.disconnects = 0
            self.completed = 0
            self.cuts = 0
            self.disconnected.clear()

    @property
    def pending(self) -> int:
        """Turns not taken yet."""
        return len(self._turns)

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    async def wait_for_disconnect(self, seconds: float = 5.0) -> bool:
        """Wait (without blocking the loop) until a stream was closed by the client; False
        if none was within `seconds`. (Polls: the event is set from the server thread.)"""
        deadline = time.monotonic() + seconds
        while not self.disconnected.is_set():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}_fake{self._counter:06d}"

    # -- for subclasses

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def error_response(self, error: HttpError) -> Response:
        raise NotImplementedError

    def key_of(self, request: Request) -> str | None:
        value = request.headers.get(self.auth_header)
        if value is not None and value.lower().startswith("bearer "):
            return value[7:]
        return value

    def auth_error(self, key: str | None) -> HttpError:
        return HttpError(401)

    async def handle(
        self, request: Request, render: Callable[[Turn, Any], Iterator[Output]]
    ) -> Response:
        """Record the request, then answer with the next turn rendered by `render`."""
        body = await self._record(request)
        if self.api_key is not None and self.key_of(request) != self.api_key:
            return self.error_response(self.auth_error(self.key_of(request)))
        with self._lock:
            turn = self._turns.popleft() if self._turns else None
        if turn is None:
            turn = Turn(tuple(self.default_turn()), self.token_delay)
        if turn.steps and isinstance(turn.steps[0], HttpError):
            return self.error_response(turn.steps[0])
        if not isinstance(body, dict) or not body.get("stream"):
            return self.error_response(
                HttpError(400, "this fake only answers streaming requests (stream: true)")
            )
        return _SSEStream(self, render(turn, body))

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        headers = {name.lower(): value for name, value in request.headers.items()}
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.url.path, headers, body))
        return body

    # -- called by _SSEStream (server thread)

    def _on_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1
        self.disconnected.set()

    def _on_cut(self) -> None:
        with self._lock:
            self.cuts += 1

    def _on_complete(self) -> None:
        with self._lock:
            self.completed += 1

    async def _hang(self) -> None:
        # Polled: `stop()` sets the flag from another thread (and another event loop).
        while not self._stopping.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


class _SSEStream(Response):
    """Streams rendered output and notices a client that goes away mid-stream.

    Starlette's StreamingResponse only notices a disconnect when a write fails, so a
    stream paused on `Hang` would never see it; here a second task waits for the
    `http.disconnect` message while the first one sends.
    """

    _FLUSH_AT = 16384

    _HEADERS = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
    ]

    def __init__(self, fake: ScriptedFake, output: Iterator[Output]) -> None:
        # No Response.__init__: it would declare a Content-Length for an empty body.
        self.status_code = 200
        self.background = None
        self._fake = fake
        self._output = output

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._HEADERS})
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(self._watch(receive))
        await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        if not pump.done():  # the client left before the end
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._fake._on_disconnect()
            return
        drop = pump.result()
        if drop is not None:
            # Counted before the drop, so a client that sees the cut sees it counted.
            self._fake._on_cut()
            self._drop(scope, drop)
            await watch  # the server saw the connection go: the response ends unfinished
            return
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._fake._on_complete()

    def _drop(self, scope: Scope, drop: Drop) -> None:
        client = scope.get("client")
        transport = self._fake._server.transport_of(tuple(client)) if client else None
        if transport is None:
            raise RuntimeError("the connection to cut was not found")
        if drop.reset:
            # Linger 0: closing the socket sends RST instead of FIN. `close()` still
            # writes out what is buffered before it closes the socket.
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.close()

    async def _pump(self, send: Send) -> Drop | None:
        """Send the output; the `Drop` that ends it early, if one does."""
        # Frames are batched while no pause comes, so long fast streams cost few writes.
        buffer = bytearray()
        for item in self._output:
            if isinstance(item, Drop):
                if buffer:
                    await send(
                        {"type": "http.response.body", "body": bytes(buffer), "more_body": True}
                    )
                return item
            if isinstance(item, Pause):
                if buffer:
                    await send(
                        {"type": "http.response.body", "body": bytes(buffer), "more_body": True}
                    )
                    buffer.clear()
                if item.seconds is None:
                    await self._fake._hang()
                    return None  # only a server stop ends a hang: end the body there
                elif item.seconds > 0:
                    await asyncio.sleep(item.seconds)
                continue
            buffer += item
            if len(buffer) >= self._FLUSH_AT:
                await send({"type": "http.response.body", "body": bytes(buffer), "more_body": True})
                buffer.clear()
        if buffer:
            await send({"type": "http.response.body", "body": bytes(buffer), "more_body": True})
        return None

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass


def json_error(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)
