"""`scrm jobs list` and `scrm jobs run NAME [--at ISO-8601]`, for operators and tests."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from config.settings import Settings, load_settings

if TYPE_CHECKING:
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


@asynccontextmanager
async def _scheduler(args: argparse.Namespace) -> AsyncIterator[tuple[Settings, Scheduler]]:
    """A scheduler over the configured database and Redis; with WeCom credentials it also has the
    jobs that call WeCom (SERVICE_JOB_NAMES), built by the service exactly as `scrm serve` does."""
    import aiohttp

    from connectors.wecom.client import WeComClient
    from crm_core.db import create_engine, session_factory
    from scheduler.jobs import build_jobs
    from scheduler.runner import Scheduler
    from scrm.app import service_jobs
    from scrm.resources import open_redis, prepare_schema

    settings = load_settings(toml_path=args.config)
    engine = create_engine(settings.database_url)
    redis = open_redis(settings)
    try:
        await prepare_schema(engine, settings)
        async with aiohttp.ClientSession() as http:
            extra = {}
            if settings.wecom.configured:
                wecom = settings.wecom
                extra = service_jobs(WeComClient(http, api_base=wecom.api_base, corp_id=wecom.corp_id,
                                                 secret=wecom.secret, redis=redis), settings)
            yield settings, Scheduler(build_jobs(settings, extra), session_factory(engine), redis, settings.tz)
    finally:
        await redis.aclose()
        await engine.dispose()


def _unavailable(scheduler: Scheduler) -> list[str]:
    from scheduler.jobs import SERVICE_JOB_NAMES

    return sorted(SERVICE_JOB_NAMES - set(scheduler.jobs))


def cmd_list(args: argparse.Namespace) -> int:
    from crm_core.db import utcnow

    async def main() -> None:
        async with _scheduler(args) as (settings, scheduler):
            last = await scheduler.last_runs()
        now = utcnow()
        for job in scheduler.jobs.values():
            next_run = job.next_run(now, settings.tz)
            run = last.get(job.name)
            last_text = f"{run.scheduled_for.astimezone(settings.tz):%Y-%m-%d %H:%M} {run.status}" if run else "never"
            print(f"{job.name:28} {job.cron:18} next {next_run:%Y-%m-%d %H:%M}  last {last_text}\n    {job.description}")
        for name in _unavailable(scheduler):
            print(f"{name:28} needs WeCom credentials (SCRM_WECOM_*) to run")

    asyncio.run(main())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from crm_core.db import utcnow

    async def main() -> int:
        async with _scheduler(args) as (settings, scheduler):
            if args.name in _unavailable(scheduler):
                print(f"{args.name} calls WeCom: set SCRM_WECOM_CORP_ID and the other SCRM_WECOM_* variables first")
                return 2
            if args.name not in scheduler.jobs:
                print(f"no job {args.name!r}; `scrm jobs list` shows them")
                return 2
            at = datetime.fromisoformat(args.at) if args.at else utcnow()
            if at.tzinfo is None:
                at = at.replace(tzinfo=settings.tz)
            summary = await scheduler.run_job(args.name, at)
        print(summary if summary is not None else f"{args.name} already ran for {at.isoformat()}")
        return 0

    return asyncio.run(main())
