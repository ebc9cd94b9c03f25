"""`scrm nlp reindex`: re-analyse stored customer messages after a rules or model change.

Customers are done in batches by id; each batch's new analyses, aggregates, lifecycle stages and
热度 commit together with the checkpoint (a `job_runs` row named `nlp.reindex` whose summary
holds the last customer id done), so a run that crashed or was stopped resumes after the last
committed batch when started again with the same model, rules and --since.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime

from typing import TYPE_CHECKING

from config.settings import Settings, load_settings
from scrm.cli.arguments import in_zone, iso_time

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

JOB = "nlp.reindex"


def register(nlp_commands: argparse._SubParsersAction) -> None:
    reindex = nlp_commands.add_parser("reindex", help="re-analyse stored customer messages after a rules or model change")
    reindex.add_argument("--since", type=iso_time, help="only customers with messages from this time on (ISO-8601, e.g. 2026-11-01)")
    reindex.add_argument("--batch", type=int, default=500)
    reindex.add_argument("--restart", action="store_true",
                         help="start from the first customer even if an earlier run stopped half-way")
    reindex.set_defaults(func=cmd_reindex)


def cmd_reindex(args: argparse.Namespace) -> int:
    settings = load_settings(toml_path=args.config)
    since = in_zone(args.since, settings.tz)
    if args.batch < 1:
        print("--batch must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(reindex(settings, since=since, batch=args.batch, restart=args.restart))


async def reindex(settings: Settings, *, since: datetime | None, batch: int = 500, restart: bool = False,
                  out=None) -> int:
    """Recompute every affected customer's analysis from their whole history, oldest first, so
    the aggregates come out exactly as if the new rules had always been in place; the lifecycle
    stage and 热度 follow the new analysis."""
    from sqlalchemy import select

    from crm_core.db import create_engine, session_factory, utcnow
    from crm_core.job_runs import JobRun
    from crm_core.models import Message
    from nlp import resources
    from scrm.resources import prepare_schema

    out = out or sys.stdout
    plan = {"model": resources.fingerprint(), "since": since.isoformat() if since else None}
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        await prepare_schema(engine, settings)
        async with sessions() as session:
            run, after = await _checkpoint(session, plan, restart, out)
            await session.commit()
            affected = select(Message.customer_id).where(Message.customer_id.is_not(None), Message.direction == "in")
            if since is not None:
                affected = affected.where(Message.sent_at >= since)
            customer_ids = sorted(set((await session.scalars(affected.distinct())).all()))
        total = len(customer_ids)
        todo = [c for c in customer_ids if c > after]
        done = total - len(todo)
        print(f"re-analysing the messages of {total} customer(s)"
              + (f", resuming after {done} done by an earlier run" if done else ""), file=out, flush=True)
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            async with sessions() as session:
                await _reindex_customers(session, chunk, utcnow())
                checkpoint = await session.get(JobRun, run)
                checkpoint.summary = json.dumps({**plan, "after": chunk[-1], "done": done + len(chunk), "total": total})
                await session.commit()
            done += len(chunk)
            print(f"  {done}/{total} customers ({100 * done // max(total, 1)}%)", file=out, flush=True)
        async with sessions() as session:
            checkpoint = await session.get(JobRun, run)
            checkpoint.status, checkpoint.finished_at = "done", utcnow()
            checkpoint.summary = json.dumps({**plan, "done": done, "total": total})
            await session.commit()
        print(f"done: {total} customer(s) re-analysed", file=out, flush=True)
    finally:
        await engine.dispose()
    return 0


async def _checkpoint(session: AsyncSession, plan: dict, restart: bool, out) -> tuple[int, int]:
    """The run to record progress in and the last customer id it finished: an unfinished earlier
    run with the same model, rules and --since is resumed; any other unfinished one is abandoned."""
    from sqlalchemy import select

    from crm_core.db import utcnow
    from crm_core.job_runs import JobRun

    unfinished = (await session.scalars(
        select(JobRun).where(JobRun.job == JOB, JobRun.status == "running").order_by(JobRun.started_at, JobRun.id)
    )).all()
    for run in unfinished:
        state = json.loads(run.summary or "{}")
        if not restart and all(state.get(k) == v for k, v in plan.items()) and run is unfinished[-1]:
            return run.id, int(state.get("after", 0))
        run.status, run.finished_at = "abandoned", utcnow()
        why = "--restart" if restart else "the model, rules or --since changed since"
        print(f"an earlier re-index stopped at {state.get('done', 0)}/{state.get('total', '?')} customers; "
              f"starting over ({why})", file=out, flush=True)
    now = utcnow()
    run = JobRun(job=JOB, scheduled_for=now, status="running", summary=json.dumps({**plan, "after": 0}), started_at=now)
    session.add(run)
    await session.flush()
    return run.id, 0


async def _reindex_customers(session: AsyncSession, customer_ids: list[int], now: datetime) -> None:
    from sqlalchemy import select

    import nlp
    from crm_core.insights import InsightService
    from crm_core.lead_score import LeadScoreService
    from crm_core.lifecycle import LifecycleService
    from crm_core.models import Customer, Message

    customers = {c.id: c for c in (await session.scalars(
        select(Customer).where(Customer.id.in_(customer_ids)).order_by(Customer.id))).all()}
    for customer in customers.values():
        InsightService.reset(customer)
    messages = (await session.scalars(
        select(Message)
        .where(Message.customer_id.in_(customer_ids), Message.direction == "in", Message.msg_type == "text")
        .order_by(Message.sent_at, Message.id)
    )).all()
    analyses = await nlp.analyze_batch([m.text for m in messages])
    insights = InsightService(session)
    by_customer: dict[int, list[dict]] = {c: [] for c in customers}
    for message, analysis in zip(messages, analyses):
        # Aggregates, stage and 热度 only: re-analysing history must not open tickets or alert anyone again.
        result = analysis.to_dict()
        await insights.record(customers[message.customer_id], message, result)
        by_customer[message.customer_id].append(result)
    lifecycle, lead_score = LifecycleService(session), LeadScoreService(session)
    for customer_id, results in by_customer.items():
        customer = customers[customer_id]
        await lifecycle.history_reanalysed(customer, results, at=now)
        await lead_score.rescore(customer, at=now)
