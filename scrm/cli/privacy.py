"""`scrm audit …` and `scrm customer export|erase ID`: answering who saw a customer's data, and a
customer's request to see or delete it (个人信息保护法)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from scrm.cli.arguments import in_zone, iso_time

if TYPE_CHECKING:
    from crm_core.privacy import PrivacyService

T = TypeVar("T")


def register(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="who looked at or changed customers' personal data")
    audit.add_argument("--customer", type=int, help="a customer id")
    audit.add_argument("--actor", help="a staff userid (or cli, api)")
    audit.add_argument("--action", help="an action or its prefix, e.g. customer.view")
    audit.add_argument("--since", type=iso_time, help="ISO-8601 date or time, e.g. 2026-11-01")
    audit.add_argument("--limit", type=int, default=200)
    audit.set_defaults(func=cmd_audit)

    customer = sub.add_parser("customer", help="a customer's personal-data requests: export, erase")
    actions = customer.add_subparsers(dest="customer_command", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="everything held about a customer, as JSON")
    export.add_argument("id", type=int)
    export.add_argument("--out", help="write to this file (default: standard output)")
    export.add_argument("--actor", default="cli", help="who asked, for the audit log (default cli)")
    export.set_defaults(func=cmd_export)
    erase = actions.add_parser("erase", help="remove a customer's personal data, keeping anonymous statistics")
    erase.add_argument("id", type=int)
    erase.add_argument("--yes", action="store_true", help="confirm: erasure cannot be undone")
    erase.add_argument("--actor", default="cli", help="who asked, for the audit log (default cli)")
    erase.set_defaults(func=cmd_erase)


def cmd_audit(args: argparse.Namespace) -> int:
    from crm_core.privacy import PrivacyService
    from scrm.resources import with_session

    since = args.since
    if since is not None and since.tzinfo is None:
        from config.settings import load_settings

        since = in_zone(since, load_settings(toml_path=args.config).tz)

    async def work(session) -> list:
        return await PrivacyService(session).audit_trail(customer_id=args.customer, actor=args.actor, action=args.action,
                                                         since=since, limit=args.limit)

    entries = asyncio.run(with_session(args.config, work))
    for entry in entries:
        who = f"customer {entry.customer_id}" if entry.customer_id is not None else "-"
        print(f"{entry.created_at:%Y-%m-%d %H:%M:%S}Z  {entry.actor:<16} {entry.action:<24} {who:<16} {entry.detail}")
    if not entries:
        print("no audit entries match")
    return 0


def _on_customer(args: argparse.Namespace, action: Callable[[PrivacyService], Awaitable[T]]) -> T:
    """Run one request on customer `args.id` and commit it; an unknown id is a CliError (exit 2)."""
    from crm_core.errors import CustomerNotFoundError
    from crm_core.privacy import PrivacyService
    from scrm.resources import CliError, with_session

    async def work(session) -> T:
        result = await action(PrivacyService(session))
        await session.commit()
        return result

    try:
        return asyncio.run(with_session(args.config, work))
    except CustomerNotFoundError:
        raise CliError(f"no customer {args.id}; `scrm audit --customer {args.id}` shows what happened to it") from None


def cmd_export(args: argparse.Namespace) -> int:
    data = _on_customer(args, lambda privacy: privacy.export(args.id, actor=args.actor))
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        print(f"customer {args.id}: {len(data['messages'])} messages, {len(data['notes'])} notes written to {args.out}")
    else:
        print(text)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from crm_core.db import utcnow

    if not args.yes:
        print(f"this removes customer {args.id}'s personal data for good; run again with --yes to do it", file=sys.stderr)
        return 2
    report = _on_customer(args, lambda privacy: privacy.erase(args.id, actor=args.actor, at=utcnow()))
    asyncio.run(_compact(args.config))
    print(f"customer {args.id} erased: {report.messages} messages and {report.inbox_rows} raw callbacks cleared, "
          f"{report.notes} notes, {report.follow_ups} follow-ups, {report.tickets} tickets, {report.identities} WeCom ids, "
          f"{report.tags} tags; {report.outbox_parked} pending sends cancelled; {report.mentions} other records "
          "(staff commands, bot replies, notices, keys) that named them scrubbed. Statistics are kept.")
    if not report.names_searched:
        print("note: a colleague has the same name, so lines naming it were not searched for the customer's name "
              "(their phone numbers and ids were); `scrm customer export` of other customers shows what remains")
    return 0


async def _compact(config_path: str | None) -> None:
    """Overwritten rows leave their old bytes in free pages (SQLite) or dead row versions
    (PostgreSQL) until the space is reused: SQLite is rebuilt (VACUUM) so the file holds nothing
    erased; PostgreSQL's tables are vacuumed, which frees the dead versions for reuse."""
    from config.settings import load_settings
    from crm_core.db import Base, create_engine

    settings = load_settings(toml_path=config_path)
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if settings.database_url.startswith("sqlite"):
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                await conn.exec_driver_sql("VACUUM")
            else:
                for table in Base.metadata.sorted_tables:
                    await conn.exec_driver_sql(f'VACUUM "{table.name}"')
    finally:
        await engine.dispose()
