"""`scrm bench ingest`: callbacks over loopback into real `scrm serve` processes.

By default one process runs --roles web,worker. With --web N / --workers M the roles run as N web
and M worker processes sharing PostgreSQL and Redis (the load generator spreads requests over the
web processes round-robin, as a load balancer would); `--workers 1,2` repeats the run for each
worker count with the same web processes, so the number of workers is the only variable.

Each run has a paced phase (-n callbacks at --rate, or --rate for --duration seconds) and an
unpaced one (-n callbacks, the peak), each followed by waiting until every acked callback is
archived; then the same requests go to as many no-op aiohttp processes as there are web processes
(the ceiling). Reported: offered and acked rates, ack p50/p99, end-to-end archived msg/s, the lag
from each ack to its archiving, and whether every acked callback was archived exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from scrm.bench.load import (
    Callback,
    Cluster,
    LossCheck,
    Phase,
    Rig,
    lags,
    load_client,
    plural,
    post,
    require_shared_backends,
)
from scrm.bench.processes import percentile
from scrm.resources import CliError


@dataclass(frozen=True)
class Layout:
    web: int  # separate web processes; 0: one process with `roles` does everything
    worker_counts: tuple[int, ...]
    roles: str

    @property
    def single(self) -> bool:
        return self.web == 0

    def describe(self, workers: int) -> str:
        if self.single:
            return f"1 process ({self.roles})"
        return f"{self.web} web + {plural(workers, 'worker process')}"


def layout_of(args: argparse.Namespace) -> Layout:
    if args.web is None and args.workers is None:
        return Layout(0, (1 if "worker" in args.roles else 0,), args.roles)
    if args.roles != "web,worker":
        raise CliError("--roles sets the single service process; with --web/--workers each process has one role")
    try:
        counts = tuple(int(part) for part in (args.workers or "1").split(","))
    except ValueError:
        raise CliError(f"--workers takes a count or a comma-separated list of counts (got {args.workers!r})") from None
    web = 1 if args.web is None else args.web
    if web < 1 or min(counts) < 0:
        raise CliError("--web needs at least 1 process and --workers counts cannot be negative")
    if web + max(counts) > 1:
        require_shared_backends(args.database_url, args.redis_url, "--web/--workers")
    if args.profile and len(counts) > 1:
        raise CliError("--profile records one run: give a single --workers count")
    return Layout(web, counts, args.roles)


def cmd_ingest(args: argparse.Namespace) -> int:
    layout = layout_of(args)
    if args.duration and not args.rate:
        raise CliError("--duration sustains --rate: give a rate above 0")
    return asyncio.run(run_ingest(args, layout))


@dataclass
class PhaseResult:
    phase: Phase
    e2e: float  # archived msg/s from the phase's first post until its last message was archived (nan: none)
    rows: list[tuple[int, datetime]]  # (callback index, created_at) archived

    @property
    def lags(self) -> list[float]:
        return lags(self.phase.acked, self.rows)


@dataclass
class Step:
    """One run at one worker count."""

    workers: int
    paced: PhaseResult | None
    unpaced: PhaseResult
    check: LossCheck | None  # None: no worker ran
    replies: int


async def run_ingest(args: argparse.Namespace, layout: Layout) -> int:
    paced_n = round(args.rate * args.duration) if args.duration else (args.n if args.rate else 0)
    steps: list[Step] = []
    async with Rig(args.database_url, args.redis_url, args.staff) as rig, Cluster(rig.env) as cluster, \
            load_client(args.concurrency) as http:
        webs = [] if layout.single else await cluster.start([(f"web{i}", "web") for i in range(1, layout.web + 1)])
        for workers in layout.worker_counts:
            if layout.single:
                started = await cluster.start([("service", layout.roles)])
                urls, profiled = [started[0].url], started[0]
            else:
                started = await cluster.start([(f"worker{j}", "worker") for j in range(1, workers + 1)])
                urls, profiled = [w.url for w in webs], (started or webs)[0]
            print(f"{layout.describe(workers)}: preparing {paced_n + args.n} encrypted callbacks...", flush=True)
            first = len(steps) * (paced_n + args.n)
            paced_requests = rig.callbacks.make(first, paced_n, args.rate)
            # Signed after a paced run instead, which may outlast the service's 5-minute freshness window.
            unpaced_requests = [] if paced_n else rig.callbacks.make(first + paced_n, args.n)
            # The prepared callbacks live through the run: keep the collector's full passes over them
            # (100 ms and more) out of the latencies this process measures.
            gc.collect()
            gc.freeze()
            replies_before = len(rig.sim.sent_app_messages)
            profiler = start_profiler(args.profile, profiled.proc.pid) if args.profile else None
            try:
                paced = await run_phase(args, rig, http, urls, paced_requests, args.rate, workers) if paced_n else None
                if paced_n:
                    unpaced_requests = rig.callbacks.make(first + paced_n, args.n)
                unpaced = await run_phase(args, rig, http, urls, unpaced_requests, None, workers)
            finally:
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                    await asyncio.to_thread(profiler.wait, 30)
                await cluster.stop(started)
            acked = {**(paced.phase.acked if paced else {}), **unpaced.phase.acked}
            rows = (paced.rows if paced else []) + unpaced.rows
            steps.append(Step(workers, paced, unpaced, LossCheck.of(acked, rows) if workers else None,
                              len(rig.sim.sent_app_messages) - replies_before))
            print_step(rig, layout, args, steps[-1])
        await cluster.stop(webs)
        noop_urls = [noop.url for noop in await cluster.start_noop(max(layout.web, 1))]
        noop_paced = await post(http, noop_urls, paced_requests, args.concurrency, args.rate) if paced_n else None
        noop_unpaced = await post(http, noop_urls, unpaced_requests, args.concurrency, None)
    print_ceiling(layout, steps, noop_paced, noop_unpaced)
    return 0 if all(s.check is None or s.check.ok for s in steps) else 1


async def run_phase(args: argparse.Namespace, rig: Rig, http, urls: list[str], requests: list[Callback], rate: float | None,
                    workers: int) -> PhaseResult:
    """Post the requests, then (if anything archives) wait until every acked one is archived."""
    what = (f"at {rate:.0f}/s" + (f" for {args.duration:.0f} s" if args.duration else "")) if rate else "unpaced"
    print(f"{'paced' if rate else 'unpaced'} phase: {len(requests)} callbacks {what}, concurrency {args.concurrency}, "
          f"{plural(len(urls), 'web process')}", flush=True)
    t0 = time.perf_counter()
    phase = await post(http, urls, requests, args.concurrency, rate)
    if not workers:
        return PhaseResult(phase, math.nan, [])
    lo, hi = requests[0].index, requests[-1].index + 1
    archived, done_at = await rig.archive.wait(lo, hi, len(phase.acked), args.stall)
    rows = await rig.archive.rows(lo, hi)
    return PhaseResult(phase, archived / (done_at - t0) if archived else math.nan, rows)


def start_profiler(path: str, pid: int) -> subprocess.Popen:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([py_spy, "record", "-o", path, "--pid", str(pid), "--rate", "200", "--format", "raw"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ack(phase: Phase) -> str:
    if not phase.latencies:
        return "ack p50      – ms  p99      – ms"
    return f"ack p50 {1000 * percentile(phase.latencies, 50):6.1f} ms  p99 {1000 * percentile(phase.latencies, 99):6.1f} ms"


def _e2e(result: PhaseResult) -> str:
    if math.isnan(result.e2e) or not (phase_lags := result.lags):
        return "end-to-end     n/a"
    return (f"end-to-end {result.e2e:7.0f} msg/s  lag p50 {percentile(phase_lags, 50):6.2f} s  "
            f"p99 {percentile(phase_lags, 99):6.2f} s")


def print_step(rig: Rig, layout: Layout, args: argparse.Namespace, step: Step) -> None:
    archived = step.check.archived if step.check else 0
    print(f"\nbackend: {rig.backend}, redis: {'real' if rig.redis_url else 'in-process stand-in'}, "
          f"{layout.describe(step.workers)}, {args.staff} staff, archived {archived}")
    if step.paced:
        p = step.paced.phase
        print(f"paced   {args.rate:5.0f}/s target {p.offered_rate:5.0f}/s sent {p.ack_rate:5.0f}/s acked  {_ack(p)}  {_e2e(step.paced)}")
        if p.behind > 0.1:
            print(f"        (sends fell up to {p.behind:.2f} s behind their slots: all {args.concurrency} "
                  "requests in flight were waiting for answers)")
    u = step.unpaced.phase
    print(f"unpaced                          {u.ack_rate:5.0f}/s acked  {_ack(u)}  {_e2e(step.unpaced)}")
    errors = sum((result.phase.errors for result in (step.paced, step.unpaced) if result), Counter())
    if errors:
        print("errors  " + ", ".join(f"{error} × {count}" for error, count in sorted(errors.items())))
    if step.check:
        c = step.check
        print(f"loss check {'OK' if c.ok else 'FAILED'}: {c.acked} acked, {c.archived} archived, {c.missing} missing, "
              f"{c.duplicates} duplicates, {c.unacked} archived without an ack; {step.replies} bot replies delivered")


def print_ceiling(layout: Layout, steps: list[Step], noop_paced: Phase | None, noop_unpaced: Phase) -> None:
    processes = f"({plural(max(layout.web, 1), 'process')})"
    print()
    if noop_paced:
        print(f"no-op paced {processes}   {noop_paced.ack_rate:7.0f} requests/s  {_ack(noop_paced)}")
    print(f"no-op unpaced {processes} {noop_unpaced.ack_rate:7.0f} requests/s  {_ack(noop_unpaced)}")
    ratios = [f"{s.unpaced.phase.ack_rate / noop_unpaced.ack_rate:.2f}"
              + (f" ({plural(s.workers, 'worker')})" if len(steps) > 1 else "") for s in steps]
    print(f"ratio   service/no-op ack throughput = {', '.join(ratios)}")
    if len(steps) > 1:
        first = steps[0].unpaced.e2e
        print("scaling unpaced end-to-end: " + ", ".join(
            f"{plural(s.workers, 'worker')} {s.unpaced.e2e:.0f} msg/s (x{s.unpaced.e2e / first:.2f})" for s in steps)
              + f", {plural(layout.web, 'web process')}")
