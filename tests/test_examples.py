"""The README's code is the examples' code: each snippet marked in an example file is the
README's block verbatim, and the example runs."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bridge.app import create_app
from tests.bridge_server import chat_body, make_settings, sse_events
from tests.fakes.server import LiveServer
from tests.node_harness import NodeHarness, node_binary
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_block(section: str, language: str) -> str:
    """The first ```language block of README's `## section`."""
    start = README.index(f"\n## {section}\n")
    end = README.find("\n## ", start + 1)
    match = re.search(rf"```{language}\n(.*?)```", README[start:end], re.DOTALL)
    assert match is not None, f"no {language} block in {section}"
    return match[1]


def marked(path: Path, name: str) -> str:
    """The lines between `# README: name` and `# README: end` (or `//`) in an example file."""
    text = path.read_text()
    marker = r"(?:#|//) README:"
    match = re.search(rf"{marker} {name}\n(.*?){marker} end\n", text, re.DOTALL)
    assert match is not None, f"no README region {name!r} in {path}"
    return match[1]


def test_examples_library_is_the_readme_snippet() -> None:
    example = marked(ROOT / "examples" / "library" / "app.py", "library")
    assert example == readme_block("Use it as a library", "python")


def test_examples_library_app_signs_in_and_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "BRIDGE_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRIDGE_STORE", "memory")
    monkeypatch.setenv("BRIDGE_MODEL", "demo:scripted")
    module = importlib.import_module("examples.library.app")
    yours = importlib.import_module("examples.library.yours")
    server = LiveServer(module.app)
    server.start()
    try:
        body = chat_body("lib-1", "hi", model="agent:helper")  # registered in code: no listing
        refused = httpx.post(f"{server.url}/chat/api/chat", json=body, timeout=30)
        assert refused.status_code == 401
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            assert browser.get("/login", params={"user": "alice"}).status_code == 200
            answer = browser.post("/chat/api/chat", json=body)
            assert answer.status_code == 200
            chunks = [orjson.loads(d) for _, d in sse_events(answer) if d != "[DONE]"]
            assert chunks[-1]["messageMetadata"]["model"] == "agent:helper"
            chats = browser.get("/chat/api/chats").json()["chats"]
            assert [chat["id"] for chat in chats] == ["lib-1"]
    finally:
        server.stop()
    # on_finish ran: the finished message is in "your database".
    saved = [row for row in yours.my_db.messages if row["chat_id"] == "lib-1"]
    assert len(saved) == 1 and saved[0]["user"] == "alice"


# --- the Next.js example -----------------------------------------------------------------

NEXTJS = ROOT / "examples" / "nextjs"


def test_examples_nextjs_snippets_are_the_readme_blocks() -> None:
    section = "Use it from a Next.js app"
    assert (NEXTJS / "next.config.mjs").read_text() == readme_block(section, "js")
    assert marked(NEXTJS / "app" / "chat" / "[id]" / "chat.tsx", "chat") == readme_block(
        section, "tsx"
    )
    history = marked(NEXTJS / "app" / "chat" / "[id]" / "page.tsx", "history")
    assert history in README


@pytest.fixture(scope="module")
def nextjs_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The example built in a copy of its own, against a bridge on a port chosen now.

    Its packages are the demo's (the same versions, already installed): linked in, and built
    with webpack, which follows the link (Turbopack keeps to the project's directory)."""
    node = node_binary()
    demo_modules = ROOT / "frontend-demo" / "node_modules"
    env = {**os.environ, "PATH": f"{Path(node).parent}:{os.environ['PATH']}"}
    if not (demo_modules / "next").exists():
        run_ok(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT / "frontend-demo", env=env)
    app = tmp_path_factory.mktemp("nextjs") / "app"
    shutil.copytree(NEXTJS, app, ignore=shutil.ignore_patterns("node_modules", ".next"))
    (app / "node_modules").symlink_to(demo_modules)
    bridge_port = free_port()
    bridge_url = f"http://127.0.0.1:{bridge_port}"
    build_env = {**env, "BRIDGE_URL": bridge_url, "NEXT_TELEMETRY_DISABLED": "1"}
    run_ok([node, "node_modules/next/dist/bin/next", "build", "--webpack"], cwd=app, env=build_env)
    return app, bridge_url


def run_ok(argv: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=900, **kwargs
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.node
def test_examples_nextjs_builds_and_serves_a_chat_with_its_history(
    nextjs_build: tuple[Path, str], node: NodeHarness
) -> None:
    app, bridge_url = nextjs_build
    port = int(bridge_url.rsplit(":", 1)[1])
    bridge = LiveServer(create_app(make_settings(bridge_demo_token_delay_ms=0)))
    bridge.port = port  # the port the example was built for
    bridge.start()
    next_port = free_port()
    env = {**os.environ, "PATH": f"{Path(node.binary).parent}:{os.environ['PATH']}"}
    server = subprocess.Popen(
        [node.binary, "node_modules/next/dist/bin/next", "start", "-p", str(next_port)],
        cwd=app,
        env={**env, "NEXT_TELEMETRY_DISABLED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    site = f"http://127.0.0.1:{next_port}"
    try:
        wait_until_up(server, site)
        with httpx.Client(base_url=site, timeout=60) as browser:
            home = browser.get("/", follow_redirects=False)
            assert home.status_code == 307
            chat_path = home.headers["location"]
            assert re.fullmatch(r"/chat/[0-9a-f-]{36}", chat_path)
            chat_id = chat_path.rsplit("/", 1)[1]
            # The real ai 7 client, through the example's rewrite.
            result = node.chat(
                {
                    "api": f"{site}/api/chat",
                    "chatId": f"{chat_id}-client",
                    "steps": [{"op": "send", "text": "hi"}],
                }
            )
            assert result["status"] == "ready", result["error"]
            # A browser: its cookie from the bridge, through the rewrite ...
            sent = browser.post("/api/chat", json=chat_body(chat_id, "Hello there"))
            assert sent.status_code == 200
            assert browser.cookies
            # ... and the page, rendered on the server, shows the history it owns.
            page = browser.get(chat_path)
            assert page.status_code == 200
            assert "Hello there" in page.text
            assert "Demo model" in page.text
    finally:
        server.kill()
        server.wait(30)
        bridge.stop()


def wait_until_up(server: subprocess.Popen[str], site: str) -> None:
    deadline = time.monotonic() + 60
    while True:  # a condition with a deadline: the server answers
        assert server.poll() is None, server.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "next start did not answer"
        try:
            httpx.get(f"{site}/favicon.ico", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
