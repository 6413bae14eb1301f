"""Tests of the Node.js conformance harness itself (tests/node + tests/node_harness.py).

They run the real `ai` client code against streams and a tiny scripted SSE server written here
(stdlib http.server in a thread), to prove the harness passes good streams, FAILS bad ones, and
drives the Chat class through send, drop + resume, reload + resume and the WebSocket transport.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.node_harness import NodeHarness, node_fixture, run_node_raw  # noqa: F401

pytestmark = pytest.mark.node

Chunk = dict[str, Any]


def sse(chunks: list[Chunk], *, ids: bool = True, done: bool = True) -> bytes:
    """Frames chunks as the server does: `id: <offset>` + `data: <json>` + blank line."""
    out = []
    for index, chunk in enumerate(chunks):
        prefix = f"id: {index}\n" if ids else ""
        out.append(f"{prefix}data: {json.dumps(chunk)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode("utf-8")


def text_answer(message_id: str, text: str, *, pieces: int = 1) -> list[Chunk]:
    """A one-step text answer split into `pieces` deltas."""
    size = max(1, -(-len(text) // pieces))
    deltas = [text[i : i + size] for i in range(0, len(text), size)]
    return [
        {"type": "start", "messageId": message_id},
        {"type": "start-step"},
        {"type": "text-start", "id": "t1"},
        *({"type": "text-delta", "id": "t1", "delta": d} for d in deltas),
        {"type": "text-end", "id": "t1"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]


def assistant_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [
        "".join(p["text"] for p in m["parts"] if p["type"] == "text")
        for m in messages
        if m["role"] == "assistant"
    ]


# --- a scripted chat server ---------------------------------------------------------------


@dataclass
class Generation:
    """One answer being produced; its SSE events are kept so a resume can replay them."""

    events: list[bytes] = field(default_factory=list)
    done: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)

    def append(self, event: bytes) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def finish(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def tail(self) -> Iterator[bytes]:
        """Every event from the first one, then live ones until done (full replay)."""
        sent = 0
        while True:
            with self.cond:
                while sent >= len(self.events) and not self.done:
                    self.cond.wait(timeout=1)
                batch = self.events[sent:]
                finished = self.done
            sent += len(batch)
            yield from batch
            if finished and sent >= len(self.events):
                return


Responder = Callable[[dict[str, Any]], list[Chunk]]


class ScriptedChatServer:
    """POST /api/chat answers with `responder(body)`'s chunks, one every `delay_s` seconds,
    produced in a background thread independent of the client connection (like a resumable
    backend). GET /api/chat/{id}/stream replays the chat's latest generation from its first
    event and tails it (204 if there is none); GET /api/chat/{id}/messages returns the messages
    of the last POST."""

    def __init__(self, responder: Responder, delay_s: float = 0.0) -> None:
        self.responder = responder
        self.delay_s = delay_s
        self.generations: dict[str, Generation] = {}
        self.messages: dict[str, list[Any]] = {}
        self.log: list[tuple[str, str]] = []
        self.disconnects = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/api/chat"

    def __enter__(self) -> ScriptedChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def start_generation(self, chat_id: str, chunks: list[Chunk]) -> Generation:
        generation = Generation()
        self.generations[chat_id] = generation

        def produce() -> None:
            for index, chunk in enumerate(chunks):
                if self.delay_s:
                    time.sleep(self.delay_s)
                generation.append(f"id: {index}\ndata: {json.dumps(chunk)}\n\n".encode())
            generation.append(b"data: [DONE]\n\n")
            generation.finish()

        threading.Thread(target=produce, daemon=True).start()
        return generation

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _stream(self, generation: Generation) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("x-vercel-ai-ui-message-stream", "v1")
                self.end_headers()
                try:
                    for event in generation.tail():
                        self.wfile.write(event)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    server.disconnects += 1

            def _json(self, status: int, value: Any) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                server.log.append(("POST", path))
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if path != "/api/chat":
                    self._json(404, {"error": "not found"})
                    return
                chat_id = body["id"]
                server.messages[chat_id] = body.get("messages") or [body.get("message")]
                self._stream(server.start_generation(chat_id, server.responder(body)))

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                server.log.append(("GET", path))
                if m := re.fullmatch(r"/api/chat/([^/]+)/stream", path):
                    generation = server.generations.get(unquote(m.group(1)))
                    if generation is None:
                        self.send_response(204)
                        self.end_headers()
                        return
                    self._stream(generation)
                elif m := re.fullmatch(r"/api/chat/([^/]+)/messages", path):
                    self._json(200, server.messages.get(unquote(m.group(1)), []))
                else:
                    self._json(404, {"error": "not found"})

        return Handler


class ScriptedWebSocketChatServer:
    """The WebSocketChatTransport protocol: a `send` frame starts a generation (chunks produced
    every `delay_s` in a background thread) streamed as `chunk` frames with sequence numbers
    and an `end`; a `resume` frame gets `start` + a replay from sequence 0 + live chunks, or
    `no-active`."""

    def __init__(self, responder: Responder, delay_s: float = 0.0) -> None:
        self.chat = ScriptedChatServer(responder, delay_s)  # reuses its generations
        self.frames: list[dict[str, Any]] = []
        self._server: Server = serve(self._handle, "127.0.0.1", 0, compression=None)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/api/chat"

    def __enter__(self) -> ScriptedWebSocketChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()

    def _handle(self, ws: ServerConnection) -> None:
        lock = threading.Lock()

        def send(frame: dict[str, Any]) -> None:
            with lock:
                ws.send(json.dumps(frame))

        def stream(request_id: str, generation: Generation) -> None:
            try:
                sequence = 0
                for event in generation.tail():
                    data = event.decode().split("data: ", 1)[1].strip()
                    if data == "[DONE]":
                        continue
                    send(
                        {
                            "type": "chunk",
                            "requestId": request_id,
                            "sequence": sequence,
                            "chunk": json.loads(data),
                        }
                    )
                    sequence += 1
                send({"type": "end", "requestId": request_id})
            except ConnectionClosed:
                self.chat.disconnects += 1

        try:
            for raw in ws:
                frame = json.loads(raw)
                self.frames.append(frame)
                request_id = frame["requestId"]
                if frame["type"] == "send":
                    generation = self.chat.start_generation(frame["id"], self.chat.responder(frame))
                elif frame["type"] == "resume":
                    found = self.chat.generations.get(frame["id"])
                    if found is None:
                        send({"type": "no-active", "requestId": request_id})
                        continue
                    generation = found
                    send({"type": "start", "requestId": request_id})
                else:  # abort: the generation goes on (resumable backend)
                    continue
                threading.Thread(target=stream, args=(request_id, generation), daemon=True).start()
        except ConnectionClosed:
            pass


# --- validate-stream.mjs ------------------------------------------------------------------


def test_valid_stream_passes_and_final_message_is_right(node: NodeHarness) -> None:
    chunks = [
        *text_answer("msg-1", "Hello, wörld!", pieces=3)[:-1],
        {"type": "data-weather", "id": "w1", "data": {"city": "Paris"}},
        {"type": "finish", "finishReason": "stop"},
    ]
    body = sse(chunks) + b": keep-alive\n\n"
    out = node.validate_sse(body)

    assert out["ok"] is True
    assert out["chunks"] == chunks
    assert out["ids"] == [str(i) for i in range(len(chunks))]
    assert out["sse"]["done"] is True
    assert out["sse"]["commentEvents"] == 1
    final = out["final"]
    assert final["id"] == "msg-1"
    assert final["role"] == "assistant"
    assert final["parts"] == [
        {"type": "step-start"},
        {"type": "text", "text": "Hello, wörld!", "state": "done"},
        {"type": "data-weather", "id": "w1", "data": {"city": "Paris"}},
    ]
    assert out["messages"][-1] == final
    assert len(out["messages"]) > 1  # every snapshot readUIMessageStream yielded


def test_message_id_null_fails_validation(node: NodeHarness) -> None:
    body = sse([{"type": "start", "messageId": None}, {"type": "finish"}])
    result = node.validate_sse_failure(body)
    assert result.output["failedChunk"]["index"] == 0
    assert "messageId" in result.output["error"]
    assert "received null" in result.output["error"]
    assert "chunk #0" in result.stderr


def test_unknown_chunk_type_fails_validation(node: NodeHarness) -> None:
    body = sse([{"type": "start", "messageId": "m"}, {"type": "text-bogus", "id": "x"}])
    result = node.validate_sse_failure(body)
    assert result.output["failedChunk"]["index"] == 1
    assert 'unknown chunk type "text-bogus"' in result.output["error"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b'data: {"type":"start","messageId":"m"}\n\ndata: {"type":"finish"}',
            "not followed by a blank line",
            id="unterminated-last-event",
        ),
        pytest.param(
            sse(
                [
                    {"type": "start", "messageId": "m"},
                    {"type": "text-delta", "id": "t", "delta": "x"},
                ]
            ),
            "text-delta for missing text part",
            id="delta-without-start",
        ),
        pytest.param(
            sse([{"type": "tool-output-available", "toolCallId": "c1"}]),
            "output",
            id="missing-required-output-key",
        ),
        pytest.param(b"data: {not json\n\n", "JSON parsing failed", id="bad-json"),
    ],
)
def test_other_bad_streams_fail(node: NodeHarness, body: bytes, expected: str) -> None:
    result = node.validate_sse_failure(body)
    assert expected in result.output["error"]


def test_error_chunk_is_valid_protocol(node: NodeHarness) -> None:
    out = node.validate_sse(
        sse([{"type": "start", "messageId": "m"}, {"type": "error", "errorText": "boom"}])
    )
    assert out["errorTexts"] == ["boom"]
    assert out["streamError"] is None


def test_validate_url_against_a_server(node: NodeHarness) -> None:
    with ScriptedChatServer(lambda body: text_answer("m-url", "hi there", pieces=2)) as server:
        out = node.validate_url(
            server.api,
            method="POST",
            body={"id": "c-url", "messages": [], "trigger": "submit-message"},
        )
    assert out["http"]["status"] == 200
    assert out["http"]["headers"]["x-vercel-ai-ui-message-stream"] == "v1"
    assert out["final"]["parts"][1] == {"type": "text", "text": "hi there", "state": "done"}
    assert out["ids"] == [str(i) for i in range(len(out["chunks"]))]


def test_usage_error_is_reported() -> None:
    result = run_node_raw("validate-stream")
    assert result.returncode == 2
    assert "--file" in result.stderr


# --- schema-check.mjs / fold-chunks.mjs ---------------------------------------------------


def test_schema_check_reports_each_chunk(node: NodeHarness) -> None:
    out = node.schema_check(
        [
            {"type": "start", "messageId": "m"},
            '{"type": "text-start", "id": "t"}',  # exact wire text
            {"type": "tool-input-available", "toolCallId": "c", "toolName": "x", "input": None},
            {"type": "finish", "finishReason": None},
            {"type": "nope"},
        ]
    )
    assert out["failed"] == [3, 4]
    assert out["results"][1]["value"] == {"type": "text-start", "id": "t"}
    assert "finishReason" in out["results"][3]["reason"]
    assert out["results"][4]["reason"] == 'unknown chunk type "nope"'


def test_fold_chunks_gives_the_clients_message(node: NodeHarness) -> None:
    chunks = [
        {"type": "start", "messageId": "m"},
        {"type": "start-step"},
        {"type": "tool-input-start", "toolCallId": "c1", "toolName": "weather"},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"city":'},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '"Paris"}'},
        {
            "type": "tool-input-available",
            "toolCallId": "c1",
            "toolName": "weather",
            "input": {"city": "Paris"},
        },
        {"type": "tool-output-available", "toolCallId": "c1", "output": {"temp": 21}},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]
    out = node.fold_chunks(chunks)
    assert out["final"]["parts"] == [
        {"type": "step-start"},
        {
            "type": "tool-weather",
            "toolCallId": "c1",
            "state": "output-available",
            "input": {"city": "Paris"},
            "output": {"temp": 21},
        },
    ]


# --- chat-client.mjs ----------------------------------------------------------------------


def test_chat_send_returns_the_assistant_message(node: NodeHarness) -> None:
    with ScriptedChatServer(
        lambda body: text_answer("asst-1", "Hi! How can I help?", pieces=4)
    ) as server:
        out = node.chat(
            {
                "api": server.api,
                "chatId": "c-send",
                "steps": [{"op": "send", "text": "hi"}, {"op": "waitStatus", "status": "ready"}],
            }
        )
    assert out["ok"] is True
    assert out["status"] == "ready"
    assert out["error"] is None
    user, assistant = out["messages"]
    assert user["role"] == "user"
    assert user["parts"] == [{"type": "text", "text": "hi"}]
    assert assistant["id"] == "asst-1"
    assert assistant_texts(out["messages"]) == ["Hi! How can I help?"]
    (request,) = out["requests"]
    assert request["method"] == "POST"
    assert request["body"]["id"] == "c-send"
    assert request["body"]["trigger"] == "submit-message"
    finishes = [e for e in out["events"] if e["type"] == "finish"]
    assert len(finishes) == 1
    assert finishes[0]["finishReason"] == "stop"
    assert not finishes[0]["isError"]


def test_chat_error_status_from_invalid_chunk(node: NodeHarness) -> None:
    responder: Responder = lambda body: [{"type": "start", "messageId": None}]  # noqa: E731
    with ScriptedChatServer(responder) as server:
        out = node.chat({"api": server.api, "steps": [{"op": "send", "text": "hi"}]})
    assert out["status"] == "error"
    assert "Type validation failed" in out["error"]


def test_chat_drop_after_chunks_then_resume(node: NodeHarness) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    chunks = text_answer("asst-drop", text, pieces=12)
    with ScriptedChatServer(lambda body: chunks, delay_s=0.03) as server:
        out = node.chat(
            {
                "api": server.api,
                "chatId": "c-drop",
                "steps": [
                    {"op": "dropAfterChunks", "n": 5},
                    {"op": "send", "text": "tell me"},
                    {"op": "snapshot", "label": "after-drop"},
                    {"op": "resume"},
                    {"op": "waitStatus", "status": "ready"},
                ],
            }
        )
        log = list(server.log)
    assert ("GET", "/api/chat/c-drop/stream") in log
    snapshot = next(e for e in out["events"] if e["type"] == "snapshot")
    assert snapshot["status"] == "error"
    assert snapshot["error"] == "terminated"
    first, second = out["responses"]
    assert (first["kind"], first["state"], first["chunkCount"]) == ("send", "dropped", 5)
    assert (second["kind"], second["state"]) == ("resume", "done")
    assert second["chunkCount"] == len(chunks)  # full replay
    finishes = [e for e in out["events"] if e["type"] == "finish"]
    assert [f["isError"] for f in finishes] == [True, False]
    assert out["status"] == "ready"
    assert [m["role"] for m in out["messages"]] == ["user", "assistant"]
    assert out["messages"][1]["id"] == "asst-drop"
    assert assistant_texts(out["messages"]) == [text]


def test_chat_reload_then_resume(node: NodeHarness) -> None:
    text = "Resumed after a reload, without duplicates."
    chunks = text_answer("asst-reload", text, pieces=10)
    with ScriptedChatServer(lambda body: chunks, delay_s=0.03) as server:
        out = node.chat(
            {
                "api": server.api,
                "chatId": "c-reload",
                "steps": [
                    {"op": "send", "text": "go", "wait": False},
                    {"op": "waitChunks", "n": 4},
                    {"op": "newChat"},
                    {"op": "resume"},
                ],
            }
        )
    new_chat = next(e for e in out["events"] if e["type"] == "newChat")
    assert new_chat["messageCount"] == 1  # the stored user message
    assert out["status"] == "ready"
    assert [m["role"] for m in out["messages"]] == ["user", "assistant"]
    assert assistant_texts(out["messages"]) == [text]
    assert out["responses"][0]["state"] == "cancelled"  # the old page's fetch was aborted


def test_chat_client_tool_round_trip(node: NodeHarness) -> None:
    def responder(body: dict[str, Any]) -> list[Chunk]:
        last = body["messages"][-1]
        if last["role"] == "user":
            return [
                {"type": "start", "messageId": "asst-tool"},
                {"type": "start-step"},
                {
                    "type": "tool-input-available",
                    "toolCallId": "call-1",
                    "toolName": "getLocation",
                    "input": {},
                },
                {"type": "finish-step"},
                {"type": "finish", "finishReason": "tool-calls"},
            ]
        tool_part = next(p for p in last["parts"] if p["type"] == "tool-getLocation")
        city = tool_part["output"]["city"]
        return [
            {"type": "start", "messageId": last["id"]},
            {"type": "start-step"},
            {"type": "text-start", "id": "t2"},
            {"type": "text-delta", "id": "t2", "delta": f"You are in {city}."},
            {"type": "text-end", "id": "t2"},
            {"type": "finish-step"},
            {"type": "finish", "finishReason": "stop"},
        ]

    with ScriptedChatServer(responder) as server:
        out = node.chat(
            {
                "api": server.api,
                "clientTools": {"getLocation": {"output": {"city": "Paris"}}},
                "auto": "toolCalls",
                "steps": [{"op": "send", "text": "where am I?"}],
            }
        )
    assert out["status"] == "ready"
    assert len(out["requests"]) == 2
    second = out["requests"][1]["body"]
    assert second["messageId"] == "asst-tool"
    assert second["trigger"] == "submit-message"
    (assistant,) = [m for m in out["messages"] if m["role"] == "assistant"]
    assert [p["type"] for p in assistant["parts"]] == [
        "step-start",
        "tool-getLocation",
        "step-start",
        "text",
    ]
    assert assistant["parts"][1]["state"] == "output-available"
    assert assistant_texts(out["messages"]) == ["You are in Paris."]


def test_bad_scenario_fails_loudly(node: NodeHarness) -> None:
    result = node.chat_raw({"api": "http://127.0.0.1:9/api/chat", "steps": [{"op": "fly"}]})
    assert result.returncode == 2
    assert "unknown op" in result.stderr


def test_chat_websocket_transport_send_drop_resume(node: NodeHarness) -> None:
    text = "Streaming over one WebSocket."
    chunks = text_answer("asst-ws", text, pieces=8)
    with ScriptedWebSocketChatServer(lambda frame: chunks, delay_s=0.03) as server:
        out = node.chat(
            {
                "api": server.url.replace("ws://", "http://"),
                "transport": "websocket",
                "chatId": "c-ws",
                "steps": [
                    {"op": "dropAfterChunks", "n": 4},
                    {"op": "send", "text": "hi"},
                    {"op": "snapshot", "label": "dropped"},
                    {"op": "resume"},
                ],
            }
        )
        frame_types = [f["type"] for f in server.frames]
    assert frame_types == ["send", "resume"]
    snapshot = next(e for e in out["events"] if e["type"] == "snapshot")
    assert snapshot["status"] == "error"
    assert "WebSocket chat network connection closed" in snapshot["error"]
    assert [e["type"] for e in out["events"]].count("wsConnect") == 2  # a new socket to resume
    assert out["status"] == "ready"
    assert [m["role"] for m in out["messages"]] == ["user", "assistant"]
    assert assistant_texts(out["messages"]) == [text]


def test_chat_websocket_resume_with_nothing_active(node: NodeHarness) -> None:
    with ScriptedWebSocketChatServer(lambda frame: []) as server:
        out = node.chat(
            {
                "api": server.url,
                "transport": "websocket",
                "chatId": "idle",
                "steps": [{"op": "resume"}],
            }
        )
    assert out["status"] == "ready"
    assert out["messages"] == []
    assert any(e["type"] == "resumeNoActive" for e in out["events"])


def test_chat_tool_approval_round_trip(node: NodeHarness) -> None:
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> list[Chunk]:
        last = body["messages"][-1]
        if last["role"] == "user":
            return [
                {"type": "start", "messageId": "asst-approve"},
                {"type": "start-step"},
                {
                    "type": "tool-input-available",
                    "toolCallId": "call-del",
                    "toolName": "deleteFile",
                    "input": {"path": "/tmp/x"},
                },
                {"type": "tool-approval-request", "approvalId": "ap-1", "toolCallId": "call-del"},
                {"type": "finish-step"},
                {"type": "finish", "finishReason": "tool-calls"},
            ]
        seen.append(body)
        return [
            {"type": "start", "messageId": last["id"]},
            {"type": "tool-output-available", "toolCallId": "call-del", "output": {"ok": True}},
            {"type": "start-step"},
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "Deleted."},
            {"type": "text-end", "id": "t"},
            {"type": "finish-step"},
            {"type": "finish", "finishReason": "stop"},
        ]

    with ScriptedChatServer(responder) as server:
        out = node.chat(
            {
                "api": server.api,
                "auto": "approvals",
                "steps": [
                    {"op": "send", "text": "delete /tmp/x"},
                    {
                        "op": "addToolApprovalResponse",
                        "match": {"toolName": "deleteFile"},
                        "approved": True,
                        "reason": "fine",
                    },
                ],
            }
        )
    (body,) = seen
    assert body["messageId"] == "asst-approve"
    tool_part = body["messages"][-1]["parts"][1]
    assert tool_part["state"] == "approval-responded"
    assert tool_part["approval"] == {"id": "ap-1", "approved": True, "reason": "fine"}
    assert out["status"] == "ready"
    (assistant,) = [m for m in out["messages"] if m["role"] == "assistant"]
    assert assistant["parts"][1]["state"] == "output-available"
    assert assistant_texts(out["messages"]) == ["Deleted."]


def test_worker_answers_like_a_script_run_and_survives_a_dead_process(node: NodeHarness) -> None:
    body = b'data: {"type":"start","messageId":"m"}\n\ndata: {"type":"finish"}\n\n'
    alone = run_node_raw("validate-stream", "--file", "-", input=body)
    assert node.validate_sse(body) == alone.output
    worker = node._worker()
    proc = worker._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    assert node.validate_sse(body) == alone.output  # a new worker took over
    assert worker._proc is not None and worker._proc.pid != proc.pid
