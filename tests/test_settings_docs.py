"""The three places that list the settings agree: the `Settings` class, README's settings
table and .env.example name the same variables, each once, with the same defaults.

A documented value is the default, checked by validating it as the setting would be read
(so `600` matches 600.0 and `true` matches True); a setting whose default is unset (None,
an empty list or mapping) may show an example value in .env.example and prose in README."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ENV_LINE = re.compile(r"^# ?([A-Z][A-Z0-9_]*)=(.*)$")
README_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|", re.MULTILINE)


def env_name(field: str) -> str:
    return field.upper()


FIELDS = {env_name(name): name for name in Settings.model_fields}


def default_of(field: str) -> Any:
    return Settings.model_fields[field].get_default(call_default_factory=True)


def unset_like(value: Any) -> bool:
    return value is None or value == [] or value == {}


def read_as_setting(field: str, text: str) -> Any:
    """`text` as the setting reads it from the environment."""
    value: Any = text
    if isinstance(default_of(field), dict):
        value = __import__("json").loads(text)
    settings = Settings(_env_file=None, **{field: value})  # type: ignore[call-arg]
    return getattr(settings, field)


def env_example() -> list[tuple[str, str]]:
    entries = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = ENV_LINE.match(line)
        if match:
            value = re.split(r"\s+#", match[2], maxsplit=1)[0].strip()
            entries.append((match[1], value))
    return entries


def readme_rows() -> list[tuple[str, str]]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("\n## Settings\n") :]
    return [(name, cell.strip()) for name, cell in README_ROW.findall(table)]


@pytest.mark.parametrize("source", ["env", "readme"])
def test_settings_docs_name_every_setting_once(source: str) -> None:
    names = [name for name, _ in (env_example() if source == "env" else readme_rows())]
    twice = sorted(name for name, count in Counter(names).items() if count > 1)
    assert twice == [], f"listed more than once in {source}: {twice}"
    assert sorted(set(names) - set(FIELDS)) == [], "documented, but no such setting"
    assert sorted(set(FIELDS) - set(names)) == [], f"settings missing from {source}"


def test_settings_docs_env_example_shows_the_defaults() -> None:
    wrong = []
    for name, text in env_example():
        field = FIELDS.get(name)
        if field is None or unset_like(default_of(field)):
            continue  # an example value for a setting that is unset by default
        try:
            value = read_as_setting(field, text)
        except ValidationError as exc:
            wrong.append(f"{name}={text}: invalid ({exc.errors()[0]['msg']})")
            continue
        if value != default_of(field):
            wrong.append(f"{name}={text}, but the default is {default_of(field)!r}")
    assert wrong == []


def test_settings_docs_readme_table_shows_the_defaults() -> None:
    wrong = []
    for name, cell in readme_rows():
        field = FIELDS.get(name)
        if field is None:
            continue
        default = default_of(field)
        literal = re.fullmatch(r"`([^`]*)`", cell)
        if literal is None:
            # Prose ("unset", "by key", ...) only where there is no fixed default.
            if not unset_like(default):
                wrong.append(f"{name}: {cell!r} for the default {default!r}")
            continue
        if read_as_setting(field, literal[1]) != default:
            wrong.append(f"{name}: {cell} but the default is {default!r}")
    assert wrong == []
