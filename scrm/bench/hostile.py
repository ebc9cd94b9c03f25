"""`scrm bench hostile`: a flood of unauthenticated callbacks against one `scrm serve --roles web`.

A child process (its own event loop and CPU, so the probes are not delayed by the flood's client
side) posts hostile bodies to /wecom/callback as fast as --concurrency connections allow: the
audit's 8 KB `<xml>` + 1999 `<a/>` siblings, a well-shaped envelope with a forged signature,
deep nesting, and a DTD, each with a fresh timestamp so it gets past the freshness check and
costs the most it can. Meanwhile this process probes the same web process every --probe-every
seconds with GET /healthz and a valid signed callback, timing each. The same probes run first
with no flood, as the baseline.

Reported: hostile requests refused per second and their latency; the probes' latency with and
without the flood; and whether the targets of issue #18 hold (every hostile request refused
within 100 ms, every probe answered within 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field

import aiohttp

from scrm.bench.load import Cluster, Rig, load_client
from scrm.bench.processes import percentile

HOSTILE_LIMIT_SECONDS = 0.100
PROBE_LIMIT_SECONDS = 0.200
KINDS = ("siblings", "forged", "nested", "dtd")


def hostile_body(kind: str) -> bytes:
    """About 8 KB each, the audit's size."""
    if kind == "siblings":
        return b"<xml>" + b"<a/>" * 1999 + b"</xml>"
    if kind == "forged":
        return b"<xml><ToUserName><![CDATA[ww0]]></ToUserName><Encrypt><![CDATA[" + b"QUJD" * 2000 + b"]]></Encrypt></xml>"
    if kind == "nested":
        return b"<xml>" + b"<a>" * 1000 + b"</a>" * 1000 + b"</xml>"
    return b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "' + b"a" * 8000 + b'">]><xml><Encrypt>&a;</Encrypt></xml>'


def cmd_hostile(args: argparse.Namespace) -> int:
    return asyncio.run(run_hostile(args))


@dataclass
class Probes:
    healthz: list[float] = field(default_factory=list)
    callbacks: list[float] = field(default_factory=list)
    failures: int = 0


async def probe(http: aiohttp.ClientSession, url: str, rig: Rig, seconds: float, every: float, first: int) -> Probes:
    """/healthz and one valid callback, alternately, every `every` seconds for `seconds`."""
    probes, index, deadline = Probes(), first, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        async with http.get(f"{url}/healthz") as resp:
            await resp.read()
            ok = resp.status == 200
        probes.healthz.append(time.perf_counter() - started)
        [callback] = rig.callbacks.make(index, 1)
        index += 1
        started = time.perf_counter()
        async with http.post(f"{url}/wecom/callback", params=callback.params, data=callback.body) as resp:
            await resp.read()
            ok = ok and resp.status == 200
        probes.callbacks.append(time.perf_counter() - started)
        probes.failures += not ok
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))
    return probes


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<28} none"
    ms = [1000 * v for v in values]
    return (f"{name:<28} n={len(ms):>6}  p50 {percentile(ms, 50):6.1f} ms  p99 {percentile(ms, 99):6.1f} ms  "
            f"max {max(ms):6.1f} ms")


async def run_hostile(args: argparse.Namespace) -> int:
    async with Rig(args.database_url, args.redis_url, 5) as rig, Cluster(rig.env) as cluster, load_client(4) as http:
        [web] = await cluster.start([("web", "web")])
        print(f"baseline: probing {web.url} for {args.seconds:.0f} s with no flood", flush=True)
        baseline = await probe(http, web.url, rig, args.seconds, args.probe_every, 0)
        print(f"flood: {args.concurrency} connections of {args.kind} bodies for {args.seconds:.0f} s", flush=True)
        flood = subprocess.Popen([sys.executable, "-m", "scrm.bench.hostile", web.url, str(args.seconds),
                                  str(args.concurrency), args.kind], stdout=subprocess.PIPE, text=True)
        during = await probe(http, web.url, rig, args.seconds, args.probe_every, len(baseline.callbacks))
        out, _ = await asyncio.to_thread(flood.communicate)
        result = json.loads(out)
    refused = sum(result["statuses"].get(s, 0) for s in ("400", "403", "413"))
    print(f"hostile: {refused} refused in {result['seconds']:.1f} s = {refused / result['seconds']:,.0f}/s "
          f"(statuses {result['statuses']}, client errors {result['errors']})")
    print(line("hostile refusals", result["latencies"]))
    print(line("/healthz, no flood", baseline.healthz))
    print(line("valid callback, no flood", baseline.callbacks))
    print(line("/healthz, during flood", during.healthz))
    print(line("valid callback, during flood", during.callbacks))
    failures = baseline.failures + during.failures
    hostile_ok = max(result["latencies"], default=0.0) <= HOSTILE_LIMIT_SECONDS
    probes_ok = max([*during.healthz, *during.callbacks], default=0.0) <= PROBE_LIMIT_SECONDS and not failures
    print(f"targets: hostile refused within {HOSTILE_LIMIT_SECONDS * 1000:.0f} ms: {'yes' if hostile_ok else 'NO'}; "
          f"probes answered within {PROBE_LIMIT_SECONDS * 1000:.0f} ms: {'yes' if probes_ok else 'NO'}"
          f"{f' ({failures} probes failed)' if failures else ''}")
    return 0 if hostile_ok and probes_ok else 1


async def flood(url: str, seconds: float, concurrency: int, kind: str) -> dict:
    """The child's side: hostile POSTs from `concurrency` connections until `seconds` have passed."""
    bodies = [hostile_body(k) for k in (KINDS if kind == "mixed" else (kind,))]
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    latencies: list[float] = []
    start = time.perf_counter()
    deadline, sent = start + seconds, 0

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal sent
        while time.perf_counter() < deadline:
            body = bodies[sent % len(bodies)]
            sent += 1
            params = {"msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": str(sent)}
            began = time.perf_counter()
            try:
                async with http.post(f"{url}/wecom/callback", params=params, data=body) as resp:
                    await resp.read()
                    statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - began)

    async with load_client(concurrency) as http:
        await asyncio.gather(*(sender(http) for _ in range(concurrency)))
    return {"seconds": time.perf_counter() - start, "statuses": statuses, "errors": errors, "latencies": latencies}


if __name__ == "__main__":
    target, duration, connections, body_kind = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    print(json.dumps(asyncio.run(flood(target, duration, connections, body_kind))))
