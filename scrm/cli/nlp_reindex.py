"""`scrm nlp reindex`: re-analyse stored customer messages after a rules or model change."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import nlp
from config.settings import Settings, load_settings
from crm_core.db import create_engine, session_factory
from crm_core.insights import InsightService
from crm_core.models import Customer, Message
from scrm.resources import prepare_schema


def register(nlp_commands: argparse._SubParsersAction) -> None:
    reindex = nlp_commands.add_parser("reindex", help="re-analyse stored customer messages after a rules or model change")
    reindex.add_argument("--since", help="only customers with messages from this time on (ISO-8601, e.g. 2026-11-01)")
    reindex.add_argument("--batch", type=int, default=500)
    reindex.set_defaults(func=cmd_reindex)


def cmd_reindex(args: argparse.Namespace) -> int:
    settings = load_settings(toml_path=args.config)
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            print(f"--since {args.since!r} is not an ISO-8601 date or time (e.g. 2026-11-01)", file=sys.stderr)
            return 2
        if since.tzinfo is None:
            since = since.replace(tzinfo=settings.tz)
    return asyncio.run(reindex(settings, since=since, batch=args.batch))


async def reindex(settings: Settings, *, since: datetime | None, batch: int = 500, out=sys.stdout) -> int:
    """Recompute every affected customer's analysis from their whole history, oldest first, so
    the aggregates come out exactly as if the new rules had always been in place."""
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        await prepare_schema(engine, settings)
        async with sessions() as session:
            affected = select(Message.customer_id).where(Message.customer_id.is_not(None), Message.direction == "in")
            if since is not None:
                affected = affected.where(Message.sent_at >= since)
            customer_ids = sorted(set((await session.scalars(affected.distinct())).all()))
        total, done = len(customer_ids), 0
        print(f"re-analysing the messages of {total} customer(s)", file=out, flush=True)
        for start in range(0, total, batch):
            chunk = customer_ids[start:start + batch]
            async with sessions() as session:
                await _reindex_customers(session, chunk)
                await session.commit()
            done += len(chunk)
            print(f"  {done}/{total} customers ({100 * done // max(total, 1)}%)", file=out, flush=True)
    finally:
        await engine.dispose()
    return 0


async def _reindex_customers(session: AsyncSession, customer_ids: list[int]) -> None:
    customers = {c.id: c for c in (await session.scalars(select(Customer).where(Customer.id.in_(customer_ids)))).all()}
    for customer in customers.values():
        InsightService.reset(customer)
    messages = (await session.scalars(
        select(Message)
        .where(Message.customer_id.in_(customer_ids), Message.direction == "in", Message.msg_type == "text")
        .order_by(Message.sent_at, Message.id)
    )).all()
    analyses = await nlp.analyze_batch([m.text for m in messages])
    insights = InsightService(session)
    for message, analysis in zip(messages, analyses):
        # Only the aggregates: re-analysing history must not open tickets or alert anyone again.
        await insights.record(customers[message.customer_id], message, analysis.to_dict())
