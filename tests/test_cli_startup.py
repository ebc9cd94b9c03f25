"""`scrm --help` and every subcommand's `--help` answer at once: building the parser imports none of
the heavy modules (the database, HTTP, spreadsheet, bot and analysis code load when a command
runs). Checked in a fresh interpreter, where nothing is imported yet; the measured times are in
BENCHMARKS.md ("CLI start-up")."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "alembic", "aiohttp", "asyncpg", "aiosqlite", "redis", "fakeredis", "openpyxl", "wechatpy",
         "apscheduler", "jieba", "pypinyin", "numpy", "sklearn", "prometheus_client", "defusedxml", "bot",
         "scheduler", "nlp.analyzer", "crm_core.models", "crm_core.db", "scrm.app")

PROBE = """
import argparse, json, sys
from scrm.cli.main import build_parser

def walk(parser, path):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, [*path, name])

commands = [" ".join(path) for path, parser in walk(build_parser(), []) if parser.format_help()]
print(json.dumps({"commands": commands, "modules": sorted(sys.modules)}))
"""


@pytest.mark.slow
def test_building_the_parser_and_every_help_imports_no_heavy_module():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert {"import customers", "doctor", "jobs list", "report funnel", "bench ingest", "nlp analyze"} <= set(
        result["commands"])
    loaded = [name for name in result["modules"] if any(name == h or name.startswith(h + ".") for h in HEAVY)]
    assert loaded == [], f"imported while building the parser: {sorted({m.split('.')[0] for m in loaded})}"
