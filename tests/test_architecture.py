"""The house as ARCHITECTURE.md draws it: every module named in its folder's row, and no
layer importing one above it (the order is written once, in ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text()


def _modules() -> list[Path]:
    return sorted(
        path
        for package in ("bridge", "protocol")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py"
    )


def _rows() -> dict[str, str]:
    """The layers table: folder (`bridge/log/`) -> the rest of its row."""
    rows: dict[str, str] = {}
    for line in ARCHITECTURE.splitlines():
        match = re.match(r"\|\s*`([a-z_/]+/)`\s*\|(.*)", line)
        if match:
            assert match.group(1) not in rows, f"two rows for {match.group(1)}"
            rows[match.group(1)] = match.group(2)
    return rows


def _layer_order() -> list[set[str]]:
    match = re.search(r"^`(app[^`]*>[^`]*)`$", ARCHITECTURE, re.MULTILINE)
    assert match, "ARCHITECTURE.md states the layer order on a line of its own"
    return [{name.strip() for name in level.split(",")} for level in match.group(1).split(">")]


def _layer_of(module: str) -> str:
    """`bridge.log.writer` -> `log`; `bridge.app` -> `app`; `protocol.sse` -> `protocol`."""
    parts = module.split(".")
    return "protocol" if parts[0] == "protocol" else parts[1]


def _imports(path: Path) -> set[str]:
    """Every bridge/protocol module it imports, anywhere in the file (functions and
    TYPE_CHECKING blocks included: a type-level circle is a circle)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in ("bridge", "protocol"))
    return found


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_architecture_names_every_module_in_its_folders_row(path: Path) -> None:
    folder = str(path.parent.relative_to(ROOT)) + "/"
    rows = _rows()
    assert folder in rows, f"ARCHITECTURE.md has no row for {folder}"
    assert f"`{path.name}`" in rows[folder], f"{path.name} is not named in the {folder} row"


def test_architecture_rows_name_no_missing_module() -> None:
    existing = {str(path.relative_to(ROOT)) for path in _modules()}
    for folder, row in _rows().items():
        for name in re.findall(r"`([a-z_]+\.py)`", row):
            assert folder + name in existing, f"ARCHITECTURE.md names {folder}{name}"


def test_architecture_layer_order_covers_every_layer() -> None:
    named = set().union(*_layer_order())
    layers = {_layer_of(_dotted(path)) for path in _modules()}
    assert layers <= named, f"layers missing from the order: {sorted(layers - named)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_architecture_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    rank = {name: index for index, level in enumerate(_layer_order()) for name in level}
    mine = _layer_of(_dotted(path))
    for imported in _imports(path):
        theirs = _layer_of(imported)
        if theirs == mine:
            continue
        assert rank[theirs] > rank[mine], (
            f"{_dotted(path)} ({mine}) imports {imported} ({theirs}), a layer above or beside it"
        )


def test_architecture_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a store module importing the runner is caught."""
    rank = {name: index for index, level in enumerate(_layer_order()) for name in level}
    module = tmp_path / "bad.py"
    module.write_text("from bridge.generation.runner import GenerationRunner\n")
    (imported,) = _imports(module)
    assert rank[_layer_of(imported)] < rank["store"]
