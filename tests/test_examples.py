"""The README's code is the examples' code: each snippet marked in an example file is the
README's block verbatim, and the example runs."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import httpx
import orjson
import pytest

from tests.bridge_server import chat_body, sse_events
from tests.fakes.server import LiveServer

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
    """The lines between `# README: name` and `# README: end` in an example file."""
    text = path.read_text()
    match = re.search(rf"# README: {name}\n(.*?)# README: end\n", text, re.DOTALL)
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
