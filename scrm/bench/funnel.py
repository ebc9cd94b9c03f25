"""`scrm bench funnel`: `scrm report funnel` and `scrm report forecast` over the whole company, on
PostgreSQL with 1M synthetic customers and 200k deals.

Customers come from `scrm bench lookup`'s filling, then one UPDATE spreads their creation over the
12 months before --at and attributes them (half to eight 渠道活码, a fifth to a free-text source).
Deals go to every n-th customer, opened uniformly over those 12 months, and walk the pipeline: an
exponential stay in each stage, then on, skipping a stage now and then, lost, or won from the last
stage; a deal whose next move would fall after --at is still open there. Each step is a
deal_stage_changes row; amounts are log-normal around 10万. Rows go in as multi-row INSERTs of 5,000.
Each report then runs as its own `scrm report …` process, timed from start to exit (interpreter
start-up and imports included) with its peak resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, text

from crm_core.db import create_engine, session_factory
from crm_core.deals import default_stages
from crm_core.migrate import refresh_statistics, upgrade
from crm_core.models import ContactChannel, Customer, Deal, DealStageChange, ForecastSnapshot

BATCH = 5000
CHANNELS = 8
SOURCES = ("官网", "转介绍", "展会", "地推")
MEAN_DAYS = (6.0, 9.0, 12.0, 14.0, 8.0)  # mean stay per open stage
ADVANCE = (0.70, 0.65, 0.60, 0.70)  # chance to move on from each stage but the last
WIN_FROM_LAST = 0.8
SKIP = 0.1  # chance a move skips the next stage
RUNS = 2


def cmd_bench(args: argparse.Namespace) -> int:
    if not args.database_url.startswith("postgresql"):
        print("scrm bench funnel fills with PostgreSQL SQL: give a postgresql+asyncpg:// --database-url", file=sys.stderr)
        return 2
    return asyncio.run(run_bench(args))


async def run_bench(args: argparse.Namespace) -> int:
    from scrm.bench.lookup import fill

    at = datetime.fromisoformat(args.at)
    await asyncio.to_thread(upgrade, args.database_url)
    engine = create_engine(args.database_url)
    try:
        print(f"preparing {args.customers} customers...", flush=True)
        await fill(engine, args.customers, args.seed)
        await _attribute_customers(engine, at)
        await _add_deals(engine, args.deals, at, args.seed)
        await refresh_statistics(args.database_url)  # as autovacuum would have before anyone asked for a report
        async with session_factory(engine)() as session:
            deals = await session.scalar(select(func.count()).select_from(Deal))
            changes = await session.scalar(select(func.count()).select_from(DealStageChange))
            await session.execute(delete(ForecastSnapshot))
            await session.commit()
    finally:
        await engine.dispose()
    local_day = at.date()
    commands = [
        ("funnel, 30 days", ["report", "funnel"]),
        ("funnel, 12 months", ["report", "funnel", "--since", (local_day - timedelta(days=365)).isoformat()]),
        ("forecast", ["report", "forecast"]),
    ]
    # The floor: interpreter start-up and imports, what every `scrm` command pays before any query.
    results = [("start-up (report --help)", *_run_process(["report", "funnel", "--help"], args.database_url)[:2], "")]
    for label, argv in commands:
        for run in range(1, RUNS + 1):
            results.append((f"{label} (run {run})", *_run_process([*argv, "--at", at.isoformat()], args.database_url)))
    print(f"\n{args.customers} customers, {deals} deals, {changes} stage changes, postgresql, reports as of {at.isoformat()}")
    for label, seconds, peak_mb, head in results:
        print(f"{label:<26} {seconds:6.2f} s  peak RSS {peak_mb:5.0f} MB   {head}")
    return 0


async def _attribute_customers(engine, at: datetime) -> None:
    """Creation spread over the 12 months before `at`; half from a 渠道活码, a fifth with a source."""
    sessions = session_factory(engine)
    async with sessions() as session:
        if await session.scalar(select(func.count()).select_from(ContactChannel)):
            return
        session.add_all(ContactChannel(name=f"活码{i + 1}", state=f"bench{i + 1}") for i in range(CHANNELS))
        await session.flush()
        first = await session.scalar(select(func.min(ContactChannel.id)))
        await session.execute(text(
            "UPDATE customers SET created_at = CAST(:at AS timestamptz) - ((id * 7919) % 525600) * interval '1 minute', "
            "source_channel_id = CASE WHEN (id * 2654435761) % 1000003 % 10 < 5 "
            "THEN CAST(:first AS bigint) + (id * 2654435761) % 1000003 / 10 % CAST(:channels AS bigint) END, "
            "source = CASE WHEN (id * 2654435761) % 1000003 % 10 IN (5, 6) "
            "THEN (CAST(:sources AS text[]))[1 + (id * 2654435761) % 1000003 / 10 % 4] ELSE '' END"),
            {"at": at, "first": first, "channels": CHANNELS, "sources": list(SOURCES)})
        await session.commit()
    print("  spread customers over 12 months and attributed them to channels", flush=True)


async def _add_deals(engine, count: int, at: datetime, seed: int) -> None:
    sessions = session_factory(engine)
    async with sessions() as session:
        if await session.scalar(select(func.count()).select_from(Deal)):
            return
        total = await session.scalar(select(func.count()).select_from(Customer))
        stride = max(1, total // count)
        owners = (await session.execute(select(Customer.id, Customer.owner_id).where(Customer.id % stride == 0)
                                        .order_by(Customer.id).limit(count))).all()
    rng, stages, started = random.Random(seed + 3), default_stages(), time.perf_counter()
    for start in range(0, len(owners), BATCH):
        deals, walks = [], []
        for customer_id, owner_id in owners[start:start + BATCH]:
            walk = _walk(rng, at, stages.stages, stages.won, stages.lost)
            last_stage, last_at = walk[-1]
            status = {stages.won: "won", stages.lost: "lost"}.get(last_stage, "open")
            amount = round(rng.lognormvariate(math.log(100_000), 0.8), -3)
            reached_quote = any(stage == "报价谈判" for stage, _ in walk)
            deals.append({"customer_id": customer_id, "owner_id": owner_id, "stage": last_stage, "status": status,
                          "fields": {"budget": amount} if reached_quote or rng.random() < 0.5 else {},
                          "lost_reason": "价格太高" if status == "lost" else "", "created_at": walk[0][1],
                          "stage_changed_at": last_at, "closed_at": last_at if status != "open" else None})
            walks.append((customer_id, owner_id, walk))
        async with sessions() as session:
            ids = (await session.scalars(insert(Deal).returning(Deal.id, sort_by_parameter_order=True), deals)).all()
            changes = [{"deal_id": deal_id, "customer_id": customer_id, "owner_id": owner_id,
                        "from_stage": walk[i - 1][0] if i else "", "to_stage": stage, "changed_at": when}
                       for deal_id, (customer_id, owner_id, walk) in zip(ids, walks) for i, (stage, when) in enumerate(walk)]
            await session.execute(insert(DealStageChange), changes)
            await session.commit()
        done = start + len(deals)
        if done % 50_000 == 0 or done == len(owners):
            print(f"  {done} deals ({time.perf_counter() - started:.0f} s)", flush=True)


def _walk(rng: random.Random, at: datetime, stages: tuple[str, ...], won: str, lost: str) -> list[tuple[str, datetime]]:
    """(stage, entered) from opening to closing, or to the stage the deal is still in at `at`."""
    when = at - timedelta(minutes=rng.randrange(365 * 24 * 60))
    walk, i = [(stages[0], when)], 0
    while True:
        when = when + timedelta(days=0.2 + rng.expovariate(1 / MEAN_DAYS[i]))
        if when >= at:
            return walk
        if i == len(stages) - 1:
            walk.append((won if rng.random() < WIN_FROM_LAST else lost, when))
            return walk
        if rng.random() >= ADVANCE[i]:
            walk.append((lost, when))
            return walk
        i = min(i + (2 if rng.random() < SKIP else 1), len(stages) - 1)
        walk.append((stages[i], when))


def _run_process(argv: list[str], database_url: str) -> tuple[float, float, str]:
    """(wall seconds, peak resident MB, the report's summary line) of `scrm …` in its own process."""
    env = {**os.environ, "SCRM_DATABASE_URL": database_url}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", *argv], env=env,
                            stdout=subprocess.PIPE, text=True)
    output = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"`scrm {' '.join(argv)}` failed: {output}")
    lines = output.splitlines()
    return seconds, usage.ru_maxrss / 1024, lines[1] if len(lines) > 1 else ""
