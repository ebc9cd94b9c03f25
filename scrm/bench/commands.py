"""`scrm bench …`: every benchmark's arguments, declared here; a benchmark's own module (its
database, HTTP and process machinery) is imported only when it runs, so `scrm --help` and
`scrm bench NAME --help` answer at once. Results and commands go in BENCHMARKS.md."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

SAMPLE_STAFF = 5  # employees in the simulator's sample company
DEFAULT_JOBS = ("care.birthdays", "nudges.morning")  # what `scrm bench scheduler` times unless --jobs says


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="measure throughput and latency (results go in BENCHMARKS.md)")
    benches = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    ingest = benches.add_parser("ingest", help="callback ack latency and end-to-end archive throughput")
    ingest.add_argument("-n", type=int, default=5000, help="callbacks per phase (default 5000)")
    ingest.add_argument("-c", "--concurrency", type=int, default=50, help="requests in flight (default 50)")
    ingest.add_argument("--rate", type=float, default=500.0,
                        help="paced phase: callbacks per second (default 500; 0 skips the paced phase)")
    ingest.add_argument("--duration", type=float, default=0.0,
                        help="sustained paced phase: --rate callbacks a second for this many seconds instead of -n callbacks")
    ingest.add_argument("--web", type=int, help="separate `--roles web` processes (more than one process in all needs PostgreSQL and Redis)")
    ingest.add_argument("--workers", help="separate `--roles worker` processes, e.g. 2; a list such as 1,2 runs once per count")
    ingest.add_argument("--staff", type=int, default=SAMPLE_STAFF,
                        help="employees sending (default 5, the sample company; more are added to the simulator)")
    ingest.add_argument("--database-url", default="", help="default: a fresh SQLite file in a temp folder")
    ingest.add_argument("--redis-url", default="", help="default: the in-process stand-in")
    ingest.add_argument("--roles", default="web,worker",
                        help="roles of the single service process (default web,worker); with `web` alone nothing is archived")
    ingest.add_argument("--stall", type=float, default=120.0,
                        help="give up waiting for the archive after this many seconds without progress (default 120)")
    ingest.add_argument("--profile", default="",
                        help="write py-spy samples (collapsed stacks) of the service, or of the first worker process, to this file")
    ingest.set_defaults(func=_when_run("scrm.bench.ingest", "cmd_ingest"))

    memory = benches.add_parser("memory", help="RSS of web and worker processes while 1M messages are archived")
    memory.add_argument("--messages", type=int, default=1_000_000, help="messages to archive (default 1000000)")
    memory.add_argument("--sample-every", type=int, default=50_000, help="read RSS every this many archived (default 50000)")
    memory.add_argument("--warmup", type=int, default=50_000,
                        help="growth is measured from the first sample at or after this many archived (default 50000)")
    memory.add_argument("--web", type=int, default=1, help="`--roles web` processes (default 1)")
    memory.add_argument("--workers", type=int, default=1, help="`--roles worker` processes (default 1)")
    memory.add_argument("-c", "--concurrency", type=int, default=50, help="requests in flight (default 50)")
    memory.add_argument("--chunk", type=int, default=1000, help="callbacks encrypted and posted at a time (default 1000)")
    memory.add_argument("--backlog", type=int, default=5000,
                        help="post no more while this many acked callbacks wait to be archived (default 5000)")
    memory.add_argument("--staff", type=int, default=SAMPLE_STAFF, help="employees sending (default 5, the sample company)")
    memory.add_argument("--database-url", default="", help="postgresql+asyncpg://… (required)")
    memory.add_argument("--redis-url", default="", help="redis://… (required)")
    memory.add_argument("--stall", type=float, default=120.0,
                        help="stop after this many seconds without a message archived (default 120)")
    memory.set_defaults(func=_when_run("scrm.bench.memory", "cmd_memory"))

    hostile = benches.add_parser("hostile", help="unauthenticated callback flood vs. /healthz and valid callbacks")
    hostile.add_argument("--seconds", type=float, default=20.0, help="length of the flood (default 20)")
    hostile.add_argument("-c", "--concurrency", type=int, default=16, help="hostile requests in flight (default 16)")
    hostile.add_argument("--kind", choices=("siblings", "forged", "nested", "dtd", "mixed"), default="mixed",
                         help="which hostile body (default mixed: each in turn)")
    hostile.add_argument("--probe-every", type=float, default=0.05, help="seconds between probes (default 0.05)")
    hostile.add_argument("--database-url", default="", help="default: a fresh SQLite file in a temp folder")
    hostile.add_argument("--redis-url", default="", help="default: the in-process stand-in")
    hostile.set_defaults(func=_when_run("scrm.bench.hostile", "cmd_hostile"))

    nlp = benches.add_parser("nlp", help="analysis throughput, start-up time, memory")
    nlp.add_argument("--short", type=int, default=20_000, help="short messages to analyse")
    nlp.add_argument("--long", type=int, default=200, help="long (~2,000 character) texts")
    nlp.set_defaults(func=_when_run("scrm.bench.nlp", "cmd_bench"))

    understanding = benches.add_parser("understanding", help="cost per line of reading free chat sentences (bot/understanding)")
    understanding.add_argument("--lines", type=int, default=20_000, help="lines to read (default 20000)")
    understanding.add_argument("--seed", type=int, default=16)
    understanding.set_defaults(func=_when_run("scrm.bench.understanding", "cmd_understanding"))

    lookup = benches.add_parser("lookup", help="chat lookups (查) against 100k-1M synthetic customers")
    lookup.add_argument("--customers", type=int, default=100_000, help="customers in the database (default 100000)")
    lookup.add_argument("-n", type=int, default=300, help="timed lookups per query kind (default 300)")
    lookup.add_argument("--database-url", default="",
                        help="an empty database, or one this benchmark filled to the same size (default: a fresh SQLite file)")
    lookup.add_argument("--redis-url", default="", help="default: the in-process stand-in")
    lookup.add_argument("--seed", type=int, default=20261122)
    lookup.set_defaults(func=_when_run("scrm.bench.lookup", "cmd_lookup"))

    scheduler = benches.add_parser("scheduler", help="daily care and nudge jobs over 100k-1M customers")
    scheduler.add_argument("--customers", type=int, default=100_000, help="customers in the database (default 100000)")
    scheduler.add_argument("--database-url", default="",
                       help="an empty database, or one this benchmark filled to the same size (default: a fresh SQLite file)")
    scheduler.add_argument("--at", default="2026-12-01T09:00:00+08:00", help="the moment the jobs run for (ISO-8601)")
    scheduler.add_argument("--jobs", default=",".join(DEFAULT_JOBS), help=f"comma-separated (default {','.join(DEFAULT_JOBS)})")
    scheduler.add_argument("--seed", type=int, default=20261122)
    scheduler.set_defaults(func=_when_run("scrm.bench.scheduler", "cmd_bench"))

    sync = benches.add_parser("sync", help="existing WeCom customers synced: contacts/s and memory for 10k-100k contacts")
    sync.add_argument("--contacts", default="10000,100000", help="comma-separated company sizes (default 10000,100000)")
    sync.add_argument("--reps", type=int, default=40, help="sales reps the contacts belong to (default 40)")
    sync.add_argument("--postgres-admin-url", default="",
                      help="postgresql://… of a server where a fresh database per size may be created (default: SQLite files)")
    sync.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines (default 10)")
    sync.set_defaults(func=_when_run("scrm.bench.sync", "cmd_bench"))

    funnel = benches.add_parser("funnel", help="report funnel/forecast over 1M customers and 200k deals (PostgreSQL)")
    funnel.add_argument("--customers", type=int, default=1_000_000, help="customers (default 1000000)")
    funnel.add_argument("--deals", type=int, default=200_000, help="deals (default 200000)")
    funnel.add_argument("--database-url", required=True,
                       help="postgresql+asyncpg://… : an empty database, or one this benchmark filled to the same size")
    funnel.add_argument("--at", default="2026-11-29T10:00:00+08:00", help="the moment the reports run for (ISO-8601)")
    funnel.add_argument("--seed", type=int, default=20261129)
    funnel.set_defaults(func=_when_run("scrm.bench.funnel", "cmd_bench"))


def _when_run(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(args)

    return run
