"""The one way a policy file under config/ is read: tickets.toml, care.toml, nudges.toml,
lifecycle.toml (the stages and the lead score), deal_pipeline.toml, forecast.toml, sales_groups.toml.

A policy class turns the file's parsed tables into typed values in `from_toml(raw)`, raising
ValueError for what it refuses (a KeyError for a missing key). `load_policy` reads a file and turns
any of that into one PolicyError naming the file, and `shipped_policy` makes the process-wide
loader of a file shipped in config/, read once on first use. A bad file then stops the service at
start with what to fix, not a job on a festival morning.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

CONFIG_DIR = Path(__file__).resolve().parent
T = TypeVar("T")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and what is wrong with it."""


def load_policy(path: str | Path, build: Callable[[dict[str, Any]], T]) -> T:
    """`build` the policy from the TOML file at `path`."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot be read as TOML ({exc})") from exc
    try:
        return build(raw)
    except KeyError as exc:
        raise PolicyError(f"{path}: {exc.args[0]!r} is missing") from exc
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{path}: {exc}") from exc


def shipped_policy(file_name: str, build: Callable[[dict[str, Any]], T]) -> Callable[[], T]:
    """A function returning config/`file_name` built by `build`, read once per process."""

    @cache
    def default() -> T:
        return load_policy(CONFIG_DIR / file_name, build)

    default.__doc__ = f"config/{file_name}, read once per process."
    return default
