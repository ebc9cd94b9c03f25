"""What the service benchmarks (`scrm bench ingest`, `scrm bench memory`) share: the WeCom
simulator in this process, callbacks encrypted before the clock starts (that is WeCom's work, not
ours), `scrm serve` children on ports of their own, a load generator that spreads requests
round-robin over the web processes as a load balancer would, and archive checks that look only at
this run's message ids, so a reused database's earlier rows never count.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import build_plaintext_text
from connectors.wecom.simulator.sample_data import sample_state
from connectors.wecom.simulator.server import create_simulator_app
from crm_core.db import create_engine
from crm_core.migrate import upgrade
from crm_core.models import QUEUE_ACTIVE, InboxItem, Message, OutboxItem
from scrm.ingest.staff_messages import APP_CHANNEL
from scrm.bench.processes import free_port, start_serve, wait_healthy
from scrm.resources import CliError

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

# Message ids are base + index with base = start second * IDS_PER_RUN: 18 digits, so string order
# is numeric order (range queries on external_msg_id work), and runs started in different seconds
# never reuse an id (the inbox would take a reused one for WeCom retrying and drop it).
IDS_PER_RUN = 10**8


def require_shared_backends(database_url: str, redis_url: str, what: str) -> None:
    """Several processes must share the database and Redis: SQLite (one connection by design) and
    the in-process Redis stand-in cannot be shared."""
    if not database_url.startswith("postgresql") or not redis_url:
        raise CliError(f"{what} runs several processes, which must share PostgreSQL and Redis: give "
                       "--database-url postgresql+asyncpg://… and --redis-url redis://… (SQLite and the "
                       "in-process Redis stand-in serve one process only)")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 'es' if noun.endswith('s') else 's'}"


@dataclass(frozen=True)
class Callback:
    index: int
    params: dict[str, str]
    body: bytes


class Callbacks:
    """Employees' text messages to the app, encrypted and signed as WeCom sends them."""

    def __init__(self, sim, senders: list[str]):
        self.sim, self.senders = sim, senders
        self.crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
        self.base = int(time.time()) * IDS_PER_RUN

    def make(self, start: int, count: int, rate: float | None = None) -> list[Callback]:
        """Signed with the time each is due to be sent, as WeCom signs its own: now, or for a paced
        run, now + k/rate. The service refuses timestamps more than 5 minutes off (a replay)."""
        out, now = [], time.time()
        for i in range(start, start + count):
            timestamp = str(int(now + (i - start) / rate)) if rate else str(int(now))
            plaintext = build_plaintext_text(self.sim.corp_id, str(self.sim.agent_id), self.senders[i % len(self.senders)],
                                             f"压测消息 {i} 你好", msg_id=self.base + i)
            body, signature = self.crypto.encrypt_callback(plaintext, timestamp=timestamp, nonce=str(i),
                                                           agent_id=str(self.sim.agent_id))
            out.append(Callback(i, {"msg_signature": signature, "timestamp": timestamp, "nonce": str(i)}, body.encode()))
        return out


def add_bench_staff(sim, count: int) -> list[str]:
    """The senders: the sample company's 5 staff, then synthetic members up to `count`. The bot answers
    a member's first 30 messages a minute (bot.rate_limit) and WeCom takes 30 app messages a minute
    per member (scrm.delivery.send_limits), so with 5 senders a fast run archives nearly everything unanswered;
    about rate/s × 2 senders keep every message answered."""
    if count < 1:
        raise CliError("--staff needs at least one sender")
    senders = list(sim.staff)[:count]
    template = sim.staff[senders[0]]
    for n in range(len(senders), count):
        userid = f"bench{n:05d}"
        sim.staff[userid] = {**template, "userid": userid, "name": f"压测{n}", "email": f"{userid}@xinghe-demo.cn",
                             "mobile": f"1380014{n:04d}"}
        senders.append(userid)
    return senders


