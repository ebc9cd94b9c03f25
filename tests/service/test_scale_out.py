"""Issue #8, scale out with nothing lost: several `scrm serve` processes on one PostgreSQL and one
Redis, with processes killed by SIGKILL while they hold work.

Only the production shape can run this (the SQLite quickstart is one process), so the tests ask
for the PostgreSQL and Redis services directly; under CI=true a missing service fails the run.
The WeCom simulator runs in the test's event loop and records every send it receives.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import func, select, text

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from connectors.wecom.simulator.state import SimulatorState
from crm_core.birthdays import Birthday
from crm_core.db import create_engine, session_factory, utcnow
from crm_core.models import CareDelivery, Customer, CustomerIdentity, InboxItem, Message, OutboxItem, Staff
from crm_core.ticket_models import Ticket
from scheduler.care import BATCH_SIZE
from crm_core.job_runs import JobRun
from scheduler.runner import RUN_LEASE_PREFIX, Scheduler
from scrm.bench.processes import free_port, wait_healthy
from scrm.delivery.sender import message_text
from tests.support.backends import PG_URL, REDIS_URL, Backend, flush_redis, require_service, reset_postgres
from tests.support.chat import sample_company_files, sync_directory
from tests.support.chat import SHANGHAI as TZ
from tests.support.scheduling import JobClock, morning_job

pytestmark = pytest.mark.slow

# The issue asks for 10,000 callbacks. On the 2-core development machine the whole path (ack,
# archive, bot reply, send to the simulator) moved 45 messages a second with two workers when
# quiet and 10-22 when other test runs shared it (load 6-9): 10,000 would take 4-16 minutes, and
# 3,000 took 3.5-5.5. 2,000 keeps this test at 1-2.5 minutes and still spans the kill, the lease
# takeover and the replacement worker with hundreds of messages on each side. The full 10,000 run
# (SCRM_TEST_FAULT_STREAM=10000) is recorded in BENCHMARKS.md.
N_STREAM = int(os.environ.get("SCRM_TEST_FAULT_STREAM", "2000"))
# WeCom takes 30 app messages a minute per member (scrm.delivery.send_limits): spread the stream over enough
# reps that the limit never defers a reply, so the test measures loss and duplication, not throttling.
MESSAGES_PER_REP = 20
# How soon the killed worker's rows are claimed again (a live worker renews what it holds).
LEASE_SECONDS = 5
POSTING_CONCURRENCY = 8
HELD_BACK = 0.6  # the share of the stream posted before the kill; the rest comes after it
N_BIRTHDAYS = 2 * BATCH_SIZE + 200  # three pages of the birthday job: the leader dies in the second
N_CARE_REPS = 8
N_COMPLAINERS = 12  # the ticket agent gets a card and a notice per complaint: stay under 30 a minute
COMPLAINTS = ("上周订的那批货到现在还没到，客服电话也打不通，太失望了，再不处理我就去12315投诉！订单{n}",
              "到底什么时候发货？等了十天了，谁来负责？订单{n}")
REPLY_WORD = re.compile(r"「(ping\d+)」")


# -- processes ------------------------------------------------------------------------------------

@dataclass
class Child:
    name: str
    roles: str
    port: int
    log: Path
    proc: subprocess.Popen
    killed: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Fleet:
    """The `scrm serve` processes of one test, all on the same database, Redis and simulator."""

    backend: Backend
    sim: SimulatorState
    api_base: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, roles: str) -> Child:
        env = {
            **os.environ,
            "SCRM_DATABASE_URL": self.backend.database_url,
            "SCRM_REDIS_URL": self.backend.redis_url or "",
            **self.sim.service_env(self.api_base),
            **self.env,
        }
        port, log = free_port(), self.workdir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "scrm.cli.main", "serve", "--host", "127.0.0.1",
                                     "--port", str(port), "--roles", roles],
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        child = Child(name, roles, port, log, proc)
        self.children[name] = child
        return child

    async def healthy(self, *children: Child) -> None:
        # Several Python processes importing at once on two busy cores: allow a slow start.
        await asyncio.gather(*(wait_healthy(c.url, c.proc, timeout=120) for c in children))

    async def kill(self, child: Child) -> None:
        child.killed = True
        child.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(child.proc.wait, 10)

    def check_alive(self) -> None:
        for child in self.children.values():
            if not child.killed and child.proc.poll() is not None:
                raise AssertionError(f"{child.name} exited with {child.proc.returncode}\n{self.tail()}")

    def tail(self, chars: int = 1500) -> str:
        return "\n".join(f"--- {c.name} ({c.roles}) ---\n{c.log_text()[-chars:]}" for c in self.children.values())

    async def stop(self) -> None:
        """SIGTERM and wait, while this loop keeps serving the simulator the processes may still call."""
        alive = [c for c in self.children.values() if c.proc.poll() is None]
        for child in alive:
            child.proc.terminate()
        for child in alive:
            try:
                await asyncio.to_thread(child.proc.wait, 30)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                await asyncio.to_thread(child.proc.wait, 10)


async def wait_until(check: Callable[[], Awaitable[object]], *, timeout: float, what: str, fleet: Fleet,
                     poll: float = 0.2):
    """Poll `check` until it returns something truthy; fail with the processes' logs at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        fleet.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{fleet.tail()}")
        await asyncio.sleep(poll)


