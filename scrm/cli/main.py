"""`scrm`: the one command for running, operating and trying the service.

Feature packages add their own subcommands through `register(subparsers)` functions, listed
here explicitly so nothing registers itself behind anyone's back.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from config.settings import ConfigError
from scrm.logging_setup import LOG_FORMATS


def build_parser() -> argparse.ArgumentParser:
    """Every command's arguments. The modules registering them import only the standard library and
    light project modules; what a command needs (the database, aiohttp, openpyxl, the bot, NLP) is
    imported when it runs, so `scrm --help` and every `--help` answer at once (tests/test_cli_startup.py)."""
    from connectors.wecom.simulator import cli as simulator_cli
    from nlp import cli as nlp_cli
    from scrm.bench import commands as bench
    from scrm.cli import (api_tokens, channels, doctor, import_export, jobs, nlp_feedback, nlp_reindex, privacy, queues,
                           report, serve, sync, targets)

    parser = argparse.ArgumentParser(prog="scrm", description="SCRM bot and WeCom integration service.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=os.environ.get("SCRM_LOG_FORMAT", "text"),
                        help="text (default) or json: one JSON object per line (also SCRM_LOG_FORMAT)")
    parser.add_argument("--config", help="optional TOML settings file (environment variables still win)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.register(sub)
    doctor.register(sub)
    queues.register(sub)
    channels.register(sub)
    import_export.register(sub)
    targets.register(sub)
    sync.register(sub)
    privacy.register(sub)
    api_tokens.register(sub)
    simulator_cli.register(sub)
    jobs.register(sub)
    report.register(sub)
    nlp_commands = nlp_cli.register(sub)
    nlp_reindex.register(nlp_commands)
    nlp_feedback.register(nlp_commands)
    bench.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from scrm.logging_setup import configure_logging

    if args.log_format not in LOG_FORMATS:  # argparse does not check a default taken from the environment
        parser.error(f"SCRM_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)} (got {args.log_format!r})")
    configure_logging(str(args.log_level), args.log_format)
    from scrm.resources import CliError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, CliError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
