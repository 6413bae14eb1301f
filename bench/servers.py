"""The processes of a benchmark run: start them on free loopback ports, read their CPU
time and memory from /proc, read Redis's counters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
NODE_REFERENCE = ROOT / "bench" / "node-reference"
LOG_DIR = ROOT / "test-artifacts" / "bench"  # each server's output, out of the table's way
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_tree(pid: int) -> list[int]:
    """pid and its descendants (a server may run workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants."""
    total = 0
    for member in _process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants."""
    total = 0
    for member in _process_tree(pid):
        try:
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * _PAGE
        except OSError:
            continue
    return total


def peak_rss_bytes(pid: int) -> int:
    """Peak resident memory (VmHWM) of a process and its descendants, each over its life."""
    total = 0
    for member in _process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections from a process (and its descendants) to a loopback
    port: how many Redis connections a server holds."""
    inodes: set[str] = set()
    for member in _process_tree(pid):
        try:
            for fd in Path(f"/proc/{member}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def error_lines(self) -> int:
        """Lines of its log that report an error (a server under overload may log many)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if "error" in line.lower())

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(
    name: str, argv: list[str], env: dict[str, str], probe: str, cwd: Path = ROOT
) -> Server:
    """Start `argv` (`{port}` replaced by a free port), its output to LOG_DIR/<name>.log,
    and wait until GET `probe` answers."""
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{name.replace(' ', '-')}.log"
    with log.open("wb") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [part.format(port=port) for part in argv],
            cwd=cwd,
            env={**os.environ, **env, "PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} while starting: {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=2):
                return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not answer {probe} within 60 s")


def start_fake(tokens: int, stall_after: int) -> Server:
    return start_server(
        "fake upstream",
        [
            sys.executable,
            "-m",
            "bench.fake_server",
            "--port",
            "{port}",
            "--tokens",
            str(tokens),
            "--stall-after",
            str(stall_after),
        ],
        {},
        "/",
    )


def start_bridge(
    fake_port: int, redis_url: str, extra_env: dict[str, str], name: str = "bridge"
) -> Server:
    env = {
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
        "BRIDGE_MODEL": "openai-chat:gpt-bench",
        "REDIS_URL": redis_url,
        **extra_env,
    }
    return start_server(
        name,
        [sys.executable, "-m", "bridge", "--port", "{port}", "--log-level", "warning"],
        env,
        "/healthz",
    )


def start_reference(node: str, fake_port: int, redis_url: str, name: str = "reference") -> Server:
    env = {
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
        "BENCH_MODEL": "gpt-bench",
        "REDIS_URL": redis_url,
    }
    return start_server(name, [node, "server.mjs"], env, "/healthz", cwd=NODE_REFERENCE)


class RedisProbe:
    """Counters of the shared redis-server."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=30)
        self.pid = int(self.client.info("server")["process_id"])
        self.port = int(self.client.info("server")["tcp_port"])

    def counters(self) -> dict[str, float]:
        stats = self.client.info("stats")
        clients = self.client.info("clients")
        memory = self.client.info("memory")
        commands = self.client.info("commandstats")
        return {
            "commands": float(sum(int(value["calls"]) for value in commands.values())),
            "reads": float(stats["total_reads_processed"]),
            "clients": float(clients["connected_clients"]),
            "used_memory": float(memory["used_memory"]),
            "cpu": cpu_seconds(self.pid),
            "rss": float(rss_bytes(self.pid)),
        }

    def close(self) -> None:
        self.client.close()
