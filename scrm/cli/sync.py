"""`scrm sync groups`: bring the CRM's customer groups (客户群) up to date with WeCom now, as the
nightly job does. A run that stopped halfway (killed, WeCom down) continues where it stopped."""

from __future__ import annotations

import argparse
import asyncio
import sys

from config.settings import load_settings, require_wecom


def register(sub: argparse._SubParsersAction) -> None:
    sync = sub.add_parser("sync", help="sync what WeCom holds into the CRM")
    what = sync.add_subparsers(dest="sync_command", metavar="WHAT", required=True)
    groups = what.add_parser("groups", help="every customer group (客户群) with its owner and members")
    groups.set_defaults(func=cmd_groups)


def cmd_groups(args: argparse.Namespace) -> int:
    import aiohttp

    from connectors.wecom.client import WeComClient
    from connectors.wecom.errors import WeComError
    from crm_core.db import create_engine, session_factory
    from scrm.ingest.context import IngestContext
    from scrm.resources import open_redis, prepare_schema
    from scrm.sync.groups import GroupSyncReport, sync_groups

    settings = load_settings(toml_path=args.config)
    require_wecom(settings)
    interactive = sys.stderr.isatty()

    def progress(report: GroupSyncReport) -> None:
        line = f"  {report.groups} group(s) synced"
        print(f"\r{line}" if interactive else line, end="" if interactive else "\n", file=sys.stderr, flush=True)

    async def run() -> int:
        engine = create_engine(settings.database_url)
        redis = open_redis(settings)
        try:
            await prepare_schema(engine, settings)
            async with aiohttp.ClientSession() as http:
                wecom = WeComClient(http, api_base=settings.wecom.api_base, corp_id=settings.wecom.corp_id,
                                    secret=settings.wecom.secret, redis=redis)
                staff = IngestContext(wecom=wecom, timezone=settings.tz).staff
                try:
                    report = await sync_groups(session_factory(engine), wecom, staff, progress=progress)
                except WeComError as exc:
                    print(f"\nWeCom refused the group list ({exc}); what was synced is kept. Fix the cause "
                          f"and run `scrm sync groups` again: it continues where it stopped.", file=sys.stderr)
                    return 1
        finally:
            await redis.aclose()
            await engine.dispose()
        if interactive:
            print(file=sys.stderr)
        print(report.summary())
        for chat_id, error in report.failed:
            print(f"  {chat_id}: {error}", file=sys.stderr)
        return 1 if report.busy or report.failed else 0

    return asyncio.run(run())
