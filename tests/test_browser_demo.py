"""Browser tests of frontend-demo/ against the real bridge.

A session starts the bridge (scripted demo model, slowed tokens, the example tools, the demo's
origin allowed to open WebSockets) and the Next.js demo (`next start`, built once into
frontend-demo/.next-e2e), then runs each scenario of frontend-demo/e2e/run.mjs: a Node script
that drives Chromium with playwright-core and prints a JSON verdict. No browser means a
failure, never a skip. Scenarios run on the page's default transport (stock SSE) unless
given `--transport ws` (stock WebSocketChatTransport) or `--transport auto` (the resilient
transport of frontend-demo/transport).

Logs of both servers go to test-artifacts/browser/; the screenshot of a finished chat to
test-artifacts/demo-chat.png.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.replay import ReplayServer
from tests.support.ports import free_port, port_is_free

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "frontend-demo"
# DEMO_TEST_DIST_DIR: another build directory (e.g. `.next-e2e-2`), for a second test run at
# the same time that must not serve from a build the first one replaces.
DIST_DIR = os.environ.get("DEMO_TEST_DIST_DIR", ".next-e2e")
ARTIFACTS = REPO / "test-artifacts"
LOGS = ARTIFACTS / "browser"
SCREENSHOT = ARTIFACTS / "demo-chat.png"
RUNNER = DEMO / "e2e" / "run.mjs"

# The build bakes the bridge URL into the `/api/*` rewrite (next.config.ts), so the bridge
# gets a stable port when it is free: the build is then reused from run to run.
PREFERRED_BRIDGE_PORT = int(os.environ.get("DEMO_TEST_BRIDGE_PORT", "18765"))
TOKEN_DELAY_MS = "15"
EXAMPLE_TOOLS = "bridge.tools.examples"
# What the build depends on, besides the bridge URL and the Node version.
BUILD_INPUTS = (
    "package.json",
    "package-lock.json",
    "next.config.ts",
    "tsconfig.json",
    "instrumentation.ts",
    "proxy.ts",
    "app",
    "components",
    "lib",
    "public",
    # The transport package the demo imports (tsc compiles it to transport/dist first).
    "transport/src",
    "transport/package.json",
    "transport/tsconfig.json",
)
# Settings that would take the bridge away from the scripted, in-memory, open demo setup.
SCRUBBED_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "BRIDGE_MODEL",
    "BRIDGE_MODELS",
    "BRIDGE_AUTH_TOKENS",
    "BRIDGE_TOOLS",
    "REDIS_URL",
    "KV_URL",
)


# --------------------------------------------------------------------------- helpers


def _run_script(script: str) -> str:
    """Run one of scripts/*.sh that print a path; fail the session loudly if it fails."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / script)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not path:
        pytest.fail(
            f"scripts/{script} failed (exit {proc.returncode}); the browser tests need it.\n"
            f"{proc.stderr[-3000:]}",
            pytrace=False,
        )
    return path


def _tree_digest(paths: list[Path], extra: str) -> str:
    digest = hashlib.sha256(extra.encode())
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            if not file.exists():
                continue
            digest.update(str(file.relative_to(DEMO)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            # Each server runs in its own process group (start_new_session): end that group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def _start(name: str, cmd: list[str], *, cwd: Path, env: dict[str, str]) -> Server:
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(name, proc, log_path)


def _wait_http(server: Server, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(
                f"{server.name} exited with {server.proc.returncode} before serving {url}:\n"
                f"{server.log_tail()}",
                pytrace=False,
            )
        try:
            response = httpx.get(url, timeout=2.0, follow_redirects=False)
            if response.status_code < 500:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.2)
    pytest.fail(
        f"{server.name} did not serve {url} within {timeout}s ({last}):\n{server.log_tail()}",
        pytrace=False,
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def chromium() -> str:
    return _run_script("ensure-chromium.sh")


@pytest.fixture(scope="session")
def node_env() -> dict[str, str]:
    """The environment for npm, next and the scenario runner: a Node >= 22 first on PATH."""
    node = Path(_run_script("ensure-node.sh"))
    env = dict(os.environ)
    env["PATH"] = f"{node.parent}{os.pathsep}{env.get('PATH', '')}"
    env["NEXT_TELEMETRY_DISABLED"] = "1"
    env.pop("NODE_OPTIONS", None)
    return env


@pytest.fixture(scope="session")
def bridge_url() -> str:
    port = PREFERRED_BRIDGE_PORT if port_is_free(PREFERRED_BRIDGE_PORT) else free_port()
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def demo_build(node_env: dict[str, str], bridge_url: str) -> Path:
    """`npm ci` + `next build` into frontend-demo/.next-e2e, skipped when up to date."""
    if shutil.which("npm", path=node_env["PATH"]) is None:
        pytest.fail("npm is not on PATH; it is needed to build frontend-demo", pytrace=False)
    env = {**node_env, "BRIDGE_URL": bridge_url, "NEXT_DIST_DIR": DIST_DIR}
    node_version = subprocess.run(
        ["node", "--version"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    dist = DEMO / DIST_DIR
    stamp = dist / "e2e-build-stamp"
    ci_stamp = DEMO / "node_modules" / ".e2e-npm-ci-stamp"
    lock_digest = _tree_digest([DEMO / "package-lock.json"], node_version)

    LOGS.mkdir(parents=True, exist_ok=True)
    with (DEMO / ".e2e-build.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # one build at a time
        if not ci_stamp.exists() or ci_stamp.read_text() != lock_digest:
            _build_step(["npm", "ci", "--no-audit", "--no-fund"], env, "npm-ci", timeout=900)
            ci_stamp.write_text(lock_digest)
        digest = _tree_digest(
            [DEMO / name for name in BUILD_INPUTS], f"{bridge_url}|{node_version}|{DIST_DIR}"
        )
        if not stamp.exists() or stamp.read_text() != digest or not (dist / "BUILD_ID").exists():
            # `npm run build` does the same (its prebuild script compiles the transport).
            _build_step(
                ["node_modules/.bin/tsc", "-p", "transport/tsconfig.json"],
                env,
                "transport-build",
                timeout=300,
            )
            _build_step(["node_modules/.bin/next", "build"], env, "next-build", timeout=900)
            stamp.write_text(digest)
    return dist


def _build_step(cmd: list[str], env: dict[str, str], name: str, *, timeout: float) -> None:
    log_path = LOGS / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.run(
            cmd,
            cwd=DEMO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-4000:]
        pytest.fail(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}", pytrace=False)


@pytest.fixture(scope="session")
def demo_port() -> int:
    """Chosen before the bridge starts: the bridge must know the demo's origin."""
    return free_port()


@dataclass
class BridgeProcess:
    """The session's bridge, which a test may kill and start again (same port, same store)."""

    url: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    server: Server

    def kill_and_restart(self, **settings: str) -> None:
        """SIGKILL mid-whatever, then a new process on the same SQLite file (it takes the
        running answers over), with these settings added to the session's."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.proc.pid, signal.SIGKILL)
        self.server.proc.wait(timeout=15)
        env = {**self.env, **settings}
        self.server = _start("bridge-restarted", self.cmd, cwd=self.cwd, env=env)
        _wait_http(self.server, f"{self.url}/api/models")


@pytest.fixture(scope="session")
def bridge(bridge_process: BridgeProcess) -> str:
    return bridge_process.url


@pytest.fixture(scope="session")
def bridge_process(
    bridge_url: str, demo_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    python = REPO / ".venv" / "bin" / "python"
    if not python.exists():
        python = Path(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(
        {
            # No provider key: the scripted `demo:scripted` model answers.
            "BRIDGE_DEMO_TOKEN_DELAY_MS": TOKEN_DELAY_MS,
            # The page's WebSocket goes through the Next.js proxy, which rewrites Host to the
            # bridge's: the bridge's same-origin check then needs the page's origin listed.
            "BRIDGE_CORS_ORIGINS": f"http://127.0.0.1:{demo_port}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if _example_tools_exist():
        env["BRIDGE_TOOLS"] = EXAMPLE_TOOLS
    port = bridge_url.rsplit(":", 1)[1]
    # Run from an empty directory so that a developer's .env (provider keys) is not read.
    cwd = tmp_path_factory.mktemp("bridge-cwd")
    cmd = [str(python), "-m", "bridge", "--host", "127.0.0.1", "--port", port]
    process = BridgeProcess(bridge_url, cmd, cwd, env, _start("bridge", cmd, cwd=cwd, env=env))
    try:
        _wait_http(process.server, f"{bridge_url}/api/models")
        yield process
    finally:
        process.server.stop()


def _example_tools_exist() -> bool:
    return (REPO / "bridge" / "tools" / "examples.py").exists()


@pytest.fixture(scope="session")
def demo(demo_build: Path, bridge: str, demo_port: int, node_env: dict[str, str]) -> Iterator[str]:
    port = str(demo_port)
    env = {**node_env, "BRIDGE_URL": bridge, "NEXT_DIST_DIR": DIST_DIR}
    server = _start(
        "next",
        ["node_modules/.bin/next", "start", "--port", port, "--hostname", "127.0.0.1"],
        cwd=DEMO,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(server, f"{base_url}/")
        yield base_url
    finally:
        server.stop()


def run_scenario(
    scenario: str, base_url: str, chromium: str, env: dict[str, str], *extra: str
) -> dict[str, Any]:
    cmd = ["node", str(RUNNER), scenario, "--base-url", base_url, "--chromium", chromium, *extra]
    proc = subprocess.run(
        cmd, cwd=DEMO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        pytest.fail(
            f"e2e/run.mjs {scenario} printed no verdict (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}",
            pytrace=False,
        )
    result: dict[str, Any] = json.loads(lines[-1])
    transport = extra[extra.index("--transport") + 1] if "--transport" in extra else None
    verdict = LOGS / f"scenario-{scenario}{f'-{transport}' if transport else ''}.json"
    verdict.write_text(json.dumps(result, indent=2))
    if not result.get("ok"):
        checks = "\n".join(
            f"  {'ok  ' if c['ok'] else 'FAIL'} {c['name']}"
            + ("" if c["ok"] else f" {json.dumps(c.get('detail'))[:500]}")
            for c in result.get("checks", [])
        )
        console = "\n".join(result.get("console", [])[-15:])
        pytest.fail(
            f"scenario {scenario!r} failed: {result.get('error')}\n{checks}\n"
            f"browser console:\n{console}\n(full verdict: {verdict})",
            pytrace=False,
        )
    return result


@pytest.fixture
def scenario(demo: str, chromium: str, node_env: dict[str, str]) -> Any:
    def run(name: str, *extra: str) -> dict[str, Any]:
        return run_scenario(name, demo, chromium, node_env, *extra)

    return run


# --------------------------------------------------------------------------- tests


def test_send_message_streams_an_answer(scenario: Any) -> None:
    result = scenario("send")
    assert "streaming" in result["phases"]


def test_reload_mid_answer_continues_without_duplicates(scenario: Any) -> None:
    result = scenario("reload")
    assert result["charsBeforeReload"] >= 300
    assert "resumed" in result["phasesAfterReload"]


def test_second_page_follows_the_same_answer(scenario: Any) -> None:
    scenario("second-page")


def test_stop_ends_the_generation_and_keeps_the_partial_answer(scenario: Any) -> None:
    result = scenario("stop")
    assert result["stopResponses"][0]["body"]["stopped"] is True
    assert result["resumeStatusAfterStop"] == 204


def test_tool_approval_and_denial_survive_a_reload(scenario: Any) -> None:
    assert _example_tools_exist(), (
        f"{EXAMPLE_TOOLS} does not exist: the bridge has no delete_file tool to approve"
    )
    result = scenario("tools")
    assert result["storedToolStates"] == ["output-available", "output-denied"]


def test_drop_connection_recovers_without_a_reload(scenario: Any) -> None:
    result = scenario("drop")
    assert "reconnecting" in result["phases"]


def test_screenshot_of_a_finished_chat(scenario: Any) -> None:
    if SCREENSHOT.exists():
        SCREENSHOT.unlink()
    # On "auto", so that the badge shows the live tier next to the transport switch.
    scenario("screenshot", "--screenshot", str(SCREENSHOT), "--transport", "auto")
    assert SCREENSHOT.stat().st_size > 10_000


def test_idle_page_follows_an_answer_started_elsewhere(scenario: Any) -> None:
    result = scenario("follow")
    assert result["watcherLiveTail"]["followed"] >= 1  # told by the chat's live tail


@pytest.mark.parametrize("transport", ["sse", "ws", "auto"])
def test_typing_while_it_answers_steers_the_answer(scenario: Any, transport: str) -> None:
    result = scenario("steer", "--transport", transport)
    assert "steering-message" in result["parts"]


@pytest.mark.parametrize("transport", ["ws", "auto"])
def test_idle_page_follows_an_answer_started_elsewhere_over(scenario: Any, transport: str) -> None:
    result = scenario("follow", "--transport", transport)
    assert result["watcherLiveTail"]["followed"] >= 1


# --------------------------------------------------------------------------- transports
# The same page on the stock WebSocketChatTransport ("ws") and on the resilient transport
# ("auto"); the scenarios also check which transport carried the turns (a socket through
# the Next.js proxy, no POST /api/chat) and, for "auto", that the badge named the tier.


@pytest.mark.parametrize("transport", ["ws", "auto"])
def test_send_message_streams_an_answer_over(scenario: Any, transport: str) -> None:
    result = scenario("send", "--transport", transport)
    assert "streaming" in result["phases"]
    assert result["wire"]["sockets"] and not result["wire"]["chatPosts"]
    if transport == "auto":
        assert "Streaming · WebSocket" in result["badgeLabels"]


def test_reload_mid_answer_continues_without_duplicates_on_auto(scenario: Any) -> None:
    result = scenario("reload", "--transport", "auto")
    assert result["charsBeforeReload"] >= 300
    assert "resumed" in result["phasesAfterReload"]


@pytest.mark.parametrize("transport", ["ws", "auto"])
def test_stop_ends_the_generation_over(scenario: Any, transport: str) -> None:
    result = scenario("stop", "--transport", transport)
    assert len(result["stopResponses"]) == 1
    assert result["stopResponses"][0]["body"]["stopped"] is True
    assert result["resumeStatusAfterStop"] == 204


@pytest.mark.parametrize("transport", ["ws", "auto"])
def test_tool_approval_and_denial_over(scenario: Any, transport: str) -> None:
    result = scenario("tools", "--transport", transport)
    assert result["storedToolStates"] == ["output-available", "output-denied"]


@pytest.mark.parametrize("transport", ["ws", "auto"])
def test_drop_connection_recovers_over(scenario: Any, transport: str) -> None:
    result = scenario("drop", "--transport", transport)
    assert "reconnecting" in result["phases"]


@pytest.mark.parametrize("transport", ["sse", "ws", "auto"])
def test_leaving_a_chat_mid_answer_does_not_stop_it(scenario: Any, transport: str) -> None:
    result = scenario("leave", "--transport", transport)
    assert result["storedChars"] > 1500


def test_transport_switch_is_kept_in_the_url_and_in_storage(scenario: Any) -> None:
    scenario("switch")


def test_sidebar_delete_removes_another_chat_and_the_open_one_mid_answer(scenario: Any) -> None:
    # Another chat from its row, then the open one while it answers: both gone from the
    # bridge (no messages, nothing to resume, not listed), one DELETE each, and the page
    # moves on to a new chat.
    result = scenario("delete")
    names = [check["name"] for check in result["checks"]]
    assert "the open chat, deleted mid-answer, is gone from the bridge" in names


def test_sidebar_first_paint_lists_the_browsers_own_chats(demo: str) -> None:
    """The page is rendered on the server with the browser's cookie: the chat list in its
    first paint (before any script runs) is that browser's, not a stranger's empty one."""
    mine = f"first-paint-{time.monotonic_ns()}"
    with httpx.Client(base_url=demo, timeout=60) as browser:
        body = {
            "id": mine,
            "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
        }
        assert browser.post("/api/chat", json=body).status_code == 200  # the cookie comes
        assert browser.cookies
        page = browser.get(f"/chat/another-{mine}")
        assert page.status_code == 200
        assert f'data-chat-id="{mine}"' in page.text
    stranger = httpx.get(f"{demo}/chat/another-{mine}", timeout=60)
    assert f'data-chat-id="{mine}"' not in stranger.text


# --------------------------------------------------------------------------- first impression
# What a user of a chat app expects beside the answer (as in vercel/chatbot), and what the
# bridge's session semantics look like on the page.


def test_message_actions_copy_regenerate_and_edit(scenario: Any) -> None:
    result = scenario("actions")
    assert [role for role, _ in result["afterEdit"]] == ["user", "assistant"]


def test_attachments_reach_the_model_and_are_shown(scenario: Any) -> None:
    result = scenario("attachments")
    assert [name for name, _, _ in result["storedFiles"]] == ["dot.png", "note.pdf"]


def test_dark_mode_follows_the_system(scenario: Any) -> None:
    result = scenario("dark")
    assert result["backgrounds"]["dark"]["body"] != result["backgrounds"]["light"]["body"]


def test_queued_message_shows_queued_then_runs(scenario: Any) -> None:
    result = scenario("queue")
    assert result["roles"] == ["user", "assistant", "user", "assistant"]


def test_steering_a_stopped_answer_shows_not_delivered(scenario: Any) -> None:
    result = scenario("steer-stopped")
    assert "not delivered" in result["pendingText"]


def test_recovering_answer_shows_recovering(
    demo: str, chromium: str, node_env: dict[str, str], bridge_process: BridgeProcess
) -> None:
    """The bridge is killed mid-answer and started again: the new process takes the answer
    over (`data-recovering`), the page says so, and the answer ends complete."""
    cmd = ["node", str(RUNNER), "recovering", "--base-url", demo, "--chromium", chromium]
    runner = subprocess.Popen(
        cmd, cwd=DEMO, env=node_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert runner.stdin is not None and runner.stdout is not None
    try:
        for line in runner.stdout:  # the scenario says when the answer is streaming
            if line.strip() == "KILL-NOW" or line.startswith("{"):
                break
        assert line.strip() == "KILL-NOW", line
        bridge_process.kill_and_restart()
        runner.stdin.write("killed\n")
        runner.stdin.flush()
        verdict = json.loads(runner.stdout.read().strip().splitlines()[-1])
    finally:
        runner.kill()
        runner.wait(30)
    (LOGS / "scenario-recovering.json").write_text(json.dumps(verdict, indent=2))
    assert verdict["ok"], verdict
    assert verdict["recoveryPhases"][:2] == ["recovering", "resumed"]


def test_demo_with_auth_on_signs_in_and_keeps_chats_per_user(
    demo_build: Path, bridge_process: BridgeProcess, chromium: str, node_env: dict[str, str]
) -> None:
    """The README's JWT set-up: the bridge with BRIDGE_JWT_SECRET, the demo with the same
    value as DEMO_JWT_SECRET. Pages need a sign-in; each user sees only their own chats."""
    secret = "demo-test-jwt-secret-0123456789abcdef"
    bridge_process.kill_and_restart(BRIDGE_JWT_SECRET=secret)
    port = free_port()
    env = {
        **node_env,
        "BRIDGE_URL": bridge_process.url,
        "NEXT_DIST_DIR": DIST_DIR,
        "DEMO_JWT_SECRET": secret,
    }
    cmd = ["node_modules/.bin/next", "start", "--port", str(port), "--hostname", "127.0.0.1"]
    site = _start("next-auth", cmd, cwd=DEMO, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(site, f"{base_url}/login")
        result = run_scenario("auth", base_url, chromium, node_env)
        # The bridge itself refuses a caller with no token: the demo's sign-in is what opens it.
        assert httpx.get(f"{bridge_process.url}/api/chats", timeout=30).status_code == 401
    finally:
        site.stop()
        bridge_process.kill_and_restart()  # anonymous again, for the other tests
    assert result["aliceChats"] == [result["chatId"]]
    assert result["bobSeesAlicesText"] is False


# --------------------------------------------------------------------------- provider tools
# Provider-defined tools in the demo, end to end: the session's bridge started again with a
# provider tool offered to its model (`provider_tools` in BRIDGE_MODEL_OPTIONS) and the
# provider's API replaced by a replay server answering with a recorded stream
# (tests/recordings/). A web search shows a search card with the query and the pages read,
# another provider tool a card collapsed by default with its input and output, and the cards
# come back the same after a reload (from the stored chat). In this module, not a module of
# their own, so that they share the session's demo build and bridge.

RECORDINGS = Path(__file__).parent / "recordings"


@dataclass(frozen=True)
class Case:
    """One provider tool: how the bridge reaches it, what the cards must show."""

    recording: str
    model: str
    tool: dict[str, Any]
    env: dict[str, str]
    path: str
    # The search cards: state, query, and each page read (href, the lines: title, domain).
    search: list[dict[str, Any]]
    # The other provider tools' cards (name, state, open), collapsed at first.
    other: list[dict[str, Any]] = field(default_factory=list)
    # What each of those shows once opened (a piece of its input, of its output).
    opened: list[tuple[str, str]] = field(default_factory=list)


OPENAI = Case(
    recording="openai/web-search.sse",
    model="openai:gpt-5-mini",
    tool={
        "type": "web_search",
        "user_location": {"type": "approximate", "country": "FR", "city": "Paris"},
    },
    env={"OPENAI_API_KEY": "test-key"},
    path="/v1/responses",
    # The Responses API lists the page untitled: named by its host and path.
    search=[
        {
            "state": "output-available",
            "query": "weather paris today",
            "links": [
                {
                    "href": "https://weather.example.com/paris",
                    "text": ["weather.example.com/paris", "weather.example.com"],
                }
            ],
        }
    ],
)
ANTHROPIC = Case(
    recording="anthropic/web-search.sse",
    model="anthropic:claude-sonnet-4-5",
    tool={"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    env={"ANTHROPIC_API_KEY": "test-key"},
    path="/v1/messages",
    search=[
        {
            "state": "output-available",
            "query": "weather paris",
            "links": [
                {
                    "href": "https://weather.example.com/paris",
                    "text": ["Paris weather", "weather.example.com"],
                },
                {
                    "href": "https://meteo.example.fr/paris",
                    "text": ["Météo Paris", "meteo.example.fr"],
                },
            ],
        }
    ],
)
CODE_INTERPRETER = Case(
    recording="openai/code-interpreter.sse",
    model="openai:gpt-5-mini",
    tool={"type": "code_interpreter", "container": {"type": "auto"}},
    env={"OPENAI_API_KEY": "test-key"},
    path="/v1/responses",
    search=[],
    other=[{"name": "code_interpreter", "state": "output-available", "open": False}],
    opened=[('"code": "print(2 ** 10)"', "1024")],
)


@pytest.fixture(
    params=[OPENAI, ANTHROPIC, CODE_INTERPRETER],
    ids=["openai-web-search", "anthropic-web-search", "openai-code-interpreter"],
)
def web_search_bridge(
    request: pytest.FixtureRequest,
    bridge_process: BridgeProcess,
) -> Iterator[tuple[Case, ReplayServer]]:
    """The session's bridge on the replay server, its model offered the case's tool; the
    scripted demo bridge again afterwards, for the other browser tests."""
    case: Case = request.param
    with ReplayServer() as replay:
        base_url = replay.url + "/v1" if case.model.startswith("openai:") else replay.url
        provider = case.model.split(":", 1)[0].upper()
        bridge_process.kill_and_restart(
            **case.env,
            **{f"{provider}_BASE_URL": base_url},
            BRIDGE_MODEL=case.model,
            BRIDGE_MODEL_OPTIONS=json.dumps({case.model: {"provider_tools": [case.tool]}}),
        )
        try:
            yield case, replay
        finally:
            bridge_process.kill_and_restart()


def test_provider_tools_show_their_cards_that_survive_a_reload(
    web_search_bridge: tuple[Case, ReplayServer],
    demo: str,
    chromium: str,
    node_env: dict[str, str],
) -> None:
    case, replay = web_search_bridge
    replay.serve((RECORDINGS / case.recording).read_bytes())
    # The reloaded page, for a look at the cards (test-artifacts/).
    screenshot = ARTIFACTS / f"demo-provider-tools-{case.recording.replace('/', '-')}.png"
    screenshot.unlink(missing_ok=True)
    result: dict[str, Any] = run_scenario(
        "provider-tools", demo, chromium, node_env, "--screenshot", str(screenshot)
    )
    assert screenshot.stat().st_size > 10_000

    # The page's turn reached the provider with the configured tool.
    (request,) = replay.requests
    assert request["path"] == case.path
    assert request["body"]["model"] == case.model.split(":", 1)[1]
    assert case.tool in request["body"]["tools"]

    assert result["cardsLive"] == {"search": case.search, "other": case.other}
    opened = result["openedCards"]
    assert [card["open"] for card in opened] == [True] * len(case.opened)
    for card, (input_piece, output_piece) in zip(opened, case.opened, strict=True):
        assert input_piece in card["input"]
        assert output_piece in card["output"]
    assert result["cardsAfterReload"] == result["cardsLive"]
