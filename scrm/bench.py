"""`scrm bench ingest`: callbacks over loopback into a real `scrm serve` process.

Reports ack latency (p50/p99) at a paced rate, the unpaced ack throughput next to a no-op
aiohttp handler's on the same machine (the ceiling), and end-to-end archived messages/s.
Bodies are encrypted before the clock starts: that is WeCom's work, not ours.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import build_plaintext_text
from connectors.wecom.simulator.sample_data import sample_state
from connectors.wecom.simulator.server import SimulatorAccessLogger, create_simulator_app
from crm_core.db import create_engine, session_factory
from crm_core.migrate import upgrade
from crm_core.models import Message
from scrm.processes import free_port, percentile, wait_healthy

NOOP_SERVER = """
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text="")
app = web.Application()
app.router.add_post("/wecom/callback", ok)
app.router.add_get("/healthz", ok)
web.run_app(app, host="127.0.0.1", port={port}, print=None, access_log=None)
"""


def register(sub: argparse._SubParsersAction) -> None:
    ingest = sub.add_parser("ingest", help="callback ack latency and end-to-end archive throughput")
    ingest.add_argument("-n", type=int, default=5000, help="callbacks per phase (default 5000)")
    ingest.add_argument("-c", "--concurrency", type=int, default=50, help="requests in flight (default 50)")
    ingest.add_argument("--rate", type=float, default=500.0, help="paced phase: callbacks per second (default 500)")
    ingest.add_argument("--database-url", default="", help="default: a fresh SQLite file in a temp folder")
    ingest.add_argument("--redis-url", default="", help="default: the in-process stand-in")
    ingest.add_argument("--roles", default="web,worker",
                        help="roles of the service process (default web,worker); with `web` alone nothing is archived")
    ingest.add_argument("--profile", default="", help="write py-spy samples of the service (collapsed stacks) to this file")
    ingest.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    return asyncio.run(run_ingest(args))


async def _post_all(url: str, requests: list[tuple[dict, bytes]], concurrency: int, rate: float | None) -> tuple[list[float], float]:
    """POST every request; returns per-request latencies (s) and the wall time."""
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def one(index: int, params: dict, body: bytes) -> None:
            if rate:
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            async with semaphore:
                t0 = time.perf_counter()
                async with http.post(url, params=params, data=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"callback answered HTTP {resp.status}")
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(one(i, p, b) for i, (p, b) in enumerate(requests)))
        return latencies, time.perf_counter() - start


async def run_ingest(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="scrm-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
    await asyncio.to_thread(upgrade, database_url)
    sim = sample_state()
    sim_runner = web.AppRunner(create_simulator_app(sim), access_log_class=SimulatorAccessLogger)
    await sim_runner.setup()
    await web.TCPSite(sim_runner, "127.0.0.1", 0).start()
    api_base = f"http://127.0.0.1:{sim_runner.addresses[0][1]}/cgi-bin/"
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    staff = list(sim.staff)
    base_id = int(time.time()) * 100_000

    def make_requests(offset: int) -> list[tuple[dict, bytes]]:
        out = []
        for i in range(args.n):
            plaintext = build_plaintext_text(sim.corp_id, str(sim.agent_id), staff[i % len(staff)], f"压测消息 {i} 你好",
                                             msg_id=base_id + offset + i)
            body, signature = crypto.encrypt_callback(plaintext, timestamp="1700000000", nonce=str(i), agent_id=str(sim.agent_id))
            out.append(({"msg_signature": signature, "timestamp": "1700000000", "nonce": str(i)}, body.encode()))
        return out

    print(f"preparing {2 * args.n} encrypted callbacks...", flush=True)
    paced, unpaced = make_requests(0), make_requests(args.n)
    port = free_port()
    env = {**os.environ, "SCRM_DATABASE_URL": database_url, "SCRM_REDIS_URL": args.redis_url,
           "SCRM_WECOM_CORP_ID": sim.corp_id, "SCRM_WECOM_SECRET": sim.secret, "SCRM_WECOM_AGENT_ID": str(sim.agent_id),
           "SCRM_WECOM_TOKEN": sim.callback_token, "SCRM_WECOM_AES_KEY": sim.encoding_aes_key, "SCRM_WECOM_API_BASE": api_base}
    procs: list[subprocess.Popen] = []
    profiler = None
    engine = create_engine(database_url)
    try:
        server = subprocess.Popen([sys.executable, "-m", "scrm.cli", "--log-level", "WARNING", "serve", "--host",
                                   "127.0.0.1", "--port", str(port), "--roles", args.roles], env=env)
        procs.append(server)
        if args.profile:
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            profiler = subprocess.Popen([py_spy, "record", "-o", args.profile, "--pid", str(server.pid), "--rate", "200",
                                         "--format", "raw"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        noop_port = free_port()
        noop = subprocess.Popen([sys.executable, "-c", NOOP_SERVER.format(port=noop_port)])
        procs.append(noop)
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url, server)
        await wait_healthy(f"http://127.0.0.1:{noop_port}", noop)

        print(f"paced phase: {args.n} callbacks at {args.rate:.0f}/s, concurrency {args.concurrency}", flush=True)
        t0 = time.perf_counter()
        paced_lat, paced_wall = await _post_all(f"{url}/wecom/callback", paced, args.concurrency, args.rate)
        archived = await _wait_archived(engine, args.n) if "worker" in args.roles else 0
        e2e_paced = time.perf_counter() - t0

        print(f"unpaced phase: {args.n} callbacks, concurrency {args.concurrency}", flush=True)
        t0 = time.perf_counter()
        fast_lat, fast_wall = await _post_all(f"{url}/wecom/callback", unpaced, args.concurrency, None)
        archived = await _wait_archived(engine, 2 * args.n) if "worker" in args.roles else 0
        e2e_unpaced = time.perf_counter() - t0
        noop_url = f"http://127.0.0.1:{noop_port}/wecom/callback"
        noop_paced_lat, noop_paced_wall = await _post_all(noop_url, paced, args.concurrency, args.rate)
        noop_lat, noop_wall = await _post_all(noop_url, unpaced, args.concurrency, None)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            await asyncio.to_thread(profiler.wait, 30)
        for proc in procs:
            proc.terminate()
        for proc in procs:  # the simulator lives in this loop: keep it serving while they stop
            await asyncio.to_thread(proc.wait, 30)
        await engine.dispose()
        await sim_runner.cleanup()

    backend = database_url.split("+")[0]
    print(f"\nbackend: {backend}, redis: {'real' if args.redis_url else 'in-process stand-in'}, archived {archived}")

    def e2e(seconds: float) -> str:
        return f"{args.n / seconds:7.0f} msg/s" if "worker" in args.roles else "    n/a"

    print(f"paced   {args.n / paced_wall:7.0f} callbacks/s offered  ack p50 {1000 * percentile(paced_lat, 50):6.1f} ms"
          f"  p99 {1000 * percentile(paced_lat, 99):6.1f} ms  end-to-end {e2e(e2e_paced)}")
    print(f"unpaced {args.n / fast_wall:7.0f} callbacks/s acked    ack p50 {1000 * percentile(fast_lat, 50):6.1f} ms"
          f"  p99 {1000 * percentile(fast_lat, 99):6.1f} ms  end-to-end {e2e(e2e_unpaced)}")
    print(f"no-op paced   {args.n / noop_paced_wall:7.0f} requests/s  ack p50 {1000 * percentile(noop_paced_lat, 50):6.1f} ms"
          f"  p99 {1000 * percentile(noop_paced_lat, 99):6.1f} ms")
    print(f"no-op unpaced {args.n / noop_wall:7.0f} requests/s  ack p50 {1000 * percentile(noop_lat, 50):6.1f} ms"
          f"  p99 {1000 * percentile(noop_lat, 99):6.1f} ms")
    print(f"ratio   service/no-op ack throughput = {noop_wall and fast_wall and (args.n / fast_wall) / (args.n / noop_wall):.2f}")
    return 0


async def _wait_archived(engine, expected: int, timeout: float = 600.0) -> int:
    sessions = session_factory(engine)
    deadline = time.monotonic() + timeout
    while True:
        async with sessions() as session:
            count = await session.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) or 0
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.05)
