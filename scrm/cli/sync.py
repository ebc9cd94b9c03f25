"""`scrm sync customers`: bring the company's existing WeCom customers in now, with progress.

The same run as on first start and nightly (scrm.sync.customers): resumable, and safe beside a
running service (a run already under way elsewhere is left to finish).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from config.settings import load_settings, require_wecom

FAILED_SHOWN = 20  # failed contacts listed by id; the rest are counted


def register(sub: argparse._SubParsersAction) -> None:
    sync = sub.add_parser("sync", help="bring a company's WeCom data into the CRM")
    kinds = sync.add_subparsers(dest="sync_command", metavar="WHAT", required=True)
    customers = kinds.add_parser("customers", help="every rep's existing external contacts become customers (resumable)")
    customers.set_defaults(func=cmd_customers)


def cmd_customers(args: argparse.Namespace) -> int:
    import aiohttp

    from config.templates import render
    from connectors.wecom.client import WeComClient
    from crm_core.db import create_engine, session_factory
    from scrm.resources import CliError, open_redis, prepare_schema
    from scrm.app import role_map
    from scrm.sync.customers import CustomerSyncRun, Progress

    settings = load_settings(toml_path=args.config)
    require_wecom(settings)
    announced = False

    def progress(step: Progress) -> None:
        nonlocal announced
        if not announced:
            print(render("sync.customers.started", mode=render(
                "sync.customers.mode_resumed" if step.resumed else "sync.customers.mode_fresh")), flush=True)
            announced = True
        print(render("sync.customers.progress", batch=step.batch, batches=step.batches, pages=step.pages,
                     contacts=step.contacts, created=step.created, failed=step.failed), flush=True)

    async def run() -> int:
        engine = create_engine(settings.database_url)
        redis = open_redis(settings)
        try:
            try:
                await prepare_schema(engine, settings)
            except RuntimeError as exc:
                raise CliError(str(exc)) from exc
            async with aiohttp.ClientSession() as http:
                wecom = WeComClient(http, api_base=settings.wecom.api_base, corp_id=settings.wecom.corp_id,
                                    secret=settings.wecom.secret, redis=redis)
                report = await CustomerSyncRun(session_factory(engine), wecom, on_progress=progress,
                                               roles=role_map(settings)).run()
        finally:
            await redis.aclose()
            await engine.dispose()
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

    return asyncio.run(run())
