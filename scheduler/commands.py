"""`scrm jobs list` and `scrm jobs run NAME [--at ISO-8601]`, for operators and tests."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from config.settings import load_settings
from crm_core.db import create_engine, session_factory, utcnow
from scheduler.jobs import build_jobs
from scheduler.runner import Scheduler


def register(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="the scheduler's jobs")
    actions = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every job, its schedule, next run and last run")
    listing.set_defaults(func=cmd_list)
    run = actions.add_parser("run", help="run one job now, as if at --at (default: now)")
    run.add_argument("name")
    run.add_argument("--at", help="ISO-8601 time the run is for, e.g. 2026-12-01T09:00+08:00")
    run.set_defaults(func=cmd_run)


async def _scheduler(args: argparse.Namespace):
    from scrm.resources import open_redis, prepare_schema

    settings = load_settings(toml_path=args.config)
    engine = create_engine(settings.database_url)
    await prepare_schema(engine, settings)
    scheduler = Scheduler(build_jobs(settings), session_factory(engine), open_redis(settings), settings.tz)
    return settings, engine, scheduler


def cmd_list(args: argparse.Namespace) -> int:
    async def main() -> None:
        settings, engine, scheduler = await _scheduler(args)
        try:
            last = await scheduler.last_runs()
        finally:
            await engine.dispose()
        now = utcnow()
        for job in scheduler.jobs.values():
            next_run = job.next_run(now, settings.tz)
            run = last.get(job.name)
            last_text = f"{run.scheduled_for.astimezone(settings.tz):%Y-%m-%d %H:%M} {run.status}" if run else "never"
            print(f"{job.name:28} {job.cron:18} next {next_run:%Y-%m-%d %H:%M}  last {last_text}\n    {job.description}")

    asyncio.run(main())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    async def main() -> int:
        settings, engine, scheduler = await _scheduler(args)
        if args.name not in scheduler.jobs:
            print(f"no job {args.name!r}; `scrm jobs list` shows them")
            return 2
        at = datetime.fromisoformat(args.at) if args.at else utcnow()
        if at.tzinfo is None:
            at = at.replace(tzinfo=settings.tz)
        try:
            summary = await scheduler.run_job(args.name, at)
        finally:
            await engine.dispose()
        print(summary if summary is not None else f"{args.name} already ran for {at.isoformat()}")
        return 0

    return asyncio.run(main())