class Rig:
    """The migrated database, the WeCom simulator serving from this process's event loop, and the
    environment `scrm serve` children need to use both."""

    def __init__(self, database_url: str, redis_url: str, staff: int):
        self.database_url = database_url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='scrm-bench-')) / 'bench.sqlite3'}"
        self.redis_url = redis_url
        self.sim = sample_state()
        self.callbacks = Callbacks(self.sim, add_bench_staff(self.sim, staff))
        self.engine = create_engine(self.database_url)
        self.archive = Archive(self.engine, self.callbacks.base)
        self._sim_runner = web.AppRunner(create_simulator_app(self.sim), access_log=None)  # logging costs the load generator CPU
        self.env: dict[str, str] = {}

    @property
    def backend(self) -> str:
        return self.database_url.split("+")[0].split(":")[0]

    async def __aenter__(self) -> Rig:
        await asyncio.to_thread(upgrade, self.database_url)
        await self._sim_runner.setup()
        await web.TCPSite(self._sim_runner, "127.0.0.1", 0).start()
        sim = self.sim
        self.env = {**os.environ, "SCRM_DATABASE_URL": self.database_url, "SCRM_REDIS_URL": self.redis_url,
                    **sim.service_env(f"http://127.0.0.1:{self._sim_runner.addresses[0][1]}/cgi-bin/")}
        inbox, outbox = await self.archive.backlog()
        if inbox or outbox:
            print(f"note: {inbox} inbox and {outbox} outbox rows from earlier runs are still pending; the workers "
                  "take them on too (replies to members this run's simulator lacks are parked)", flush=True)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.engine.dispose()
        await self._sim_runner.cleanup()


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    url: str


