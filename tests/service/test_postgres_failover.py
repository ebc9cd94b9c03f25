"""A PostgreSQL failover under load: every connection the service holds is terminated, again and
again, while employees' messages stream in and the bot answers them.

That is what a failover (or `pg_terminate_backend`, or a proxy restart) does to a running service:
the driver finds its socket closed mid-query or mid-commit, a session is used once more before it
is rolled back, a callback's insert dies. None of it is the rows' fault, so none of it may use up
an attempt (scrm.retries): at the end every row was finished at its first attempt, nothing was
parked, every acked message was archived once and every rep got each reply once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from connectors.wecom.simulator import directory as company
from connectors.wecom.simulator.state import SimulatorState
from crm_core.models import InboxItem, Message, OutboxItem
from scrm.delivery.sender import message_text
from tests.support.service import Service, make_service

pytestmark = pytest.mark.slow

KILL_EVERY = 0.3  # seconds between two rounds of terminating the service's connections
MIN_ROUNDS = 10  # rounds of killing the stream must last
MIN_HITS = 5  # interruptions the workers must have met mid-work before the stream may end
MESSAGES_PER_REP = 25  # under WeCom's 30 app messages a minute per member, so no reply waits for that limit
EXTRA_REPS = 15  # beside the sample company's: room for enough waves however fast the workers are
MSG_ID_BASE = 8_100_000
# Commands that read and write the database while they run (a rep's list, a lookup), so connections
# die inside the bot's handlers too, not only in the queue's own statements.
COMMANDS = ("我的待办", "我的客户", "查 赵磊", "帮助")
DEADLINE = 120.0


async def terminate_connections_mid_work(database_url: str, stop: asyncio.Event) -> int:
    """Once one of the service's connections is running a statement or holds a transaction open, cut
    every connection to its database but this one; how many there were (0 when told to stop first).
    Waiting for work in flight, not for a moment on the clock, is what makes a kill meet the workers
    mid-work on a fast machine as on a slow one."""
    admin = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    others = "datname = current_database() AND pid <> pg_backend_pid()"
    try:
        while not stop.is_set():
            if await admin.fetchval(f"SELECT count(*) FROM pg_stat_activity WHERE {others} "
                                    "AND state IN ('active', 'idle in transaction')"):
                return len(await admin.fetch(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}"))
            await asyncio.sleep(0.002)  # polling pg_stat_activity, not waiting for time to pass
        return 0
    finally:
        await admin.close()


class OutagesMet(logging.Handler):
    """Counts what the queue workers log when a kill interrupts their work: a claim refused, a batch
    undone and run again row by row, a row deferred or taken back (an outage, as it should be), or a
    row failed (an attempt used: what this test is here to catch)."""

    SIGNS = ("is unreachable", "processing them one at a time", " deferred ", "took back", " failed (attempt ")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(sign in message for sign in self.SIGNS):
            self.count += 1


@pytest.fixture
async def service(backend, sim: SimulatorState, sim_server: TestServer, aiohttp_client) -> Service:
    """The workers run on their own here, as in `scrm serve`: the kills must meet them mid-work."""
    return await make_service(backend, sim, sim_server, aiohttp_client, workers_in_background=True)


@pytest.fixture
def outages_met():
    handler = OutagesMet()
    logger = logging.getLogger("scrm.queue_worker")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_connections_terminated_again_and_again_under_load_use_no_attempt(backend, service: Service,
                                                                              outages_met):
    if backend.name != "postgres":
        pytest.skip("SQLite has no server connections to terminate")
    for i in range(EXTRA_REPS):
        company.hire(service.sim, f"failover{i:02d}", f"销售{i:02d}", [2])
    reps = sorted(service.sim.staff)

    def rep_of(i: int) -> str:
        return reps[(i // len(COMMANDS)) % len(reps)]  # each rep sends every command in turn
    acked: set[int] = set()
    stop_killing = asyncio.Event()
    kills: list[int] = []

    async def deliver(i: int) -> None:
        """Like WeCom: post again after a 503 (or no answer) until the callback is acked."""
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                status, _ = await service.wecom.text(rep_of(i), COMMANDS[i % len(COMMANDS)], msg_id=MSG_ID_BASE + i)
            except Exception:  # noqa: BLE001 - a cut connection may end the request itself
                status = None
            if status == 200:
                acked.add(i)
                return
            assert time.monotonic() < deadline, f"callback {i} never acked (last answer {status})"
            await asyncio.sleep(0.1)

    async def kill_repeatedly() -> None:
        while not stop_killing.is_set():
            if killed := await terminate_connections_mid_work(backend.database_url, stop_killing):
                kills.append(killed)
            try:
                await asyncio.wait_for(stop_killing.wait(), KILL_EVERY)
            except TimeoutError:
                pass

    killer = asyncio.create_task(kill_repeatedly())
    sent = 0
    try:
        # Stream waves of 10 concurrent callbacks until the workers have been hit often enough.
        started = time.monotonic()
        while sent < len(reps) * MESSAGES_PER_REP and (len(kills) < MIN_ROUNDS or outages_met.count < MIN_HITS):
            assert time.monotonic() - started < DEADLINE, f"only {outages_met.count} outage(s) met in {sent} messages"
            await asyncio.gather(*(deliver(i) for i in range(sent, sent + 10)))
            sent += 10
            await asyncio.sleep(KILL_EVERY)  # paced like traffic, so the kills fall while the workers work
    finally:
        stop_killing.set()
        await killer
    assert len(kills) >= MIN_ROUNDS and outages_met.count >= MIN_HITS, (
        f"{len(kills)} rounds of kills met the workers mid-work only {outages_met.count} time(s)")
    assert acked == set(range(sent))

    # The database stays up now: what the outages deferred is due again (time passes; nobody sleeps).
    await service.settle_past_backoffs()
    await service.settle()

    async with service.sessions() as session:
        inbox = list((await session.scalars(select(InboxItem))).all())
        outbox = list((await session.scalars(select(OutboxItem))).all())
        archived = list((await session.scalars(select(Message.external_msg_id).where(
            Message.channel == "wecom_app", Message.direction == "in"))).all())
    assert {(row.status, row.attempts) for row in inbox} == {("done", 1)}, sorted(
        (row.status, row.attempts, row.last_error[:120]) for row in inbox if (row.status, row.attempts) != ("done", 1))
    assert {(row.status, row.attempts) for row in outbox} == {("sent", 1)}, sorted(
        (row.status, row.attempts, row.last_error[:120]) for row in outbox if (row.status, row.attempts) != ("sent", 1))
    assert sorted(archived) == sorted(str(MSG_ID_BASE + i) for i in range(sent)), "archived ≠ acked, or twice"
    assert len(outbox) == sent, "a message got no reply queued, or two"
    replies = [m for m in service.sim.sent_app_messages]
    per_rep = {rep: sum(1 for m in replies if m["touser"] == rep) for rep in reps}
    assert per_rep == {rep: sum(1 for i in range(sent) if rep_of(i) == rep) for rep in reps}, "a reply missing or twice"
    assert not [m for m in replies if "出了点问题" in message_text(m)], "a rep was told of an internal error"
    print(f"\n{sent} messages, {len(kills)} rounds of terminating connections ({sum(kills)} connections), "
          f"{outages_met.count} interruptions met by the workers, no attempt used")
