"""Real processes the chaos suite can hurt: a redis-server (paused, restarted with its data
or without) and bridge processes (`python -m bridge`, killed or terminated).

Every wait here has a bound; waiting on another process's state is a bounded poll (a
process offers nothing else to wait on), never a sleep standing in for an event.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60.0
"""A bridge process imports every provider SDK: slow on a loaded 2-core machine."""
STATE_SECONDS = 10.0
EXIT_SECONDS = 30.0
_POLL = 0.05


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition_met: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition_met()` until true; AssertionError naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition_met():
            return
        time.sleep(_POLL)
    raise AssertionError(f"{what}: not within {seconds} s")


def process_state(pid: int) -> str:
    """The one-letter state in /proc (R, S, T for stopped, Z, ...); "gone" when it exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return stat.rsplit(")", 1)[1].split()[0]


class RedisProcess:
    """One `redis-server` on a fixed loopback port with a data directory of its own, so it
    can be stopped and started again on the same address, with its data or without."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.log = workdir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._process is not None, "redis-server is not running"
        return self._process.pid

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            # No periodic snapshots: the data survives a restart only through SHUTDOWN SAVE.
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        with self.log.open("ab") as sink:
            self._process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        probe = self.client()
        try:

            def answers() -> bool:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise AssertionError(f"redis-server exited:\n{self.log.read_text()}")
                try:
                    return bool(probe.ping())
                except redis.ConnectionError:
                    return False

            wait_until(answers, STATE_SECONDS, f"redis-server on port {self.port}")
        finally:
            probe.close()

    def shutdown(self, *, save: bool) -> None:
        """SHUTDOWN SAVE (the data is written to dump.rdb, a restart loads it) or NOSAVE.

        Sent on a raw socket: a client library would retry the command it saw cut off
        (the server closing the connection is the answer), for seconds."""
        process = self._process
        assert process is not None
        command = b"SAVE" if save else b"NOSAVE"
        with socket.create_connection(("127.0.0.1", self.port), timeout=EXIT_SECONDS) as conn:
            conn.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$%d\r\n%s\r\n" % (len(command), command))
            reply = b""
            with contextlib.suppress(ConnectionResetError):
                reply = conn.recv(1024)  # b"" once the server exited; an error reply otherwise
        assert not reply, f"SHUTDOWN {command.decode()} refused: {reply!r}"
        process.wait(EXIT_SECONDS)
        self._process = None
        if not save:
            (self.workdir / "dump.rdb").unlink(missing_ok=True)

    def pause(self) -> None:
        """SIGSTOP, returning once the kernel shows it stopped."""
        os.kill(self.pid, signal.SIGSTOP)
        wait_until(lambda: process_state(self.pid) in ("T", "t"), STATE_SECONDS, "SIGSTOP")

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        wait_until(lambda: process_state(self.pid) not in ("T", "t"), STATE_SECONDS, "SIGCONT")

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a paused server cannot exit
        process.terminate()
        try:
            process.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(EXIT_SECONDS)


def bridge_environment(**settings: str) -> dict[str, str]:
    """This machine's environment without any bridge setting of its own, plus `settings`
    (and the repository on the import path, for `BRIDGE_TOOLS=tests.chaos.tools`)."""
    own = {"HOST", "PORT", "REDIS_URL", "FORWARDED_ALLOW_IPS"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BRIDGE_", "OPENAI_", "ANTHROPIC_", "AZURE_")) and name not in own
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(settings)
    return env


class BridgeProcess:
    """`python -m bridge` on a free loopback port, its output in a log file."""

    def __init__(self, name: str, workdir: Path, settings: Mapping[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.log = workdir / f"bridge-{name}.log"
        self._workdir = workdir
        self._settings = dict(settings)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def spawn(self) -> None:
        env = bridge_environment(BRIDGE_PORT=str(self.port), **self._settings)
        with self.log.open("ab") as sink:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--log-level", "info"],
                cwd=self._workdir,  # no developer's .env is read
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.returncode is not None:
                raise AssertionError(f"bridge {self.name} exited:\n{self.output()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, START_SECONDS, f"bridge {self.name} ready")

    @property
    def returncode(self) -> int | None:
        assert self._process is not None
        return self._process.poll()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def digest(self, lines: int = 60) -> str:
        """The last log records, without tracebacks and long-poll access lines (the whole
        log stays in the test's tmp_path)."""
        records = [
            line
            for line in self.output().splitlines()
            if line[:2] == "20" and "/poll?" not in line and "/healthz" not in line
        ]
        return "\n".join(records[-lines:])

    def kill(self) -> None:
        """SIGKILL: no drain, no flush, sockets reset by the kernel."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(EXIT_SECONDS)

    def terminate(self) -> None:
        """SIGTERM, as a rolling deploy sends it; returns at once (see `wait_exit`)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)

    def wait_exit(self, seconds: float = EXIT_SECONDS) -> int:
        assert self._process is not None
        try:
            return self._process.wait(seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"bridge {self.name} still runs {seconds} s after SIGTERM:\n{self.output()}"
            ) from None

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(EXIT_SECONDS)


def start_bridges(bridges: list[BridgeProcess]) -> None:
    """Spawn them all, then wait for each: their start-ups overlap."""
    for bridge in bridges:
        bridge.spawn()
    for bridge in bridges:
        bridge.wait_ready()
