"""`scrm bench scheduler`: the daily care and nudge jobs over 100k–1M synthetic customers.

Fills the database like `scrm bench lookup` (plus each customer's WeCom contact identity and
open follow-ups spread around the run date), then runs each job as `scrm jobs run NAME --at …`
in a child process of its own, so the reported peak memory is that process's maximum resident
set (`wait4` rusage) and includes nothing of the filling. Before each run the job's previous
bench output (its run record, outbox rows and care deliveries) is cleared, so every run does the
full work; the database must be one this benchmark filled.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, insert, select, text

from crm_core.db import create_engine, session_factory
from crm_core.migrate import refresh_statistics, upgrade
from crm_core.models import CareDelivery, Customer, CustomerIdentity, FollowUp, OutboxItem
from crm_core.job_runs import JobRun

FOLLOW_UPS_PER_CUSTOMER = 0.2


def cmd_bench(args: argparse.Namespace) -> int:
    return asyncio.run(run_bench(args))


async def run_bench(args: argparse.Namespace) -> int:
    from scrm.bench.lookup import fill

    tmp = Path(tempfile.mkdtemp(prefix="scrm-bench-scheduler-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'scheduler.sqlite3'}"
    at = datetime.fromisoformat(args.at)
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        print(f"preparing {args.customers} customers...", flush=True)
        await fill(engine, args.customers, args.seed)
        await _add_identities_and_follow_ups(engine, at, args.seed)
        await refresh_statistics(database_url)  # as autovacuum would have by 09:00
        results = []
        for name in filter(None, args.jobs.split(",")):
            await _clear_previous_run(engine, name, at)
            results.append((name, *_run_job_process(name, at, database_url)))
        counts = await _counts(engine)
    finally:
        await engine.dispose()
    backend = database_url.split("+")[0]
    print(f"\n{args.customers} customers, {counts['follow_ups']} open follow-ups, {backend}, jobs run for {at.isoformat()}")
    for name, seconds, peak_mb, summary in results:
        print(f"{name:<18} {seconds:7.1f} s  peak RSS {peak_mb:6.0f} MB   {summary}")
    return 0


async def _add_identities_and_follow_ups(engine, at: datetime, seed: int) -> None:
    """Every customer a rep's external contact (so greetings can take the group-send channel), and
    open follow-ups for a fifth of them, due from 30 days before to 30 days after `at`."""
    sessions = session_factory(engine)
    async with sessions() as session:
        if await session.scalar(select(func.count()).select_from(CustomerIdentity)):
            return
        await session.execute(text(
            "INSERT INTO customer_identities (customer_id, channel, external_id, created_at) "
            "SELECT id, 'wecom', 'wmbench' || id, created_at FROM customers"))
        await session.commit()
        rows = (await session.execute(select(Customer.id, Customer.owner_id))).all()
    rng = random.Random(seed + 2)
    picked = rng.sample(rows, int(len(rows) * FOLLOW_UPS_PER_CUSTOMER))
    for start in range(0, len(picked), 5000):
        batch = [{"customer_id": cid, "owner_id": owner, "created_by_id": owner, "status": "open", "text": "回访报价进展",
                  "due_at": at + timedelta(minutes=rng.randrange(-30 * 24 * 60, 30 * 24 * 60)), "created_at": at}
                 for cid, owner in picked[start:start + 5000]]
        async with sessions() as session:
            await session.execute(insert(FollowUp), batch)
            await session.commit()
    print(f"  added identities and {len(picked)} follow-ups", flush=True)


async def _clear_previous_run(engine, name: str, at: datetime) -> None:
    async with session_factory(engine)() as session:
        await session.execute(delete(JobRun).where(JobRun.job == name))
        await session.execute(delete(CareDelivery))
        await session.execute(delete(OutboxItem))
        await session.commit()


def _run_job_process(name: str, at: datetime, database_url: str) -> tuple[float, float, str]:
    """(wall seconds, peak resident MB, the job's summary line) of `scrm jobs run` in its own process."""
    env = {**os.environ, "SCRM_DATABASE_URL": database_url}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", "jobs", "run", name,
                             "--at", at.isoformat()], env=env, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    output = proc.stdout.read().strip() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"`scrm jobs run {name}` failed: {output}")
    return seconds, usage.ru_maxrss / 1024, output.splitlines()[-1] if output else ""


async def _counts(engine) -> dict[str, int]:
    async with session_factory(engine)() as session:
        follow_ups = await session.scalar(select(func.count()).select_from(FollowUp).where(FollowUp.status == "open"))
    return {"follow_ups": follow_ups or 0}
