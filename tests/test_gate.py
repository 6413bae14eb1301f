"""The one gate: every route of the app and every WebSocket frame type a client may send
has an `Entry`, every HTTP route takes its entry as a dependency (so it cannot be served
without passing it), and README's table of entry points says what the code does."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute, APIWebSocketRoute

from bridge.api.gate import FRAMES, SOCKET, Entry, entries
from bridge.app import create_app
from protocol.websocket import ClientFrame
from protocol.websocket_live import LIVE_FRAME_TYPES
from tests.bridge_server import make_settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _walk(routes: list[Any]) -> Iterator[Any]:
    """The app's routes, through included routers (FastAPI keeps them nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _walk(nested.routes)
        else:
            yield route


def route_entries() -> dict[str, Entry | None]:
    """Every route of the app, by the entry name it should have, with the entry its
    handler depends on (None: none)."""
    app = create_app(make_settings())
    found: dict[str, Entry | None] = {}
    for route in _walk(app.routes):
        if isinstance(route, APIRoute):
            if route.path in {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}:
                continue
            entries = [d.call for d in route.dependant.dependencies if isinstance(d.call, Entry)]
            # FastAPI answers HEAD along with GET; a HEAD route of its own is listed.
            methods = route.methods - {"HEAD"} if "GET" in route.methods else route.methods
            for method in sorted(methods):
                found[f"{method} {route.path}"] = entries[0] if len(entries) == 1 else None
        elif isinstance(route, APIWebSocketRoute):
            found[f"WEBSOCKET {route.path}"] = SOCKET
    return found


def _names(entry: Entry, route: str) -> bool:
    """The entry's name names the route: its method among the entry's (`GET|HEAD ...`) and
    its path, or under the entry's path when that ends in `...`."""
    method, path = route.split(" ", 1)
    methods, _, entry_path = entry.name.partition(" ")
    if method not in methods.split("|"):
        return False
    if entry_path.endswith("..."):
        return path.startswith(entry_path[:-3])
    return path == entry_path


def frame_types() -> set[str]:
    union = typing.get_args(typing.get_args(ClientFrame)[0])
    kinds = {
        typing.get_args(typing.get_args(member)[0].model_fields["type"].annotation)[0]
        for member in union
    }
    return set(kinds) | set(LIVE_FRAME_TYPES)


def test_gate_every_route_depends_on_its_entry() -> None:
    routes = route_entries()
    missing = [name for name, entry in routes.items() if entry is None]
    assert missing == []
    wrong = [
        name for name, entry in routes.items() if entry is not None and not _names(entry, name)
    ]
    assert wrong == []
    # Every HTTP/WebSocket entry serves a route.
    used = {entry.name for entry in routes.values() if entry is not None}
    declared = {entry.name for entry in entries() if not entry.name.startswith("frame ")}
    assert declared == used


def test_gate_every_frame_type_has_an_entry() -> None:
    assert set(FRAMES) == frame_types()
    assert all(entry.name == f"frame {kind}" for kind, entry in FRAMES.items())


def _readme_table() -> dict[str, list[str]]:
    text = README.read_text()
    start = text.index("<!-- entry points -->")
    end = text.index("<!-- /entry points -->")
    rows: dict[str, list[str]] = {}
    for line in text[start:end].splitlines():
        # `\|` is a `|` inside a cell (an entry of several methods).
        cells = [
            cell.strip().replace("\\|", "|")
            for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))
        ]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        rows[cells[0].strip("`")] = [check.strip() for check in cells[1].split(",")]
    return rows


def _all_entries() -> list[Entry]:
    route_entries()  # the app imports every route module: every entry is declared
    return entries()


def test_gate_readme_table_lists_every_entry_and_its_checks() -> None:
    table = _readme_table()
    assert table == {entry.name: list(entry.checks) for entry in _all_entries()}


def test_gate_readme_table_format_is_what_the_walk_reads() -> None:
    # The walk above must read rows at all (a renamed marker would make it vacuous).
    assert len(_readme_table()) == len(_all_entries()) > 20
    assert re.search(r"<!-- entry points -->\n", README.read_text())
