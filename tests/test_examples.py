"""The README's code is the examples' code: each snippet marked in an example file is the
README's block verbatim, and the example runs."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bridge.app import create_app
from bridge.settings import Settings
from tests.bridge_server import chat_body, make_settings, sse_events
from tests.fakes.anthropic_server import AnthropicFake
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.server import Cut, LiveServer, Text
from tests.node_harness import ensure_node_deps, node_binary
from tests.support.ports import free_port
from tests.test_browser_demo import _run_script

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


# The app is built once per Node version the README names: 20 (the minimum: npm gives it
# ai 6, so the README's snippet goes without the `x-ai-sdk-level` header, as the example's
# README says) and 22 (ai 7, the packages the example pins).
AI6_PACKAGES = {"ai": "6.0.325", "@ai-sdk/react": "3.0.328"}  # @ai-sdk/react 3 pins this ai
LEVEL_HEADER_LINE = re.compile(r"^ *headers: \{ 'x-ai-sdk-level': '7' \},.*\n", re.MULTILINE)
DEMO_MODULES = ROOT / "frontend-demo" / "node_modules"
PLAYWRIGHT = DEMO_MODULES / "playwright-core"
BROWSER_SCRIPT = NEXTJS / "e2e" / "chat.mjs"


@dataclass(frozen=True)
class NextjsBuild:
    """The example built for a bridge at `bridge_url`, to be served by `node`."""

    app: Path
    bridge_url: str
    node: str
    client: int  # the major version of `ai` the app (and the Node client driving it) runs

    def env(self) -> dict[str, str]:
        path = f"{Path(self.node).parent}{os.pathsep}{os.environ['PATH']}"
        return {**os.environ, "PATH": path, "NEXT_TELEMETRY_DISABLED": "1"}


def node20_binary() -> str:
    """A Node 20 (scripts/ensure-node.sh 20: $AISDK_NODE20, the `node` on PATH when it is 20,
    else a pinned Node 20 installed into .tools/node20); it fails, never skips."""
    node = run_ok(["bash", str(ROOT / "scripts" / "ensure-node.sh"), "20"]).stdout.strip()
    version = run_ok([node, "--version"]).stdout.strip()
    assert version.startswith("v20."), f"{node} is {version}, not the README's minimum Node 20"
    return node


def ai6_modules(node: str) -> Path:
    """The example's packages with ai 6, installed by Node 20's npm once per manifest."""
    manifest = orjson.loads((NEXTJS / "package.json").read_bytes())
    manifest["dependencies"].update(AI6_PACKAGES)
    manifest["engines"] = {"node": ">=20.9"}
    text = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    home = ROOT / ".tools" / "nextjs-ai6" / hashlib.sha256(text).hexdigest()[:16]
    if not (home / "node_modules" / ".installed").exists():
        home.mkdir(parents=True, exist_ok=True)
        (home / "package.json").write_bytes(text)
        env = {**os.environ, "PATH": f"{Path(node).parent}{os.pathsep}{os.environ['PATH']}"}
        run_ok(["npm", "install", "--no-audit", "--no-fund"], cwd=home, env=env)
        (home / "node_modules" / ".installed").touch()
    return home / "node_modules"


@pytest.fixture(scope="module", params=[20, 22], ids=["node20", "node22"])
def nextjs_build(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> NextjsBuild:
    """The example built in a copy of its own, against a bridge on a port chosen now.

    Node 22 links in the demo's packages (the versions the example pins, already installed);
    Node 20 gets ai 6 (what its npm installs). Built with webpack, which follows the link
    (Turbopack keeps to the project's directory)."""
    node = node20_binary() if request.param == 20 else node_binary()
    env = {**os.environ, "PATH": f"{Path(node).parent}{os.pathsep}{os.environ['PATH']}"}
    if not (DEMO_MODULES / "next").exists():
        run_ok(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT / "frontend-demo", env=env)
    app = tmp_path_factory.mktemp(f"nextjs{request.param}") / "app"
    shutil.copytree(NEXTJS, app, ignore=shutil.ignore_patterns("node_modules", ".next", "e2e"))
    if request.param == 20:
        chat = app / "app" / "chat" / "[id]" / "chat.tsx"
        source, dropped = LEVEL_HEADER_LINE.subn("", chat.read_text())
        assert dropped == 1, "the example no longer declares its ai level"
        chat.write_text(source)
        (app / "node_modules").symlink_to(ai6_modules(node))
    else:
        (app / "node_modules").symlink_to(DEMO_MODULES)
    bridge_url = f"http://127.0.0.1:{free_port()}"
    build_env = {**env, "BRIDGE_URL": bridge_url, "NEXT_TELEMETRY_DISABLED": "1"}
    run_ok([node, "node_modules/next/dist/bin/next", "build", "--webpack"], cwd=app, env=build_env)
    return NextjsBuild(app, bridge_url, node, 6 if request.param == 20 else 7)


def run_ok(argv: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=900, **kwargs
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@contextlib.contextmanager
def serving(build: NextjsBuild, settings: Settings) -> Iterator[str]:
    """The bridge on the port the example was built for, and `next start`: the site's URL."""
    bridge = LiveServer(create_app(settings))
    bridge.port = int(build.bridge_url.rsplit(":", 1)[1])
    bridge.start()
    next_port = free_port()
    server = subprocess.Popen(
        [build.node, "node_modules/next/dist/bin/next", "start", "-p", str(next_port)],
        cwd=build.app,
        env=build.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    site = f"http://127.0.0.1:{next_port}"
    try:
        wait_until_up(server, site)
        yield site
    finally:
        server.kill()
        server.wait(30)
        bridge.stop()


def drive_chat(build: NextjsBuild, scenario: dict[str, Any]) -> Any:
    """The real `ai` client of the build's version (tests/node), on the build's Node."""
    ensure_node_deps()
    result = subprocess.run(
        [build.node, str(ROOT / "tests" / "node" / "chat-client.mjs"), "--scenario", "-"],
        input=orjson.dumps(scenario),
        capture_output=True,
        timeout=120,
        env={**build.env(), "NODE_NO_WARNINGS": "1", "AI_SDK_CLIENT": str(build.client)},
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return orjson.loads(result.stdout)


@pytest.mark.node
def test_examples_nextjs_builds_and_serves_a_chat_with_its_history(
    nextjs_build: NextjsBuild,
) -> None:
    with (
        serving(nextjs_build, make_settings(bridge_demo_token_delay_ms=0)) as site,
        httpx.Client(base_url=site, timeout=60) as browser,
    ):
        home = browser.get("/", follow_redirects=False)
        assert home.status_code == 307
        chat_path = home.headers["location"]
        assert re.fullmatch(r"/chat/[0-9a-f-]{36}", chat_path)
        chat_id = chat_path.rsplit("/", 1)[1]
        # The real ai client, through the example's rewrite.
        result = drive_chat(
            nextjs_build,
            {
                "api": f"{site}/api/chat",
                "chatId": f"{chat_id}-client",
                "steps": [{"op": "send", "text": "hi"}],
            },
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


@pytest.mark.node
@pytest.mark.browser
def test_examples_nextjs_survives_a_retried_step_on_default_settings(
    nextjs_build: NextjsBuild, chromium: str
) -> None:
    """A provider cut mid-answer, retried by the bridge on its default settings: the real
    client (Node) and the app in Chromium each end with the retried answer, never an error."""
    fake = OpenAIFake(api_key="k")
    fake.start()
    for _ in range(2):  # one cut-then-answer for the Node client, one for the browser
        fake.enqueue([Text("doomed attempt "), Cut()])
        fake.enqueue([Text("recovered")])
    settings = make_settings(
        openai_api_key="k", openai_base_url=fake.base_url, bridge_model="openai:gpt-test"
    )
    try:
        with serving(nextjs_build, settings) as site:
            result = drive_chat(
                nextjs_build,
                {
                    "api": f"{site}/api/chat",
                    "chatId": "retried-by-client",
                    "sendOnlyLastMessage": True,
                    "steps": [{"op": "send", "text": "go"}],
                },
            )
            assert result["status"] == "ready", result["error"]
            answer = result["messages"][1]["parts"]
            assert "".join(p.get("text", "") for p in answer).endswith("recovered")
            page = subprocess.run(
                [
                    nextjs_build.node,
                    str(BROWSER_SCRIPT),
                    *("--base-url", site, "--chromium", chromium),
                    *("--playwright", str(PLAYWRIGHT), "--text", "go", "--expect", "recovered"),
                ],
                capture_output=True,
                text=True,
                timeout=180,
                env=nextjs_build.env(),
                check=False,
            )
    finally:
        fake.stop()
    verdict = orjson.loads(page.stdout.strip().splitlines()[-1]) if page.stdout.strip() else {}
    assert verdict.get("ok"), f"{verdict}\n{page.stderr[-3000:]}"
    assert verdict["status"] == "ready"
    assert len(fake.requests) == 4  # each turn's provider call, cut, then called again


@pytest.fixture(scope="session")
def chromium() -> str:
    return _run_script("ensure-chromium.sh")


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


# --- the provider-by-environment recipes ---------------------------------------------------

RECIPES = ROOT / "examples" / "providers"
RECIPE_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY")
"""Keys the recipes' models need (what a user sets beside a recipe)."""


def readme_blocks(section: str, language: str) -> list[str]:
    """Every ```language block of README's `## section` (its subsections included)."""
    start = README.index(f"\n## {section}\n")
    end = README.find("\n## ", start + 1)
    return re.findall(rf"```{language}\n(.*?)```", README[start:end], re.DOTALL)


def recipe_variables(recipe: Path) -> dict[str, str]:
    """The recipe's variables as a shell reads them (quotes removed, lines joined)."""
    pairs = (word.split("=", 1) for word in shlex.split(recipe.read_text()))
    return dict(pairs)


def test_examples_provider_recipes_are_the_readme_blocks() -> None:
    recipes = sorted(RECIPES.glob("*.sh"))
    assert [recipe.name for recipe in recipes] == [
        "endpoints.sh",
        "gemini.sh",
        "provider-tools.sh",
    ]
    assert sorted(recipe.read_text() for recipe in recipes) == sorted(
        readme_blocks("Providers", "bash")
    )


@pytest.mark.parametrize("recipe", ["endpoints.sh", "gemini.sh", "provider-tools.sh"])
def test_examples_provider_recipes_serve_every_model_they_list(
    recipe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each recipe, read from the environment as written, starts a bridge that answers with
    every model it lists (their servers replaced by the fakes: the recipe's hosts are real
    ones), each request going to its server with its model and provider tools."""
    for name in list(os.environ):
        if name.startswith(("BRIDGE_", "OPENAI_", "ANTHROPIC_", "AZURE_")) or name == "REDIS_URL":
            monkeypatch.delenv(name)
    for name in RECIPE_KEYS:
        monkeypatch.setenv(name, "test-key")
    for name, value in recipe_variables(RECIPES / recipe).items():
        monkeypatch.setenv(name, value)
    read = Settings(_env_file=None)  # type: ignore[call-arg]
    assert read.bridge_models, "a recipe lists the models it serves"
    # A local server (the recipe's Ollama) takes any key: so do the fakes.
    with OpenAIFake() as openai_fake, AnthropicFake() as claude:
        # The same settings with every server replaced by a fake.
        endpoints = {
            name: endpoint.model_copy(update={"base_url": openai_fake.base_url})
            for name, endpoint in read.bridge_endpoints.items()
        }
        settings = read.model_copy(
            update={
                "bridge_endpoints": endpoints,
                "openai_base_url": openai_fake.base_url,
                "anthropic_base_url": claude.url,
                "bridge_store": "memory",
            }
        )
        server = LiveServer(create_app(settings))
        server.start()
        try:
            listed = httpx.get(f"{server.url}/api/models", timeout=10).json()
            assert [model["id"] for model in listed["models"]] == read.bridge_models
            for index, model in enumerate(read.bridge_models):
                fake = claude if model.startswith("anthropic:") else openai_fake
                fake.enqueue([Text(f"Answer from {model}.")])
                body = chat_body(f"recipe-{index}", "hi", model=model)
                answer = httpx.post(f"{server.url}/api/chat", json=body, timeout=30)
                assert answer.status_code == 200, answer.text
                chunks = [orjson.loads(data) for _, data in sse_events(answer) if data != "[DONE]"]
                text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
                assert text == f"Answer from {model}.", chunks
                sent = fake.requests[-1].json
                assert sent["model"] == model.split(":", 1)[1]
                options = read.bridge_model_options.get(model)
                if options is not None and options.provider_tools:
                    assert all(tool in sent["tools"] for tool in options.provider_tools)
        finally:
            server.stop()
