"""The service's own subcommands: serve, demo, db."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging

from typing import TYPE_CHECKING

from config.settings import load_settings, require_wecom

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the service (all roles unless --roles says otherwise)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--roles", default="web,worker,scheduler", help="comma-separated: web, worker, scheduler")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="everything embedded, with the WeCom simulator and sample data")
    demo.add_argument("--port", type=int, default=8080, help="port for the service (0 picks a free one)")
    demo.add_argument("--script", action="store_true", help="run the scripted tour instead of the interactive chat")
    demo.add_argument("--keep-data", action="store_true", help="keep data/demo.sqlite3 from the last run")
    demo.set_defaults(func=cmd_demo)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_sub.add_parser("upgrade", help="migrate the database in SCRM_DATABASE_URL to the latest schema")
    upgrade.add_argument("--revision", default="head")
    upgrade.set_defaults(func=cmd_db_upgrade)


def parse_roles(value: str) -> frozenset[str]:
    from scrm.app import ALL_ROLES

    roles = frozenset(r.strip() for r in value.split(",") if r.strip())
    unknown = roles - ALL_ROLES
    if not roles or unknown:
        raise SystemExit(f"--roles takes a comma-separated subset of web,worker,scheduler (got {value!r})")
    return roles


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from scrm.app import create_app

    settings = load_settings(toml_path=args.config)
    require_wecom(settings)
    app = create_app(settings, parse_roles(args.roles))
    app.on_startup.append(freeze_startup_objects)  # runs after every cleanup context has opened
    log.info("serving roles %s on %s:%s", args.roles, args.host, args.port)
    # In-flight callbacks finish in milliseconds; a long grace period only delays restarts.
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, shutdown_timeout=5)
    return 0


async def freeze_startup_objects(app: web.Application) -> None:
    """What start-up loaded (the jieba dictionary alone is hundreds of thousands of objects) lives as
    long as the process: take it out of the garbage collector's sight. Otherwise every full
    collection walks it: a 100-200 ms pause that holds back every callback ack in flight."""
    gc.collect()
    gc.freeze()


def cmd_demo(args: argparse.Namespace) -> int:
    from scrm.demo.world import run_demo

    return asyncio.run(run_demo(port=args.port, scripted=args.script, keep_data=args.keep_data))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from crm_core.migrate import refresh_statistics, upgrade

    settings = load_settings(toml_path=args.config)
    upgrade(settings.database_url, args.revision)
    asyncio.run(refresh_statistics(settings.database_url))
    print(f"database at {args.revision}: {_safe_url(settings.database_url)}")
    return 0


def _safe_url(url: str) -> str:
    """Hide the password in a database URL before printing it."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