# -- fixtures and helpers -------------------------------------------------------------------------

@pytest.fixture
async def postgres() -> Backend:
    """The production shape only: several processes cannot share SQLite and the in-process Redis."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    await asyncio.gather(reset_postgres(), flush_redis())
    return Backend("postgres", PG_URL, REDIS_URL)


@pytest.fixture
async def db(postgres):
    engine = create_engine(postgres.database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def fleet(postgres, sim, sim_server, tmp_path):
    fleet = Fleet(postgres, sim, str(sim_server.make_url("/cgi-bin/")), tmp_path)
    yield fleet
    await fleet.stop()


def callback_sender(http: aiohttp.ClientSession, web: Child, sim: SimulatorState) -> CallbackSender:
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    return CallbackSender(http, f"{web.url}/wecom/callback", crypto, corp_id=sim.corp_id, agent_id=str(sim.agent_id))


def add_sim_staff(sim: SimulatorState, userid: str, name: str) -> None:
    sim.staff[userid] = {
        "userid": userid, "name": name, "department": [2], "order": [0], "position": "销售代表", "mobile": "",
        "gender": "1", "email": "", "is_leader_in_dept": [0], "direct_leader": [], "avatar": "", "telephone": "",
        "alias": "", "status": 1, "main_department": 2,
    }


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (Linux /proc): which process a database session is."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def scalar(db, stmt) -> int:
    async with db() as session:
        return (await session.scalar(stmt)) or 0


def repeated_requests(delivered: list[dict]) -> list[dict]:
    """Deliveries whose request repeats an earlier delivered one. Sending is at least once (a worker
    killed between WeCom's answer and its commit sends the row again), and WeCom's duplicate check,
    which the simulator models, drops such a repeat (`dropped_app_messages`); a repeat that got
    through would reach someone twice."""
    seen: set[str] = set()
    repeats = []
    for message in delivered:
        request = {k: v for k, v in message.items() if k not in ("msgid", "recipients")}  # added by the simulator
        key = json.dumps(request, ensure_ascii=False, sort_keys=True)
        if key in seen:
            repeats.append(message)
        seen.add(key)
    return repeats


def replied_words(sim: SimulatorState) -> set[str]:
    return {match.group(1) for m in sim.sent_app_messages if (match := REPLY_WORD.search(message_text(m)))}


def worker_ids(child: Child) -> set[str]:
    """The queue-worker ids a process logged at start (they mark the rows it leases)."""
    return set(re.findall(r"\b((?:inbox|outbox)-[0-9a-f]{10}) started", child.log_text()))


# -- 1. a worker killed mid-stream ----------------------------------------------------------------

async def test_a_worker_killed_mid_stream_loses_nothing_and_repeats_nothing(postgres, db, sim, fleet):
    """One web and two worker processes take a stream of rep messages (each answered by the bot);
    one worker is SIGKILLed while it holds leased rows, a replacement starts, and every acked
    callback is archived once and answered once."""
    started = time.monotonic()
    reps = [f"scale{i:03d}" for i in range(math.ceil(N_STREAM / MESSAGES_PER_REP))]
    for i, userid in enumerate(reps):
        add_sim_staff(sim, userid, f"销售{i:03d}")
    fleet.env.update({"SCRM_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
                      # every line must be answered: the bot's flood guard is not under test here
                      "SCRM_BOT_COMMANDS_PER_MINUTE": "100000"})
    web = fleet.start("web", "web")
    victim, survivor = fleet.start("worker-1", "worker"), fleet.start("worker-2", "worker")
    await fleet.healthy(web, victim, survivor)
    ready = time.monotonic()

    msg_ids = [7_000_000 + i for i in range(N_STREAM)]
    sender_of = {msg_id: reps[i % len(reps)] for i, msg_id in enumerate(msg_ids)}
    acked: set[str] = set()
    failed: list[tuple[int, int]] = []

    archived_in = (select(func.count()).select_from(Message)
                   .where(Message.channel == "wecom_app", Message.direction == "in"))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POSTING_CONCURRENCY)) as http:
        wecom = callback_sender(http, web, sim)
        pending, killed = iter(msg_ids), asyncio.Event()

        async def post() -> None:
            for msg_id in pending:  # shared by the posting tasks: each message is posted once
                if msg_id >= msg_ids[int(N_STREAM * HELD_BACK)]:
                    await killed.wait()  # the rest of the stream arrives after the kill, not before
                status, _ = await wecom.text(sender_of[msg_id], f"查 ping{msg_id}", msg_id=msg_id)
                if status == 200:
                    acked.add(str(msg_id))
                else:
                    failed.append((msg_id, status))

        posting = asyncio.gather(*(post() for _ in range(POSTING_CONCURRENCY)))
        try:
            # Mid-stream, provably: a fifth archived, the victim holding leased inbox rows, more to come.
            await wait_until(lambda: scalar(db, archived_in), timeout=120, what="the first archived message",
                             fleet=fleet)
            victim_ids = worker_ids(victim)
            assert victim_ids, f"worker-1 logged no worker ids\n{victim.log_text()[-1500:]}"

            async def victim_rows_mid_stream() -> list[int]:
                """The inbox rows the victim holds, once a fifth of the stream is archived."""
                if await scalar(db, archived_in) < N_STREAM // 5:
                    return []
                async with db() as session:
                    return list((await session.scalars(select(InboxItem.id).where(
                        InboxItem.status == "processing", InboxItem.locked_by.in_(victim_ids)))).all())

            held = await wait_until(victim_rows_mid_stream, timeout=300, fleet=fleet, poll=0.05,
                                    what="a fifth archived while worker-1 holds leased rows")
            await fleet.kill(victim)
            killed.set()
            killed_at = time.monotonic()
            archived_at_kill, posted_at_kill = await scalar(db, archived_in), len(acked) + len(failed)
            replacement = fleet.start("worker-3", "worker")
            await fleet.healthy(replacement)
            await posting
        finally:
            if not posting.done():
                posting.cancel()
                await asyncio.gather(posting, return_exceptions=True)
    posted = time.monotonic()

    replies = (select(func.count()).select_from(OutboxItem)
               .where(OutboxItem.idempotency_key.like("reply:wecom_app:%"), OutboxItem.status == "sent"))

    async def everything_answered() -> bool:
        return (await scalar(db, archived_in) >= len(acked) and await scalar(db, replies) >= len(acked)
                and len(replied_words(sim)) >= len(acked))

    await wait_until(everything_answered,
                     timeout=420, what="every acked message archived and answered",
                     fleet=fleet, poll=0.5)
    done = time.monotonic()
    print(f"\nscale-out stream: {N_STREAM} messages from {len(reps)} reps; processes up in {ready - started:.1f} s, "
          f"posted in {posted - ready:.1f} s, all answered {done - ready:.1f} s after start "
          f"({N_STREAM / (done - ready):.0f} msg/s); worker-1 killed {killed_at - ready:.1f} s in, at "
          f"{archived_at_kill} archived and {posted_at_kill} posted, holding {len(held)} inbox rows")

    assert not failed, f"{len(failed)} callbacks were not acked, e.g. {failed[:5]}"
    assert len(acked) == N_STREAM
    assert archived_at_kill < posted_at_kill < N_STREAM, "the kill must come mid-stream"

    async with db() as session:
        archived = list((await session.scalars(
            select(Message.external_msg_id).where(Message.channel == "wecom_app", Message.direction == "in"))).all())
        outbox = (await session.execute(select(OutboxItem.idempotency_key, OutboxItem.status, OutboxItem.attempts)
                                        .where(OutboxItem.kind == "app_message"))).all()
        stuck = await session.scalar(select(func.count()).select_from(InboxItem).where(InboxItem.status != "done"))
        held_rows = (await session.execute(select(InboxItem.status, InboxItem.attempts)
                                           .where(InboxItem.id.in_(held)))).all()
        sent_archived = await session.scalar(select(func.count()).select_from(Message).where(
            Message.channel == "wecom_app", Message.direction == "out"))
    assert len(archived) == len(set(archived)), "a message was archived twice"
    assert set(archived) == acked, f"{len(acked - set(archived))} acked but never archived"
    assert stuck == 0
    # The rows the killed worker held were claimed again and finished by the others.
    assert {status for status, _ in held_rows} == {"done"} and max(attempts for _, attempts in held_rows) > 1

    # One reply row per inbound message, each sent, and each send archived once.
    reply_rows = {key.removeprefix("reply:wecom_app:"): (status, attempts)
                  for key, status, attempts in outbox if key.startswith("reply:wecom_app:")}
    assert set(reply_rows) == acked
    assert {status for status, _ in reply_rows.values()} == {"sent"}
    assert sent_archived == len(outbox)

    # One reply reached each rep per message they wrote, tied by the word the bot quotes back.
    delivered = [m for m in sim.sent_app_messages if REPLY_WORD.search(message_text(m))]
    resent = [m for m in sim.dropped_app_messages if REPLY_WORD.search(message_text(m))]
    print(f"{len(resent)} raw resend(s) (rows claimed again), dropped by WeCom's duplicate check")
    twice = repeated_requests(delivered)
    assert not twice, f"{len(twice)} replies reached a rep twice: {twice[:3]}"
    answered = Counter(REPLY_WORD.search(message_text(m)).group(1) for m in delivered)
    assert set(answered) == {f"ping{i}" for i in acked} and set(answered.values()) == {1}
    for message in delivered:
        msg_id = int(REPLY_WORD.search(message_text(message)).group(1).removeprefix("ping"))
        assert message["touser"] == sender_of[msg_id], "a reply went to someone who did not write it"
    # A raw repeat is only ever a row claimed again after its holder died or lost the lease.
    for message in resent:
        msg_id = REPLY_WORD.search(message_text(message)).group(1).removeprefix("ping")
        assert reply_rows[msg_id][1] > 1, f"reply to {msg_id} sent twice though claimed once"


# -- 2. two schedulers and two workers at once ----------------------------------------------------

async def test_a_run_whose_scheduler_died_is_taken_over_once_its_lease_expires(env):
    """The runner half of the story below, without processes: a run left `running` is skipped while
    its lease lives (its scheduler may still be working) and run again, once, when the lease is gone."""
    sessions, (redis_a, redis_b) = env
    calls: list = []
    clock = JobClock(datetime(2026, 11, 23, 1, 0, 5, tzinfo=UTC))  # 09:00:05 in Shanghai
    dead, heir = (Scheduler([morning_job(calls)], sessions, redis, TZ, clock=clock) for redis in (redis_a, redis_b))
    slot = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
    lease = f"{RUN_LEASE_PREFIX}greetings:{slot.astimezone(UTC).isoformat()}"
    async with sessions() as session:  # what a scheduler killed mid-run leaves behind
        session.add(JobRun(job="greetings", scheduled_for=slot, status="running", summary="", started_at=utcnow()))
        await session.commit()
    await redis_a.set(lease, dead.identity, ex=60)

    assert await heir.run_job("greetings", slot) is None and calls == []  # maybe still running: hands off
    await redis_a.delete(lease)  # the lease ran out: nobody renews it
    assert await heir.tick() == ["greetings"]
    assert await heir.tick() == [] and await dead.run_job("greetings", slot) is None
    async with sessions() as session:
        [run] = (await session.scalars(select(JobRun))).all()
    assert len(calls) == 1 and run.status == "done" and run.summary == "greeted at 09:00"


def business_timezone(now: datetime) -> str:
    """A zone where it is now between 09:05 and 20:00: past the 09:00 care jobs, so every scheduler
    that starts catches today's run up (the race under test), and before the 21:00 quiet hours, so
    greetings go out at once. Asia/Shanghai when it fits, else a fixed-offset zone that does."""
    candidates = ["Asia/Shanghai", *(f"Etc/GMT{-hours:+d}" for hours in range(14, -13, -1))]

    def fits(name: str) -> bool:
        local = now.astimezone(ZoneInfo(name))
        return (9, 5) <= (local.hour, local.minute) < (20, 0)

    return next(name for name in candidates if fits(name))


async def add_birthday_customers(db, sim: SimulatorState, today: date) -> tuple[list[int], dict[str, str]]:
    """Consenting customers whose birthday is today, each a WeCom contact of one of a few reps, so
    the birthday job gives each owner a group-send task; returns their ids and contact -> rep."""
    reps = [f"carerep{i}" for i in range(N_CARE_REPS)]
    for i, userid in enumerate(reps):
        add_sim_staff(sim, userid, f"关怀{i}")
    owner_of: dict[str, str] = {}
    async with db() as session:
        staff = [Staff(userid=userid, name=f"关怀{i}", role="sales", active=True, synced_at=utcnow())
                 for i, userid in enumerate(reps)]
        session.add_all(staff)
        await session.flush()
        customers = []
        for i in range(N_BIRTHDAYS):
            customer = Customer(name=f"寿星{i:04d}", owner_id=staff[i % len(staff)].id, care_consent=True,
                                lifecycle="customer")
            customer.birthday = Birthday(today.month, today.day)
            customers.append(customer)
        session.add_all(customers)
        await session.flush()
        for i, customer in enumerate(customers):
            contact, rep = f"wmScaleBday{i:05d}", reps[i % len(reps)]
            session.add(CustomerIdentity(customer_id=customer.id, channel="wecom", external_id=contact))
            owner_of[contact] = rep
            sim.external_contacts[contact] = {
                "external_contact": {"external_userid": contact, "name": customer.name, "type": 1, "gender": 0},
                "follow_user": [{"userid": rep, "remark": "", "description": "", "createtime": 1_700_000_000,
                                 "tags": [], "remark_mobiles": [], "oper_userid": rep, "add_way": 1, "state": ""}],
            }
        await session.commit()
        return sorted(c.id for c in customers), owner_of


async def test_two_schedulers_and_two_workers_send_each_greeting_ticket_and_reply_once(postgres, db, sim, fleet):
    """Two schedulers start together and both catch up today's 09:00 birthday run; the leader is
    SIGKILLed in the middle of it (its second page of customers is held on a row lock, so the kill
    is provably mid-batch), and the other takes over and finishes. Meanwhile two workers deliver
    the greetings and turn customers' complaints into tickets. Every customer is greeted once,
    every complaint lands on one ticket, nobody is told anything twice, one run row per job."""
    started = time.monotonic()
    tz_name = business_timezone(utcnow())
    tz = ZoneInfo(tz_name)
    today = utcnow().astimezone(tz).date()
    files = sample_company_files(fleet.workdir)  # wangfang of 客户服务部 takes the tickets
    fleet.env.update({"SCRM_TIMEZONE": tz_name, "SCRM_WORKER_LEASE_SECONDS": "10",
                      "SCRM_ROLES_FILE": str(files["roles_file"]), "SCRM_TICKET_ROUTING_FILE": str(files["ticket_routing_file"])})
    await sync_directory(db, sim)
    ids, owner_of = await add_birthday_customers(db, sim, today)
    birthday_rows = (select(func.count()).select_from(CareDelivery)
                     .where(CareDelivery.occasion == "birthday", CareDelivery.occasion_date == today))

    blocker = db()
    try:
        # Hold the first customer of the job's second page: its decision row waits on this lock.
        await blocker.execute(text(
            "INSERT INTO care_deliveries (customer_id, occasion, occasion_date, channel, status, outbox_key, "
            "wecom_msgid, detail, created_at, updated_at) VALUES (:customer, 'birthday', :day, 'none', 'no_channel', "
            "'', '', 'held by the test', :now, :now)"), {"customer": ids[BATCH_SIZE], "day": today, "now": utcnow()})
        web = fleet.start("web", "web")
        workers = [fleet.start(f"worker-{i}", "worker") for i in (1, 2)]
        schedulers = [fleet.start(f"scheduler-{i}", "scheduler") for i in (1, 2)]
        await fleet.healthy(web, *workers, *schedulers)

        async def leader_blocked_mid_batch() -> list[int]:
            """The client ports of sessions waiting on the held row, once the first page is committed."""
            async with db() as session:
                ports = list((await session.scalars(text(
                    "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE '%care_deliveries%'"))).all())
                decided = await session.scalar(birthday_rows)
            return ports if decided == BATCH_SIZE else []

        ports = await wait_until(leader_blocked_mid_batch, timeout=180, fleet=fleet,
                                 what="the leader blocked in the birthday job's second page")
        blocked = [s for s in schedulers if local_ports(s.proc.pid) & set(ports)]
        assert len(blocked) == 1, f"ports {ports} belong to {[s.name for s in blocked]}, expected one scheduler"
        [leader] = blocked
        [follower] = [s for s in schedulers if s is not leader]
        await fleet.kill(leader)
        killed_at = time.monotonic()
    finally:
        await blocker.rollback()
        await blocker.close()

    # Customers complain through 微信客服 while the follower waits out the dead leader's locks.
    kfid = next(iter(sim.kf_accounts))
    complainers = {f"wmScaleKf{i:03d}": 1 + i % 2 for i in range(N_COMPLAINERS)}
    async with aiohttp.ClientSession() as http:
        wecom = callback_sender(http, web, sim)

        async def complain(external_userid: str, times: int) -> None:
            for n in range(times):
                token = sim.kf_customer_writes(kfid, external_userid, COMPLAINTS[n].format(n=external_userid[-3:]))
                status, _ = await wecom.kf_msg_or_event(token, kfid)
                assert status == 200

        await asyncio.gather(*(complain(eid, times) for eid, times in complainers.items()))

    def birthday_templates() -> list[dict]:
        return [t for t in sim.msg_templates if "生日" in t["text"]["content"]]

    async def all_settled() -> bool:
        async with db() as session:
            job_states = set((await session.scalars(select(JobRun.status))).all())
            busy = await session.scalar(select(func.count()).select_from(OutboxItem)
                                        .where(OutboxItem.status.in_(("pending", "processing"))))
            inbox = await session.scalar(select(func.count()).select_from(InboxItem).where(InboxItem.status != "done"))
            tickets = await session.scalar(select(func.count()).select_from(Ticket))
            greeted = await session.scalar(birthday_rows)
        return (greeted == N_BIRTHDAYS and "running" not in job_states and busy == 0 and inbox == 0
                and tickets >= N_COMPLAINERS and len(birthday_templates()) >= N_BIRTHDAYS)

    # The follower leads once the dead leader's lock (30 s) and run lease expire, on a 20 s tick.
    await wait_until(all_settled, timeout=240, what="the follower finishing the birthday run, and every send",
                     fleet=fleet, poll=0.5)
    done = time.monotonic()
    assert re.search(rf"job care\.birthdays for {today.isoformat()}T\S+ done", follower.log_text()), \
        "the follower did not finish the birthday run"

    async with db() as session:
        runs = (await session.execute(select(JobRun.job, JobRun.scheduled_for, JobRun.status, JobRun.summary))).all()
        deliveries = (await session.execute(select(CareDelivery.customer_id, CareDelivery.channel)
                                            .where(CareDelivery.occasion == "birthday"))).all()
        greetings = (await session.execute(select(OutboxItem.idempotency_key, OutboxItem.status)
                                           .where(OutboxItem.idempotency_key.like("care:birthday:%")))).all()
        tickets = (await session.execute(
            select(Ticket.number, Ticket.complaint_messages, CustomerIdentity.external_id)
            .join(CustomerIdentity, CustomerIdentity.customer_id == Ticket.customer_id))).all()

    # One run row per job and slot, every one finished.
    assert max(Counter((job, at) for job, at, _, _ in runs).values()) == 1
    assert {status for _, _, status, _ in runs} == {"done"}, [r for r in runs if r.status != "done"]

    # Each birthday customer decided once, by group-send task, and the task created once in WeCom.
    assert sorted(customer for customer, _ in deliveries) == ids
    assert {channel for _, channel in deliveries} == {"template"}
    customer_keys = [key for key, _ in greetings if ":staff:" not in key]
    assert sorted(customer_keys) == sorted(f"care:birthday:{i}:{today.isoformat()}" for i in ids)
    assert {status for _, status in greetings} == {"sent"}
    tasks = Counter(contact for t in birthday_templates() for contact in t["external_userid"])
    assert set(tasks) == set(owner_of) and set(tasks.values()) == {1}, "a customer got two birthday greetings"
    assert all(t["sender"] == owner_of[t["external_userid"][0]] and not t["fail_list"] for t in birthday_templates())

    # Each rep heard about today's birthdays once; nobody got the same app message twice.
    twice = repeated_requests(sim.sent_app_messages)
    assert not twice, f"sent twice: {twice[:3]}"
    notices = Counter(m["touser"] for m in sim.sent_app_messages if m["touser"].startswith("carerep")
                      and "生日" in message_text(m))
    assert notices == Counter({rep: 1 for rep in set(owner_of.values())})

    # One ticket per complaining customer, carrying all of their complaints; one acknowledgement each.
    assert sorted(eid for _, _, eid in tickets) == sorted(complainers)
    assert {eid: count for _, count, eid in tickets} == complainers
    acks = Counter(m["touser"] for m in sim.sent_kf_messages)
    assert acks == Counter({eid: 1 for eid in complainers})
    assert len({m["msgid"] for m in sim.sent_kf_messages}) == len(sim.sent_kf_messages)
    cards = Counter(m["textcard"]["title"] for m in sim.sent_app_messages if m["msgtype"] == "textcard")
    assert len(cards) == N_COMPLAINERS and set(cards.values()) == {1}
    for number, _, _ in tickets:
        assert sum(number in title for title in cards) == 1

    print(f"\nscale-out schedulers: zone {tz_name}, {N_BIRTHDAYS} birthdays, {N_COMPLAINERS} complainers; "
          f"leader killed {killed_at - started:.1f} s in, all settled {done - killed_at:.1f} s after the kill; "
          f"{len(sim.dropped_app_messages)} raw resend(s) dropped by the duplicate check")