class Cluster:
    """Children on ports of their own. Leaving the block stops them all, while the simulator (in
    this event loop) keeps answering the workers until they are gone."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.children: list[Child] = []

    async def start(self, names_and_roles: list[tuple[str, str]]) -> list[Child]:
        """`scrm serve` per (name, roles), started together; returns once all are healthy."""
        started = []
        for name, roles in names_and_roles:
            port = free_port()
            started.append(Child(name, start_serve(port, roles, self.env), f"http://127.0.0.1:{port}"))
        return await self._healthy(started)

    async def start_noop(self, count: int) -> list[Child]:
        """Bare aiohttp handlers that read the body and answer 200: the ceiling for the web role."""
        started = []
        for n in range(1, count + 1):
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-c", NOOP_SERVER.format(port=port)])
            started.append(Child(f"noop{n}", proc, f"http://127.0.0.1:{port}"))
        return await self._healthy(started)

    async def _healthy(self, started: list[Child]) -> list[Child]:
        self.children.extend(started)
        await asyncio.gather(*(wait_healthy(child.url, child.proc, timeout=60) for child in started))
        return started

    async def stop(self, children: list[Child]) -> None:
        for child in children:
            child.proc.terminate()
        for child in children:
            await asyncio.to_thread(child.proc.wait, 30)
            self.children.remove(child)

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop(list(self.children))


@dataclass
class Phase:
    """What one round of posting saw."""

    requests: int
    acked: dict[int, float] = field(default_factory=dict)  # callback index -> wall clock of its 200
    latencies: list[float] = field(default_factory=list)  # seconds, POST to answer, acked only
    errors: Counter[str] = field(default_factory=Counter)
    send_seconds: float = 0.0  # first send to last send
    seconds: float = 0.0  # first send to last answer
    behind: float = 0.0  # paced: how far the latest send fell behind its slot (all senders busy)

    @property
    def offered_rate(self) -> float:
        return (self.requests - 1) / self.send_seconds if self.send_seconds > 0 else float("nan")

    @property
    def ack_rate(self) -> float:
        return len(self.acked) / self.seconds if self.seconds > 0 else float("nan")


def load_client(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))


async def post(http: aiohttp.ClientSession, urls: list[str], callbacks: list[Callback], concurrency: int,
               rate: float | None) -> Phase:
    """POST each callback to urls[k % len(urls)] from `concurrency` senders; with `rate`, callback k
    leaves no earlier than k/rate seconds after the start. Failures are counted, not raised: a 503
    is what WeCom would retry, and the loss check must see it."""
    phase = Phase(len(callbacks))
    queue = iter(enumerate(callbacks))  # shared: each sender takes the next callback
    start = time.perf_counter()
    last_send = last_answer = start

    async def sender() -> None:
        nonlocal last_send, last_answer
        for k, callback in queue:
            if rate:
                delay = start + k / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    phase.behind = max(phase.behind, -delay)
            t0 = last_send = time.perf_counter()
            try:
                async with http.post(f"{urls[k % len(urls)]}/wecom/callback", params=callback.params,
                                     data=callback.body) as resp:
                    await resp.read()
                    status = resp.status
            except aiohttp.ClientError as exc:
                phase.errors[type(exc).__name__] += 1
                continue
            finally:
                last_answer = time.perf_counter()
            if status == 200:
                phase.latencies.append(last_answer - t0)
                phase.acked[callback.index] = time.time()
            else:
                phase.errors[f"HTTP {status}"] += 1

    await asyncio.gather(*(sender() for _ in range(min(concurrency, len(callbacks)))))
    phase.send_seconds, phase.seconds = last_send - start, last_answer - start
    return phase


class Archive:
    """This run's archived callbacks, by message id range (messages.external_msg_id, indexed with
    the channel). created_at is stamped by the worker (crm_core.messages) in UTC, aware on both
    backends (crm_core.db.UTCDateTime), so .timestamp() compares with time.time() here."""

    def __init__(self, engine, base: int):
        self.engine, self.base = engine, base

    def _in_range(self, lo: int, hi: int):
        return (Message.channel == APP_CHANNEL, Message.direction == "in",
                Message.external_msg_id >= str(self.base + lo), Message.external_msg_id < str(self.base + hi))

    async def count(self, lo: int, hi: int) -> int:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(Message).where(*self._in_range(lo, hi))) or 0

    async def rows(self, lo: int, hi: int) -> list[tuple[int, datetime]]:
        """(callback index, created_at) of every archived message of indexes lo..hi-1, duplicates included."""
        async with self.engine.connect() as conn:
            result = await conn.execute(select(Message.external_msg_id, Message.created_at).where(*self._in_range(lo, hi)))
            return [(int(msg_id) - self.base, created_at) for msg_id, created_at in result]

    async def indexes(self, lo: int, hi: int) -> AsyncIterator[int]:
        """Callback index of every archived message of indexes lo..hi-1, duplicates included, streamed."""
        async with self.engine.connect() as conn:
            result = await conn.stream_scalars(select(Message.external_msg_id).where(*self._in_range(lo, hi))
                                               .execution_options(yield_per=10_000))
            async for msg_id in result:
                yield int(msg_id) - self.base

    async def wait(self, lo: int, hi: int, expected: int, stall: float) -> tuple[int, float]:
        """Poll until `expected` of indexes lo..hi-1 are archived, or nothing new came for `stall`
        seconds; returns the count and when (perf_counter) it was last seen growing."""
        count, progress_at = 0, time.perf_counter()
        while True:
            now_count = await self.count(lo, hi)
            if now_count > count:
                count, progress_at = now_count, time.perf_counter()
            if count >= expected or time.perf_counter() - progress_at > stall:
                return count, progress_at
            await asyncio.sleep(0.1)

    async def backlog(self) -> tuple[int, int]:
        """Inbox and outbox rows still to be worked on."""
        async with self.engine.connect() as conn:
            return tuple([await conn.scalar(select(func.count()).select_from(model).where(QUEUE_ACTIVE)) or 0
                          for model in (InboxItem, OutboxItem)])


@dataclass(frozen=True)
class LossCheck:
    """Every acked callback archived exactly once?"""

    acked: int
    archived: int  # distinct acked-or-not callbacks of the range in messages
    missing: int  # acked, not archived
    duplicates: int  # rows beyond the first per callback
    unacked: int  # archived although its POST failed (stored, then the answer was lost)

    @classmethod
    def of(cls, acked: dict[int, float], rows: list[tuple[int, datetime]]) -> LossCheck:
        archived = {index for index, _ in rows}
        return cls(len(acked), len(archived), sum(1 for i in acked if i not in archived), len(rows) - len(archived),
                   len(archived - acked.keys()))

    @classmethod
    def of_counts(cls, acked: bytes, counts: bytes) -> LossCheck:
        """From a flag per callback (1: acked) and how often each is archived: runs too long to keep rows."""
        missing = unacked = archived = duplicates = 0
        for was_acked, count in zip(acked, counts):
            if count:
                archived += 1
                duplicates += count - 1
                unacked += not was_acked
            else:
                missing += was_acked
        return cls(sum(acked), archived, missing, duplicates, unacked)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicates == 0


def lags(acked: dict[int, float], rows: list[tuple[int, datetime]]) -> list[float]:
    """Seconds from each callback's ack to its archiving (slightly negative when the worker archived
    it before the answer reached the load generator)."""
    return [created_at.timestamp() - acked[index] for index, created_at in rows if index in acked]
