"""`scrm sync WHAT`: pull a part of the company's WeCom into the CRM now, with progress.

Each WHAT is a subcommand registered in `register`; they share `wecom_sync_resources` (the
configured database, the shared token cache and a WeCom client), so a new one is a function and
one `add_parser` line. The work itself lives in scrm.sync.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

FAILED_SHOWN = 20  # failed contacts listed by id; the rest are counted

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from config.settings import Settings
    from connectors.wecom.client import WeComClient


def register(sub: argparse._SubParsersAction) -> None:
    sync = sub.add_parser("sync", help="pull the company's WeCom into the CRM now (directory, …)")
    what = sync.add_subparsers(dest="sync_what", metavar="WHAT", required=True)
    directory = what.add_parser("directory", help="departments, members and their roles; members who left lose access")
    directory.add_argument("--page-size", type=int, default=10_000, metavar="N",
                           help="members per user/list_id page, 1-10000 (default 10000)")
    directory.set_defaults(func=cmd_directory)
    customers = what.add_parser("customers", help="every rep's existing external contacts become customers (resumable)")
    customers.set_defaults(func=cmd_customers)
    groups = what.add_parser("groups", help="every customer group (客户群) with its owner and members (resumable)")
    groups.set_defaults(func=cmd_groups)


@asynccontextmanager
async def wecom_sync_resources(args: argparse.Namespace) -> AsyncIterator[
        tuple[Settings, async_sessionmaker[AsyncSession], WeComClient]]:
    """Settings, a checked schema's session factory and the WeCom client, as `scrm serve` builds them."""
    import aiohttp

    from config.settings import load_settings
    from config.templates import render
    from connectors.wecom.client import WeComClient
    from crm_core.db import create_engine, session_factory
    from scrm.resources import CliError, open_redis, prepare_schema

    settings = load_settings(toml_path=args.config)
    if not settings.wecom.configured:
        raise CliError(render("sync.needs_wecom"))
    engine = create_engine(settings.database_url)
    redis = open_redis(settings)
    try:
        try:
            await prepare_schema(engine, settings)
        except RuntimeError as exc:
            raise CliError(str(exc)) from exc
        async with aiohttp.ClientSession() as http:
            wecom = settings.wecom
            yield settings, session_factory(engine), WeComClient(
                http, api_base=wecom.api_base, corp_id=wecom.corp_id, secret=wecom.secret, redis=redis)
    finally:
        await redis.aclose()
        await engine.dispose()


def cmd_directory(args: argparse.Namespace) -> int:
    """Exit status 0 all done, 1 some members could not be read, 2 the sync did not run to the end."""
    from config.templates import render
    from scrm.resources import CliError
    from scrm.sync.directory import DirectorySync, SyncBusy, directory_for

    if not 1 <= args.page_size <= 10_000:
        raise CliError("--page-size takes 1 to 10000 (user/list_id's range)")

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "departments":
            print(render("sync.directory.departments", count=done), flush=True)
        elif stage == "listing":
            print(render("sync.directory.listing", count=done), flush=True)
        else:
            print(render("sync.directory.members", done=done, total=total), flush=True)

    async def main() -> int:
        async with wecom_sync_resources(args) as (settings, sessions, wecom):
            sync = DirectorySync(directory_for(settings, wecom), sessions, page_size=args.page_size)
            try:
                report = await sync.run(progress)
            except SyncBusy:
                raise CliError(render("sync.directory.busy")) from None
            except Exception as exc:
                raise CliError(render("sync.directory.error", error=exc)) from exc
        print(render("sync.directory.done", departments=report.departments, members=report.members,
                     departed=len(report.departed), role_changes=len(report.role_changes)))
        if report.departed:
            print(render("sync.directory.departed", userids="、".join(report.departed)))
        for change in report.role_changes:
            print(render("sync.directory.role_changed", change=change))
        if report.newer:
            print(render("sync.directory.newer", count=report.newer))
        if report.tags_error:
            print(render("sync.directory.tags_failed", error=report.tags_error))
        for userid, reason in sorted(report.failed.items()):
            print(render("sync.directory.member_failed", userid=userid, reason=reason))
        if report.failed:
            print(render("sync.directory.failed_hint", count=len(report.failed)))
            return 1
        return 0

    return asyncio.run(main())


def cmd_customers(args: argparse.Namespace) -> int:
    """The same run as on first start and nightly (scrm.sync.customers): resumable, and safe beside a
    running service (a run already under way elsewhere is left to finish). Exit status 1 when it stopped."""
    from config.templates import render
    from scrm.sync.customers import CustomerSyncRun, Progress
    from scrm.sync.directory import role_map

    announced = False

    def progress(step: Progress) -> None:
        nonlocal announced
        if not announced:
            print(render("sync.customers.started", mode=render(
                "sync.customers.mode_resumed" if step.resumed else "sync.customers.mode_fresh")), flush=True)
            announced = True
        print(render("sync.customers.progress", batch=step.batch, batches=step.batches, pages=step.pages,
                     contacts=step.contacts, created=step.created, failed=step.failed), flush=True)

    async def main() -> int:
        async with wecom_sync_resources(args) as (settings, sessions, wecom):
            report = await CustomerSyncRun(sessions, wecom, on_progress=progress, roles=role_map(settings)).run()
        if report.status == "busy":
            print(render("sync.customers.busy"))
            return 0
        for failure in report.failed[:FAILED_SHOWN]:
            print(render("sync.customers.failed_item", id=failure.get("id") or "?", error=failure.get("error", "")),
                  file=sys.stderr)
        if report.failed_count > FAILED_SHOWN:
            print(render("sync.customers.failed_more", count=report.failed_count - FAILED_SHOWN), file=sys.stderr)
        if report.status == "failed":
            print(render("sync.customers.stopped", pages=report.pages, error=report.error), file=sys.stderr)
            return 1
        print(render("sync.customers.done", contacts=report.contacts, pages=report.pages, created=report.created,
                     failed=report.failed_count, ended=report.ended))
        return 0

    return asyncio.run(main())


def cmd_groups(args: argparse.Namespace) -> int:
    """The nightly groups.sync run (scrm.sync.groups) by hand. Exit status 0 all done, 1 some groups
    could not be read or another sync holds the run, 2 the run stopped (it resumes next time)."""
    from config.templates import render
    from connectors.wecom.errors import WeComError
    from scrm.ingest.context import IngestContext
    from scrm.resources import CliError
    from scrm.sync.directory import role_map
    from scrm.sync.groups import GroupSyncReport, sync_groups

    def progress(report: GroupSyncReport) -> None:
        print(render("sync.groups.progress", groups=report.groups), flush=True)

    async def main() -> int:
        async with wecom_sync_resources(args) as (settings, sessions, wecom):
            staff = IngestContext(wecom=wecom, timezone=settings.tz, roles=role_map(settings)).staff
            try:
                report = await sync_groups(sessions, wecom, staff, progress=progress)
            except WeComError as exc:
                raise CliError(render("sync.groups.stopped", error=exc)) from exc
        if report.busy:
            print(render("sync.groups.busy"))
            return 1
        print(render("sync.groups.done", groups=report.groups, joined=report.joined, left=report.left,
                     gone=report.gone, mode=render("sync.groups.mode_resumed") if report.resumed else ""))
        for chat_id, error in report.failed[:FAILED_SHOWN]:
            print(render("sync.groups.failed_item", id=chat_id, error=error), file=sys.stderr)
        if report.failed:
            print(render("sync.groups.failed_hint", count=len(report.failed)), file=sys.stderr)
            return 1
        return 0

    return asyncio.run(main())
