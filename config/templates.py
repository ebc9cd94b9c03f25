"""Reply and alert templates (config/templates.toml), loaded once per process."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

TEMPLATES_FILE = Path(__file__).with_name("templates.toml")


@cache
def _templates() -> dict[str, dict[str, str]]:
    return tomllib.loads(TEMPLATES_FILE.read_text(encoding="utf-8"))


def render(key: str, **values: object) -> str:
    """`render("alerts.customer_deleted_you", customer="张三", ...)`; a missing key is a bug, so it raises."""
    section, _, name = key.partition(".")
    return _templates()[section][name].format(**values)


def has(key: str) -> bool:
    section, _, name = key.partition(".")
    return name in _templates().get(section, {})
