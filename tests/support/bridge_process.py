"""The bridge as a process of its own (`python -m bridge`), so a test can hurt it for real
(SIGKILL, SIGTERM, SIGSTOP) and read what it logged.

The environment is this machine's without any bridge or provider setting, plus the test's
settings; the working directory is an empty one, so no developer's `.env` is read. Output is
read line by line as it comes: waits are on log lines ("Application startup complete", a
message the test expects) or the output's end (the process exited), each with a bound. uvicorn
logs its start-up a moment before its socket accepts connections, so a start-up wait also
waits (bounded) until a TCP connection to the port is accepted.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.ports import accepts_connections, free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60.0
"""A bridge process imports every provider SDK: slow on a loaded 2-core machine."""
EXIT_SECONDS = 30.0
STARTED = "Application startup complete"
"""uvicorn's line once the app's lifespan has started (one per worker)."""


def bridge_environment(**settings: str) -> dict[str, str]:
    """This machine's environment without any bridge or provider setting of its own, plus
    `settings` (and the repository on the import path, for `BRIDGE_TOOLS=tests....`)."""
    own = {"HOST", "PORT", "REDIS_URL", "FORWARDED_ALLOW_IPS"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BRIDGE_", "OPENAI_", "ANTHROPIC_", "AZURE_")) and name not in own
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


class BridgeProcess:
    """`python -m bridge` on a free loopback port; `spawn()` starts it, `wait_ready()` waits
    for its start-up (or fails with its output)."""

    def __init__(
        self,
        settings: Mapping[str, str],
        *,
        name: str = "bridge",
        workdir: Path | None = None,
        args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._temp = tempfile.TemporaryDirectory(prefix="bridge-")
            workdir = Path(self._temp.name)
        self._workdir = workdir
        self.log = self._workdir / f"bridge-{name}.log"
        self._settings = dict(settings)
        self._args = list(args)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._process: subprocess.Popen[str] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def spawn(self) -> BridgeProcess:
        cwd = self._workdir / "cwd"  # empty: no developer's .env is read
        cwd.mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "bridge", "--host", "127.0.0.1", "--port", str(self.port)]
        self._process = subprocess.Popen(
            [*argv, "--log-level", "info", *self._args],
            cwd=cwd,
            env=bridge_environment(**self._settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,  # its workers are killed with it
        )
        threading.Thread(target=self._read, name=f"bridge-{self.name}-output", daemon=True).start()
        return self

    def wait_ready(self, seconds: float = START_SECONDS, *, workers: int = 1) -> None:
        """Until the app started (in `workers` workers) and its port accepts connections;
        fails with the output when the process exits first or takes longer than `seconds`."""
        if not self.wait_settled(seconds, workers=workers):
            raise AssertionError(f"bridge {self.name} exited:\n{self.output()}")

    def wait_settled(self, seconds: float = START_SECONDS, *, workers: int = 1) -> bool:
        """Until the app started (in `workers` workers) and its port accepts connections
        (True), or the process exited without starting (False)."""
        deadline = time.monotonic() + seconds
        if not self.wait_line(STARTED, seconds, count=workers):
            return False
        return self._wait_accepting(max(deadline - time.monotonic(), 1.0))

    @property
    def started(self) -> bool:
        """The app has started (uvicorn said so)."""
        return self.count(STARTED) > 0

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self._process is not None, f"bridge {self.name} was not spawned"
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL to the process and its workers: no drain, no flush, sockets reset."""
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(EXIT_SECONDS)

    def terminate(self) -> None:
        """SIGTERM, as a rolling deploy sends it; returns at once (see `wait_exit`)."""
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, seconds: float = EXIT_SECONDS) -> int:
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"bridge {self.name} still runs {seconds} s later:\n{self.output()}"
            ) from None

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self.kill()
        if self._temp is not None:
            self._temp.cleanup()

    # --- output ------------------------------------------------------------------------

    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def digest(self, lines: int = 60) -> str:
        """The last log records, without tracebacks and long-poll/health access lines."""
        records = [
            line
            for line in self.output().splitlines()
            if line[:2] == "20" and "/poll?" not in line and "/healthz" not in line
        ]
        return "\n".join(records[-lines:])

    def count(self, text: str) -> int:
        with self._changed:
            return self._count_unlocked(text)

    def worker_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", self.output())]

    def wait_line(self, text: str, seconds: float, *, count: int = 1) -> bool:
        """Until `count` lines hold `text` (True) or the output ended first, the process
        having exited (False); AssertionError after `seconds`."""
        return self._wait(lambda: self._count_unlocked(text) >= count, seconds, text)

    def _wait(self, seen: Callable[[], bool], seconds: float, what: str) -> bool:
        with self._changed:
            done = self._changed.wait_for(lambda: seen() or self._ended, seconds)
            if not done:
                raise AssertionError(
                    f"bridge {self.name}: no {what!r} within {seconds} s:\n{''.join(self.lines)}"
                )
            return seen()

    def _wait_accepting(self, seconds: float) -> bool:
        """Until a TCP connection to the port is accepted (True) or the process exited
        (False)."""

        def settled() -> bool:
            return self.returncode is not None or accepts_connections(self.port)

        try:
            wait_until(settled, seconds, f"bridge {self.name} accepting on port {self.port}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.output()}") from None
        return self.returncode is None

    def _count_unlocked(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def _read(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        with self.log.open("a", encoding="utf-8") as sink:
            for line in process.stdout:
                sink.write(line)
                sink.flush()
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()


def start_bridges(bridges: Sequence[BridgeProcess]) -> None:
    """Spawn them all, then wait for each: their start-ups overlap."""
    for bridge in bridges:
        bridge.spawn()
    for bridge in bridges:
        bridge.wait_ready()


class BridgeProcesses:
    """Bridge processes of one test, in one working directory, named 0, 1, ... in the order
    they started; `close()` kills them all."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self.started: list[BridgeProcess] = []

    def __call__(self, **settings: str) -> BridgeProcess:
        """A bridge process with `settings`, once ready (fails if it exits first)."""
        bridge = self._spawn(settings)
        bridge.wait_ready()
        return bridge

    def settled(self, **settings: str) -> BridgeProcess:
        """A bridge process with `settings`, once ready or exited without starting (for a
        process expected to die at start-up: see its `started` and `wait_exit`)."""
        bridge = self._spawn(settings)
        bridge.wait_settled()
        return bridge

    def close(self) -> None:
        for bridge in self.started:
            bridge.close()

    def _spawn(self, settings: Mapping[str, str]) -> BridgeProcess:
        bridge = BridgeProcess(settings, name=str(len(self.started)), workdir=self._workdir)
        self.started.append(bridge)
        return bridge.spawn()


@pytest.fixture
def bridge_processes(tmp_path: Path) -> Iterator[BridgeProcesses]:
    """A factory: `bridge_processes(**settings)` starts a bridge process and waits until it
    is ready (`.settled(**settings)`: or exited); all are killed at the end."""
    processes = BridgeProcesses(tmp_path)
    yield processes
    processes.close()
