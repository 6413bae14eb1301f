"""`python -m bridge --workers N`: the workers share what they must. In anonymous mode the
parent hands them one cookie key, so a browser's identity holds on every worker; without a
shared store the bridge refuses to start, saying why."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.bridge_server import chat_body
from tests.support.bridge_process import BridgeProcess
from tests.support.redis import RedisServer

REQUESTS = 30


def worker_secret(pid: int) -> str | None:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for entry in environ:
        name, _, value = entry.partition(b"=")
        if name == b"BRIDGE_SECRET_KEY":
            return value.decode()
    return None


def test_workers_share_the_anonymous_cookie_key(redis_server: RedisServer, tmp_path: Path) -> None:
    bridge = BridgeProcess(
        {
            "REDIS_URL": redis_server.url,
            "BRIDGE_KEY_PREFIX": "workers-anon",
            "BRIDGE_MODEL": "demo:scripted",
            "BRIDGE_DEMO_TOKEN_DELAY_MS": "0",
        },
        workdir=tmp_path,
        args=["--workers", "2"],
    )
    try:
        bridge.spawn().wait_ready(workers=2)
        pids = bridge.worker_pids()
        assert len(set(pids)) == 2
        secrets = {worker_secret(pid) for pid in pids}
        assert len(secrets) == 1 and None not in secrets  # one key, made by the parent
        assert "the workers share a random key" in bridge.output()

        # A browser: its cookie, then requests on fresh connections (either worker).
        with httpx.Client(base_url=bridge.url, timeout=60) as browser:
            assert browser.post("/api/chat", json=chat_body("mine", "hi")).status_code == 200
            cookies = dict(browser.cookies)
        assert cookies
        for _ in range(REQUESTS):
            with httpx.Client(base_url=bridge.url, cookies=cookies, timeout=30) as fresh:
                listed = fresh.get("/api/chats")
            assert listed.status_code == 200
            assert "set-cookie" not in listed.headers  # the identity was recognised
            assert [chat["id"] for chat in listed.json()["chats"]] == ["mine"]
    finally:
        bridge.close()


def test_workers_without_a_shared_store_are_refused(tmp_path: Path) -> None:
    bridge = BridgeProcess({}, workdir=tmp_path, args=["--workers", "2"])
    try:
        bridge.spawn()
        assert bridge.wait_exit() == 1
        assert bridge.wait_line("need a shared session store", 30)
        out = bridge.output()
        assert "aisdk-bridge: 2 workers need a shared session store: set REDIS_URL" in out
        assert "the default SQLite store" in out
        assert "Application startup complete" not in out
    finally:
        bridge.close()
