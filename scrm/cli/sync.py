"""`scrm sync WHAT`: pull a part of the company's WeCom into the CRM now, with progress.

Each WHAT is a subcommand registered in `register`; they share `wecom_sync_resources` (the
configured database, the shared token cache and a WeCom client), so a new one is a function and
one `add_parser` line. The work itself lives in scrm.sync.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

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
        raise CliError(render("sync.directory.needs_wecom"))
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
