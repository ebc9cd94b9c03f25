"""`scrm bench memory`: resident memory of each service process while a million messages go through.

Web and worker roles run as separate `scrm serve` processes sharing PostgreSQL and Redis. The load
generator posts callbacks unpaced, a chunk at a time, encrypting each chunk just before it goes,
and holds back while more than --backlog acked callbacks wait to be archived: the service runs at
its workers' pace with a short inbox, and the generator's own memory stays flat (its RSS is
sampled too). Every --sample-every archived messages each process's VmRSS is read from /proc;
growth is reported from the first sample at or after --warmup to the last. Rows are printed as
they are taken, so an interrupted long run still leaves its table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter

from scrm.bench.load import (
    Archive,
    Cluster,
    LossCheck,
    Rig,
    load_client,
    plural,
    post,
    require_shared_backends,
)
from scrm.bench.processes import rss_bytes
from scrm.resources import CliError

MB = 1024 * 1024


def cmd_memory(args: argparse.Namespace) -> int:
    require_shared_backends(args.database_url, args.redis_url, "scrm bench memory")
    if args.web < 1 or args.workers < 1:
        raise CliError("scrm bench memory needs at least one web and one worker process")
    if not 0 < args.warmup <= args.messages or args.sample_every < 1:
        raise CliError("--warmup must be between 1 and --messages, and --sample-every at least 1")
    return asyncio.run(run_memory(args))


class Progress:
    """How many of callbacks 0..posted-1 are archived, without counting the whole run each time: a
    prefix known complete moves on a chunk at a time, and only what follows it is counted."""

    def __init__(self, archive: Archive, step: int):
        self.archive, self.step, self.complete = archive, step, 0

    async def archived(self, posted: int) -> int:
        while self.complete + self.step <= posted and await self.archive.count(self.complete, self.complete + self.step) == self.step:
            self.complete += self.step
        return self.complete + await self.archive.count(self.complete, posted)


async def run_memory(args: argparse.Namespace) -> int:
    async with Rig(args.database_url, args.redis_url, args.staff) as rig, Cluster(rig.env) as cluster, \
            load_client(args.concurrency) as http:
        webs = await cluster.start([(f"web{i}", "web") for i in range(1, args.web + 1)])
        workers = await cluster.start([(f"worker{i}", "worker") for i in range(1, args.workers + 1)])
        watched = [(child.name, child.proc.pid) for child in webs + workers] + [("bench", os.getpid())]
        urls = [web.url for web in webs]
        print(f"{args.messages} messages through {plural(args.web, 'web process')} + {plural(args.workers, 'worker process')}, "
              f"{args.staff} staff, RSS in MB every {args.sample_every} archived", flush=True)
        print(f"{'archived':>9} {'elapsed s':>9} {'msg/s':>6}" + "".join(f" {name:>8}" for name, _ in watched), flush=True)
        samples: list[tuple[int, list[int]]] = []
        start = time.perf_counter()
        last = (0, start)  # (archived, time) at the previous sample, for the rate column

        def sample(archived: int) -> None:
            nonlocal last
            now = time.perf_counter()
            rss = [rss_bytes(pid) for _, pid in watched]
            samples.append((archived, rss))
            rate = (archived - last[0]) / (now - last[1]) if now > last[1] else 0.0
            last = (archived, now)
            print(f"{archived:>9} {now - start:>9.0f} {rate:>6.0f}" + "".join(f" {r / MB:>8.1f}" for r in rss), flush=True)

        sample(0)
        acked = bytearray(args.messages)  # 1 byte per message, allocated once: the generator stays flat
        posted = acked_count = archived = replies = 0
        errors: Counter[str] = Counter()
        progress = Progress(rig.archive, args.chunk)
        progress_at, next_mark = time.perf_counter(), args.sample_every
        while posted < args.messages or archived < acked_count:
            if posted < args.messages and acked_count - archived <= args.backlog:
                phase = await post(http, urls, rig.callbacks.make(posted, min(args.chunk, args.messages - posted)),
                                   args.concurrency, None)
                for index in phase.acked:
                    acked[index] = 1
                posted, acked_count, errors = posted + phase.requests, acked_count + len(phase.acked), errors + phase.errors
            else:
                await asyncio.sleep(0.2)
            now_archived = await progress.archived(posted)
            if now_archived > archived:
                archived, progress_at = now_archived, time.perf_counter()
            elif time.perf_counter() - progress_at > args.stall:
                print(f"nothing archived for {args.stall:.0f} s: stopping", flush=True)
                break
            if archived >= next_mark:
                replies += len(rig.sim.sent_app_messages)
                rig.sim.sent_app_messages.clear()  # the simulator would otherwise keep every reply
                sample(archived)
                next_mark = (archived // args.sample_every + 1) * args.sample_every
        elapsed = time.perf_counter() - start
        if samples[-1][0] != archived:
            sample(archived)
        counts = bytearray(args.messages)
        async for index in rig.archive.indexes(0, posted):
            counts[index] = min(counts[index] + 1, 255)
        check = LossCheck.of_counts(acked[:posted], counts[:posted])
        replies += len(rig.sim.sent_app_messages)
        await cluster.stop(webs + workers)

    print(f"\n{archived} archived in {elapsed:.0f} s ({archived / elapsed:.0f} msg/s), backend: {rig.backend}")
    if errors:
        print("errors  " + ", ".join(f"{error} × {count}" for error, count in sorted(errors.items())))
    print(f"loss check {'OK' if check.ok else 'FAILED'}: {check.acked} acked, {check.archived} archived, {check.missing} missing, "
          f"{check.duplicates} duplicates, {check.unacked} archived without an ack; {replies} bot replies delivered")
    base = next((s for s in samples if s[0] >= args.warmup), None)
    if base is None or base is samples[-1]:
        print(f"no samples after the {args.warmup}-message warm-up to compare")
    else:
        (first, first_rss), (final, final_rss) = base, samples[-1]
        per = 100_000 / (final - first)

        def growth(a: int, b: int) -> str:  # a rate per 100k from a shorter span would be mostly noise
            return f"{(b - a) / MB:+.1f} MB" + (f" ({(b - a) / MB * per:+.2f} MB per 100k)" if per <= 1 else "")

        print(f"growth from {first} to {final} archived: " + ", ".join(
            f"{name} {growth(a, b)}" for (name, _), a, b in zip(watched, first_rss, final_rss)))
    return 0 if check.ok else 1
