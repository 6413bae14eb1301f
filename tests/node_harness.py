"""Python side of the Node.js conformance harness (tests/node/*.mjs).

The scripts in tests/node run the REAL `ai` / `@ai-sdk/react` client code (pinned in
tests/node/package.json) and print one JSON document each. This module finds or installs a
Node >= 22 (scripts/ensure-node.sh), installs the npm dependencies (scripts/ensure-node-deps.sh)
and runs the scripts.

Client versions: `ai` 5, 6 and 7 are installed side by side; every call drives one of them
(`client=`, or `node.for_client(5)`), 7 by default. The `NodeHarness` methods for
validate-stream, schema-check and fold-chunks go to one long-lived worker process per version
(tests/node/worker.mjs); chat-client runs in a process of its own each time.

Use it from a test module (there is deliberately no conftest.py)::

    from tests.node_harness import NodeHarness, node_fixture  # noqa: F401

    def test_something(node: NodeHarness) -> None:
        out = node.validate_sse(b'data: {"type":"start","messageId":"m"}\\n\\n')
        assert out["final"]["id"] == "m"

The `node` fixture is session-scoped and FAILS (never skips) when Node cannot be set up.
Plain functions (`run_node`, `node_binary`, ...) work without pytest fixtures too.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import select
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = REPO_ROOT / "tests" / "node"
ENSURE_NODE = REPO_ROOT / "scripts" / "ensure-node.sh"
ENSURE_NODE_DEPS = REPO_ROOT / "scripts" / "ensure-node-deps.sh"

#: First-time setup downloads a Node binary (~30 MB) and the npm packages.
SETUP_TIMEOUT_S = 900

#: The major versions of `ai` installed in tests/node (package.json: "ai5", "ai6" are aliases).
CLIENTS = (5, 6, 7)
LATEST_CLIENT = 7

_setup_lock = threading.Lock()


class NodeSetupError(RuntimeError):
    """Node >= 22 or the npm dependencies could not be set up."""


def _run_setup_script(script: Path) -> str:
    try:
        proc = subprocess.run(
            ["bash", str(script)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NodeSetupError(f"{script.name} did not finish within {SETUP_TIMEOUT_S}s") from exc
    if proc.returncode != 0:
        raise NodeSetupError(
            f"{script.name} failed with exit code {proc.returncode}:\n{proc.stderr.strip()}"
        )
    lines = proc.stdout.strip().splitlines()
    if not lines or not Path(lines[-1]).is_file():
        raise NodeSetupError(f"{script.name} printed no node path: {proc.stdout!r}\n{proc.stderr}")
    return lines[-1]


@functools.cache
def node_binary() -> str:
    """Absolute path of a node >= 22 (runs scripts/ensure-node.sh once per process)."""
    with _setup_lock:
        return _run_setup_script(ENSURE_NODE)


@functools.cache
def ensure_node_deps() -> str:
    """Runs `npm ci` in tests/node if needed (once per process); returns the node path."""
    node_binary()
    with _setup_lock:
        return _run_setup_script(ENSURE_NODE_DEPS)


@dataclass(frozen=True)
class NodeResult:
    """Outcome of one script run: exit code, the parsed JSON document (None if unparsable)."""

    returncode: int
    output: Any
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _script_path(script: str) -> Path:
    name = script if script.endswith((".mjs", ".js")) else f"{script}.mjs"
    path = NODE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no Node harness script {path}")
    return path


def _encode_input(data: Any) -> bytes | None:
    if data is None:
        return None
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return json.dumps(data).encode("utf-8")


def run_node_raw(
    script: str, *args: str, input: Any = None, timeout: float = 60, client: int = LATEST_CLIENT
) -> NodeResult:
    """Runs `node tests/node/<script>.mjs <args>` and returns its outcome without judging it.

    `input` (str, bytes, or any JSON-able value, which is serialised) goes to stdin.
    `client` is the major version of the `ai` package the script drives (5, 6 or 7).
    """
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {CLIENTS}, got {client!r}")
    node = ensure_node_deps()
    cmd = [node, str(_script_path(script)), *args]
    env = {**os.environ, "NODE_NO_WARNINGS": "1", "AI_SDK_CLIENT": str(client)}
    try:
        proc = subprocess.run(
            cmd,
            input=_encode_input(input) or b"",
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if exc.stderr else ""
        raise AssertionError(
            f"node {script} {' '.join(args)} timed out after {timeout}s\nstderr:\n{stderr}"
        ) from exc
    stdout = proc.stdout.decode("utf-8", "replace")
    output: Any = None
    try:
        output = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        output = None
    return NodeResult(proc.returncode, output, stdout, proc.stderr.decode("utf-8", "replace"))


def run_node(
    script: str, *args: str, input: Any = None, timeout: float = 60, client: int = LATEST_CLIENT
) -> Any:
    """Runs a harness script and returns its parsed JSON output.

    Raises AssertionError (with the script's stderr) when it exits non-zero or prints no JSON.
    """
    result = run_node_raw(script, *args, input=input, timeout=timeout, client=client)
    return _passed(result, script, args)


def _passed(result: NodeResult, script: str, args: Sequence[str]) -> Any:
    if result.returncode != 0 or result.output is None:
        raise AssertionError(
            f"node {script} {' '.join(args)} failed (exit {result.returncode}):\n"
            f"{result.stderr.strip()}\nstdout: {result.stdout[:2000]}"
        )
    return result.output


def run_node_expect_failure(
    script: str, *args: str, input: Any = None, timeout: float = 60, client: int = LATEST_CLIENT
) -> NodeResult:
    """Runs a harness script that is expected to FAIL a check (exit 1); returns the outcome.

    Raises AssertionError when it passes, or fails for another reason (usage error, crash).
    """
    result = run_node_raw(script, *args, input=input, timeout=timeout, client=client)
    return _failed_a_check(result, script, args)


def _failed_a_check(result: NodeResult, script: str, args: Sequence[str]) -> NodeResult:
    if result.returncode == 0:
        raise AssertionError(
            f"node {script} {' '.join(args)} passed but was expected to fail:\n"
            f"{result.stdout[:2000]}"
        )
    if (
        result.returncode != 1
        or not isinstance(result.output, dict)
        or result.output.get("crashed")
    ):
        raise AssertionError(
            f"node {script} did not fail a check but broke (exit {result.returncode}):\n"
            f"{result.stderr.strip()}"
        )
    return result


class NodeWorker:
    """One `node worker.mjs` for one client version: runs validate-stream, schema-check and
    fold-chunks without starting Node (and loading `ai`) for each call. Thread-safe; calls
    run one at a time. Started on first use, ended by `close` (or when it misbehaves)."""

    def __init__(self, binary: str, client: int) -> None:
        self.binary = binary
        self.client = client
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None

    def run(self, script: str, *args: str, input: Any = None, timeout: float = 60) -> NodeResult:
        request = {
            "script": script,
            "args": list(args),
            "stdin": base64.b64encode(_encode_input(input) or b"").decode("ascii"),
        }
        with self._lock:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps(request).encode() + b"\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], timeout)
                line = proc.stdout.readline() if ready else b""
            except (BrokenPipeError, OSError):
                line = b""
            if not line:
                problem = "timed out" if proc.poll() is None else "died"
                stderr = self._stderr_text()
                self._stop()
                raise AssertionError(
                    f"node worker {problem} running {script} {' '.join(args)} "
                    f"(client {self.client})\nstderr:\n{stderr}"
                )
        answer = json.loads(line)
        return NodeResult(answer["code"], answer["doc"], json.dumps(answer["doc"]), answer["log"])

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()  # one that died: its pipes and stderr file
        # Lives as long as the worker (its stderr, read when it fails); closed by _stop.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        env = {**os.environ, "NODE_NO_WARNINGS": "1", "AI_SDK_CLIENT": str(self.client)}
        self._proc = subprocess.Popen(
            [self.binary, str(_script_path("worker"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return str(self._stderr.read().decode("utf-8", "replace"))[-4000:]


class NodeHarness:
    """Convenience wrappers over the scripts (what the `node` fixture returns), driving the
    `ai` client of major version `client` (7 unless made with `for_client`)."""

    def __init__(
        self,
        binary: str,
        client: int = LATEST_CLIENT,
        workers: dict[int, NodeWorker] | None = None,
    ) -> None:
        self.binary = binary
        self.client = client
        # Shared by every harness made with for_client: one worker per version.
        self._workers = {} if workers is None else workers

    def for_client(self, client: int) -> NodeHarness:
        """The same harness driving another major version of `ai` (5, 6 or 7)."""
        if client not in CLIENTS:
            raise ValueError(f"client must be one of {CLIENTS}, got {client!r}")
        return NodeHarness(self.binary, client, self._workers)

    def close(self) -> None:
        """Ends the worker processes."""
        for worker in self._workers.values():
            worker.close()

    def _worker(self) -> NodeWorker:
        worker = self._workers.get(self.client)
        if worker is None:
            worker = self._workers.setdefault(self.client, NodeWorker(self.binary, self.client))
        return worker

    def _run(self, script: str, *args: str, input: Any = None, timeout: float = 60) -> Any:
        result = self._worker().run(script, *args, input=input, timeout=timeout)
        return _passed(result, script, args)

    # validate-stream.mjs ------------------------------------------------------------------

    def validate_sse(self, body: bytes | str, *flags: str, timeout: float = 60) -> Any:
        """Validates a saved SSE response body; returns {chunks, messages, final, ids, ...}."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        return self._run("validate-stream", "--file", "-", *flags, input=data, timeout=timeout)

    def validate_sse_failure(self, body: bytes | str, *flags: str) -> NodeResult:
        """Validates an SSE body expected to be REJECTED; returns the failing outcome."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        args = ("--file", "-", *flags)
        result = self._worker().run("validate-stream", *args, input=data)
        return _failed_a_check(result, "validate-stream", args)

    def validate_file(self, path: str | Path, *flags: str) -> Any:
        return self._run("validate-stream", "--file", str(Path(path).resolve()), *flags)

    def validate_url(
        self,
        url: str,
        *,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        flags: Sequence[str] = (),
        timeout: float = 60,
    ) -> Any:
        """Fetches URL and validates the SSE body it returns."""
        args = ["--url", url, "--method", method, "--timeout", str(int(timeout * 1000))]
        if body is not None:
            args += ["--body", body if isinstance(body, str) else json.dumps(body)]
        for key, value in (headers or {}).items():
            args += ["--header", f"{key}: {value}"]
        return self._run("validate-stream", *args, *flags, timeout=timeout + 10)

    # schema-check.mjs / fold-chunks.mjs ---------------------------------------------------

    def schema_check(self, chunks: Sequence[Any]) -> Any:
        """Per-chunk validation: {ok, failed: [i...], results: [{index, ok, reason?...}]}.

        Elements may be chunk dicts or the exact JSON text a server sends after `data: `.
        """
        return self._run("schema-check", input=list(chunks))

    def fold_chunks(
        self, chunks: Sequence[Any], message: Mapping[str, Any] | None = None, *flags: str
    ) -> Any:
        """The UIMessage the client builds from these chunks (readUIMessageStream)."""
        payload: dict[str, Any] = {"chunks": list(chunks)}
        if message is not None:
            payload["message"] = dict(message)
        return self._run("fold-chunks", *flags, input=payload)

    # chat-client.mjs ----------------------------------------------------------------------

    def chat(self, scenario: Mapping[str, Any], timeout: float = 90) -> Any:
        """Runs a Chat scenario (see the header of tests/node/chat-client.mjs)."""
        return run_node(
            "chat-client",
            "--scenario",
            "-",
            input=dict(scenario),
            timeout=timeout,
            client=self.client,
        )

    def chat_raw(self, scenario: Mapping[str, Any], timeout: float = 90) -> NodeResult:
        return run_node_raw(
            "chat-client",
            "--scenario",
            "-",
            input=dict(scenario),
            timeout=timeout,
            client=self.client,
        )


@pytest.fixture(scope="session", name="node")
def node_fixture() -> Iterator[NodeHarness]:
    """Node >= 22 with tests/node's dependencies installed. Fails (never skips) otherwise."""
    try:
        binary = ensure_node_deps()
    except NodeSetupError as exc:
        pytest.fail(f"Node.js conformance harness could not be set up:\n{exc}", pytrace=False)
    harness = NodeHarness(binary)
    yield harness
    harness.close()
