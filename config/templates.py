"""Reply and alert templates, loaded once per process from `config/templates*.toml`.

Each feature may keep its wording in its own file (templates.toml, templates_tickets.toml, …);
the files are merged, and a key defined twice is an error rather than a silent override.
Keys are dotted paths into the TOML tables: `render("alerts.customer_deleted_you", ...)`.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES_DIR = Path(__file__).parent


@cache
def _templates() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(TEMPLATES_DIR.glob("templates*.toml")):
        _merge(merged, tomllib.loads(path.read_text(encoding="utf-8")), path.name)
    return merged


def _merge(into: dict[str, Any], new: dict[str, Any], source: str, prefix: str = "") -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, source, f"{prefix}{key}.")
        elif key in into:
            raise ValueError(f"template {prefix}{key} is defined twice (again in {source})")
        else:
            into[key] = value


def _lookup(key: str) -> Any:
    node: Any = _templates()
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"no template {key!r} in config/templates*.toml")
        node = node[part]
    return node


def render(key: str, **values: object) -> str:
    """The template at `key` filled with `values`; a missing key is a bug, so it raises."""
    template = _lookup(key)
    if not isinstance(template, str):
        raise KeyError(f"template {key!r} is a table, not a text")
    return template.format(**values)


def has(key: str) -> bool:
    try:
        return isinstance(_lookup(key), str)
    except KeyError:
        return False
