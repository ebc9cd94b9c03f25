"""A worker keeps what it claimed: rows waiting their turn behind a slow one are not taken over.

Two workers share the queue through leases. A batch's last rows wait while the rows before them
are processed (WeCom throttling sends, a slow API); if their lease ran out meanwhile, a second
worker would claim and process them too, and a reply would go out twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from sqlalchemy import select

from crm_core.db import create_engine, session_factory
from crm_core.inbox import InboundItem, InboxService
from crm_core.migrate import upgrade_async
from crm_core.models import InboxItem
from scrm.queue_worker import QueueWorker

LEASE_SECONDS = 1.0


@pytest.fixture
async def sessions(backend):
    if backend.name == "sqlite":
        pytest.skip("a SQLite database has one process and one worker per queue: nobody else can take a row")
    await upgrade_async(backend.database_url)
    engine = create_engine(backend.database_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_rows_waiting_behind_a_slow_one_keep_their_lease(sessions):
    async with sessions() as session:
        for key in ("slow", "next"):  # claimed oldest first
            await InboxService(session).stage_many([InboundItem(key, "test", "")])
        await session.commit()
    processed: Counter[str] = Counter()
    slow_may_finish = asyncio.Event()

    async def process(session, row: InboxItem) -> dict:
        processed[row.dedup_key] += 1
        if row.dedup_key == "slow":
            await slow_may_finish.wait()
        return {"status": "done"}

    first = QueueWorker("inbox", InboxItem, sessions, process, max_attempts=3, lease_seconds=LEASE_SECONDS)
    second = QueueWorker("inbox", InboxItem, sessions, process, max_attempts=3, lease_seconds=LEASE_SECONDS)
    busy = asyncio.create_task(first.run_once())
    try:
        claimed_until = await lease_of(sessions, "next", when=lambda row: row.locked_by == first.worker_id)
        # Wait until the lease taken at the claim is over, and has been renewed since.
        await lease_of(sessions, "next", when=lambda row: row.available_at > claimed_until
                       and time.time() > claimed_until.timestamp() + 0.2)
        assert await second.run_once() == 0, "the second worker took a row the first still holds"
    finally:
        slow_may_finish.set()
        await busy
    async with sessions() as session:
        statuses = dict((await session.execute(select(InboxItem.dedup_key, InboxItem.status))).all())
    assert statuses == {"slow": "done", "next": "done"}
    assert processed == {"slow": 1, "next": 1}


async def lease_of(sessions, dedup_key: str, *, when, timeout: float = 15.0):
    """The row's lease expiry once `when(row)` holds (checked every 50 ms, for at most `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with sessions() as session:
            row = await session.scalar(select(InboxItem).where(InboxItem.dedup_key == dedup_key))
        if row is not None and when(row):
            return row.available_at
        await asyncio.sleep(0.05)
    raise AssertionError(f"{dedup_key}: condition not met within {timeout:.0f} s")
