"""Reply and alert templates, loaded once per process from `config/templates*.toml`.

Each feature may keep its wording in its own file (templates.toml, templates_tickets.toml, …);
the files are merged, and a key defined twice is an error rather than a silent override.
Keys are dotted paths into the TOML tables: `render("alerts.customer_deleted_you", ...)`.

Every value is escaped for the kind of message the text goes into (`kind="text"`, "textcard" or
"markdown", see config/markup.py) as it is interpolated, so a customer's nickname or remark never
becomes a live link, tag or heading; a template whose own text is markdown must be rendered as
`kind="markdown"`. What `render` returns is `Markup` of its kind, interpolated into another
template of that kind as it is.
"""

from __future__ import annotations

import tomllib
from datetime import date, time, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from config.markup import ESCAPERS, Kind, Markup, escaped, uses_markdown

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


# Values whose formatted text never carries markup keep their type, so format specs such as
# `{score:.2f}` and `{at:%H:%M}` still apply; everything else is escaped as text of the kind.
_PLAIN_VALUES = (int, float, Decimal, date, time, timedelta, type(None))
_is_markdown = cache(uses_markdown)


def render(key: str, /, *, kind: Kind = "text", **values: object) -> Markup:
    """The template at `key` filled with `values`, each escaped for a message of `kind`.

    A missing key is a bug, so it raises; so is a markdown template rendered for a text message."""
    template = _lookup(key)
    if not isinstance(template, str):
        raise KeyError(f"template {key!r} is a table, not a text")
    if kind not in ESCAPERS:
        raise ValueError(f"unknown message kind {kind!r}: one of {', '.join(ESCAPERS)}")
    if kind != "markdown" and _is_markdown(template):
        raise ValueError(f"template {key!r} is markdown: render it with kind='markdown'")
    return Markup(template.format_map({name: value if isinstance(value, _PLAIN_VALUES) else escaped(value, kind)
                                       for name, value in values.items()}), kind)


def all_templates() -> dict[str, str]:
    """Every template by its dotted key, for checks that must cover them all."""
    found: dict[str, str] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif isinstance(value, str):
                found[f"{prefix}{key}"] = value

    walk(_templates(), "")
    return found


def has(key: str) -> bool:
    try:
        return isinstance(_lookup(key), str)
    except KeyError:
        return False
