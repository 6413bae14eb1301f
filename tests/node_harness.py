"""Python side of the Node.js conformance harness (tests/node/*.mjs).

The scripts in tests/node run the REAL `ai` / `@ai-sdk/react` client code (pinned in
tests/node/package.json) and print one JSON document each. This module finds or installs a
Node >= 22 (scripts/ensure-node.sh), installs the npm dependencies (scripts/ensure-node-deps.sh)
and runs the scripts.

Use it from a test module (there is deliberately no conftest.py)::

    from tests.node_harness import NodeHarness, node_fixture  # noqa: F401

    def test_something(node: NodeHarness) -> None:
        out = node.validate_sse(b'data: {"type":"start","messageId":"m"}\\n\\n')
        assert out["final"]["id"] == "m"

The `node` fixture is session-scoped and FAILS (never skips) when Node cannot be set up.
Plain functions (`run_node`, `node_binary`, ...) work without pytest fixtures too.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
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


class NodeHarness:
    """Convenience wrappers over the scripts (what the `node` fixture returns), driving the
    `ai` client of major version `client` (7 unless made with `for_client`)."""

    def __init__(self, binary: str, client: int = LATEST_CLIENT) -> None:
        self.binary = binary
        self.client = client

    def for_client(self, client: int) -> NodeHarness:
        """The same harness driving another major version of `ai` (5, 6 or 7)."""
        if client not in CLIENTS:
            raise ValueError(f"client must be one of {CLIENTS}, got {client!r}")
        return NodeHarness(self.binary, client)

    # validate-stream.mjs ------------------------------------------------------------------

    def validate_sse(self, body: bytes | str, *flags: str, timeout: float = 60) -> Any:
        """Validates a saved SSE response body; returns {chunks, messages, final, ids, ...}."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        return run_node(
            "validate-stream",
            "--file",
            "-",
            *flags,
            input=data,
            timeout=timeout,
            client=self.client,
        )

    def validate_sse_failure(self, body: bytes | str, *flags: str) -> NodeResult:
        """Validates an SSE body expected to be REJECTED; returns the failing outcome."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        return run_node_expect_failure(
            "validate-stream", "--file", "-", *flags, input=data, client=self.client
        )

    def validate_file(self, path: str | Path, *flags: str) -> Any:
        return run_node(
            "validate-stream", "--file", str(Path(path).resolve()), *flags, client=self.client
        )

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
        return run_node("validate-stream", *args, *flags, timeout=timeout + 10, client=self.client)

    # schema-check.mjs / fold-chunks.mjs ---------------------------------------------------

    def schema_check(self, chunks: Sequence[Any]) -> Any:
        """Per-chunk validation: {ok, failed: [i...], results: [{index, ok, reason?...}]}.

        Elements may be chunk dicts or the exact JSON text a server sends after `data: `.
        """
        return run_node("schema-check", input=list(chunks), client=self.client)

    def fold_chunks(
        self, chunks: Sequence[Any], message: Mapping[str, Any] | None = None, *flags: str
    ) -> Any:
        """The UIMessage the client builds from these chunks (readUIMessageStream)."""
        payload: dict[str, Any] = {"chunks": list(chunks)}
        if message is not None:
            payload["message"] = dict(message)
        return run_node("fold-chunks", *flags, input=payload, client=self.client)

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
def node_fixture() -> NodeHarness:
    """Node >= 22 with tests/node's dependencies installed. Fails (never skips) otherwise."""
    try:
        binary = ensure_node_deps()
    except NodeSetupError as exc:
        pytest.fail(f"Node.js conformance harness could not be set up:\n{exc}", pytrace=False)
    return NodeHarness(binary)
