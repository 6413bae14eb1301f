"""The demo follows the system's dark mode: every colour variable of its stylesheet has a
dark value, and no light background is written outside the variables."""

from __future__ import annotations

import re
from pathlib import Path

CSS = (Path(__file__).resolve().parents[1] / "frontend-demo" / "app" / "globals.css").read_text()


def variables(block: str) -> set[str]:
    return set(re.findall(r"(--[a-z-]+):\s*[^;]*(?:#|rgba?\()", block))


def test_demo_styles_dark_mode_gives_every_colour_variable_a_dark_value() -> None:
    light = CSS[CSS.index(":root {") : CSS.index("}", CSS.index(":root {"))]
    dark_start = CSS.index("@media (prefers-color-scheme: dark)")
    dark = CSS[dark_start : CSS.index("\n}\n", dark_start)]
    assert "color-scheme: dark" in dark
    assert variables(light) - variables(dark) == set()


def test_demo_styles_no_light_background_outside_the_variables() -> None:
    rules = CSS[CSS.index("\n* {") :]
    colours = re.findall(r"background: #([0-9a-f]{6});", rules)
    light = [c for c in colours if all(int(c[i : i + 2], 16) >= 0xE0 for i in (0, 2, 4))]
    assert light == []  # they stay light in dark mode: use a variable
