"""`scrm bench sync`: how fast a company's existing WeCom customers come in, and at what memory.

For each size, a fresh database (a SQLite file, or a new PostgreSQL database made through
--postgres-admin-url) and a WeCom simulator in a process of its own serving a generated company
(`scrm simulator --contacts N --reps R`: every tenth contact shared by two reps). Then one
CustomerSyncRun, the code `scrm sync customers` and the first start run, timed from the first call
to the last commit. Reported: follow entries and customers per second, this process's RSS before
and at its peak, the simulator's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import fakeredis
from sqlalchemy import func, select

from connectors.wecom.client import WeComClient
from connectors.wecom.simulator.sample_data import DEMO_CORP_ID, DEMO_SECRET
from crm_core.db import create_engine, session_factory
from crm_core.migrate import upgrade_async
from crm_core.models import Customer, CustomerFollower
from scrm.bench.processes import free_port, rss_bytes
from scrm.sync.customers import CustomerSyncRun, Progress

MB = 1024 * 1024


def cmd_bench(args: argparse.Namespace) -> int:
    sizes = [int(n) for n in str(args.contacts).split(",") if n.strip()]
    print(f"customer sync: {args.reps} reps, sizes {', '.join(f'{n:,}' for n in sizes)}, "
          f"{'PostgreSQL' if args.postgres_admin_url else 'SQLite'}", flush=True)
    for size in sizes:
        asyncio.run(_one(size, args))
    return 0


async def _one(size: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="scrm-bench-sync-") as folder:
        url = await _fresh_database(size, args, Path(folder))
        engine = create_engine(url)
        redis = fakeredis.FakeAsyncRedis()
        simulator: subprocess.Popen | None = None
        try:
            async with aiohttp.ClientSession() as http:
                simulator, api_base = await _start_simulator(http, size, args.reps)
                wecom = WeComClient(http, api_base=api_base, corp_id=DEMO_CORP_ID, secret=DEMO_SECRET, redis=redis)
                rss_before = rss_bytes_self()
                last = [0.0]

                def progress(step: Progress) -> None:
                    now = time.perf_counter()
                    if now - last[0] >= args.progress_every:
                        last[0] = now
                        print(f"  … {step.contacts:,} entries, {step.created:,} customers", flush=True)

                started = time.perf_counter()
                report = await CustomerSyncRun(session_factory(engine), wecom, on_progress=progress).run()
                seconds = time.perf_counter() - started
                async with session_factory(engine)() as session:
                    customers = await session.scalar(select(func.count()).select_from(Customer))
                    followers = await session.scalar(select(func.count()).select_from(CustomerFollower))
            sim_rss = rss_bytes(simulator.pid)
        finally:
            if simulator is not None:
                simulator.terminate()
                simulator.wait(timeout=10)
            await redis.aclose()
            await engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert report.status == "done", report.summary()
    print(f"{size:>9,} contacts: {followers:,} follow entries, {customers:,} customers in {seconds:6.1f} s "
          f"= {followers / seconds:7.0f} entries/s, {customers / seconds:7.0f} customers/s, {report.pages} pages; "
          f"sync process RSS {rss_before / MB:.0f} MB before, peak {peak / MB:.0f} MB; simulator {sim_rss / MB:.0f} MB",
          flush=True)


def rss_bytes_self() -> int:
    import os

    return rss_bytes(os.getpid())


async def _fresh_database(size: int, args: argparse.Namespace, folder: Path) -> str:
    if not args.postgres_admin_url:
        url = f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
    else:
        import asyncpg

        name = f"scrm_bench_sync_{size}"
        admin = await asyncpg.connect(args.postgres_admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        host = args.postgres_admin_url.split("://", 1)[1].rsplit("/", 1)[0]
        url = f"postgresql+asyncpg://{host}/{name}"
    await upgrade_async(url)
    return url


async def _start_simulator(http: aiohttp.ClientSession, size: int, reps: int) -> tuple[subprocess.Popen, str]:
    """`scrm simulator` with the generated company on a free port; another port if that one was
    taken meanwhile (the machine is shared). Ready once it hands our corp a token."""
    for _ in range(3):
        port = free_port()
        simulator = subprocess.Popen([sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", "simulator",
                                      "--port", str(port), "--contacts", str(size), "--reps", str(reps)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api_base = f"http://127.0.0.1:{port}/cgi-bin/"
        for _ in range(600):  # building the company's index takes a few seconds for 100,000
            if simulator.poll() is not None:
                break
            try:
                async with http.get(api_base + "gettoken",
                                    params={"corpid": DEMO_CORP_ID, "corpsecret": DEMO_SECRET}) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status == 200 and body.get("errcode") == 0 and simulator.poll() is None:
                        return simulator, api_base
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.1)
        simulator.terminate()
        simulator.wait(timeout=10)
    raise RuntimeError("could not start the simulator (three tries)")
