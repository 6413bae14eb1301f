"""Loopback ports for the servers a test starts."""

from __future__ import annotations

import socket


def free_port(*, highest: int = 65535, also_free: int = 0) -> int:
    """A port free on 127.0.0.1 now (the caller binds it soon after; a server that may lose
    the race retries with another), at most `highest`, with `port + also_free` free too when
    asked (a Redis Cluster node binds its bus port 10,000 above its own, so its port must be
    at most 55535: the system's ephemeral ports go higher)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port <= highest and (not also_free or port_is_free(port + also_free)):
            return port
    raise RuntimeError(f"no free loopback port at most {highest} (with +{also_free} free)")


def accepts_connections(port: int) -> bool:
    """Whether a server on 127.0.0.1 accepts a TCP connection on `port` now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
