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


def build_parser() -> argparse.ArgumentParser:
    from bot import bench as lookup_bench
    from connectors.wecom.simulator import cli as simulator_cli
    from nlp import cli as nlp_cli
    from scheduler import bench as scheduler_bench
    from scheduler import commands as jobs_cli
    from scrm import bench_funnel, bench_memory, report_cli
    from scrm import analysis, api_tokens_cli, bench, channels_cli, commands, doctor, import_export, privacy_cli, queues_cli
    from scrm.logging_setup import LOG_FORMATS

    parser = argparse.ArgumentParser(prog="scrm", description="SCRM bot and WeCom integration service.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=os.environ.get("SCRM_LOG_FORMAT", "text"),
                        help="text (default) or json: one JSON object per line (also SCRM_LOG_FORMAT)")
    parser.add_argument("--config", help="optional TOML settings file (environment variables still win)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.register(sub)
    doctor.register(sub)
    queues_cli.register(sub)
    channels_cli.register(sub)
    import_export.register(sub)
    privacy_cli.register(sub)
    api_tokens_cli.register(sub)
    simulator_cli.register(sub)
    jobs_cli.register(sub)
    report_cli.register(sub)
    analysis.register(nlp_cli.register(sub))
    bench_parser = sub.add_parser("bench", help="measure throughput and latency (results go in BENCHMARKS.md)")
    bench_sub = bench_parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    bench.register(bench_sub)
    bench_memory.register_bench(bench_sub)
    nlp_cli.register_bench(bench_sub)
    lookup_bench.register_bench(bench_sub)
    scheduler_bench.register_bench(bench_sub)
    bench_funnel.register_bench(bench_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from scrm.logging_setup import LOG_FORMATS, configure_logging

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
