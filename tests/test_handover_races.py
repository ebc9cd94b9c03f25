"""Two deciders of one handover at the same moment (the follow job in two schedulers, or the job and a
transfer_fail callback) on PostgreSQL: each customer is decided once and the handover settles once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text

from crm_core.db import create_engine, session_factory
from crm_core.handover import HandoverService
from crm_core.models import (AuditEntry, Customer, CustomerFollower, CustomerIdentity, Handover, HandoverCustomer,
                             OutboxItem, Staff)


@pytest.fixture
async def sessions(backend):
    if backend.name != "postgres":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time")
    engine = create_engine(backend.database_url)
    yield session_factory(engine)
    await engine.dispose()


async def waiting_handover(sessions) -> tuple[int, list[str]]:
    async with sessions() as session:
        lina, zhang, boss = (Staff(userid=u, name=n, role=r, active=a) for u, n, r, a in
                             (("lina", "李娜", "sales", False), ("zhangwei", "张伟", "sales", True),
                              ("liuyang", "刘洋", "manager", True)))
        session.add_all([lina, zhang, boss])
        await session.flush()
        for external in ("wmRaceA", "wmRaceB"):
            customer = Customer(name=external, owner_id=lina.id)
            session.add(customer)
            await session.flush()
            session.add_all([CustomerIdentity(customer_id=customer.id, channel="wecom", external_id=external),
                             CustomerFollower(customer_id=customer.id, staff_id=lina.id, remark_mobiles=[], tag_ids=[])])
        started = await HandoverService(session).start(lina, zhang, by=boss)
        rows = (await session.scalars(select(HandoverCustomer).order_by(HandoverCustomer.id))).all()
        for row in rows:
            row.state = "waiting"
        await session.commit()
    return started.handover_id, [row.external_userid for row in rows]


async def blocked_on_a_lock(sessions) -> bool:
    async with sessions() as session:
        return bool(await session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")))


async def test_the_last_two_customers_refusing_at_once_settle_the_handover_once(sessions):
    """Two transfer_fail callbacks for the handover's last two customers, handled by two workers:
    without the handover's lock each would still see the other's customer waiting, and neither settle."""
    handover_id, (first, second) = await waiting_handover(sessions)
    async with sessions() as a, sessions() as b:
        takeover_a = await a.scalar(select(Staff).where(Staff.userid == "zhangwei"))
        takeover_b = await b.scalar(select(Staff).where(Staff.userid == "zhangwei"))
        assert await HandoverService(a).transfer_failed(takeover_a, first, "customer_refused") == 1
        late = asyncio.create_task(HandoverService(b).transfer_failed(takeover_b, second, "customer_refused"))
        while not await blocked_on_a_lock(sessions):  # B waits on the handover A holds
            assert not late.done(), "B finished without waiting for A's lock"
            await asyncio.sleep(0)
        await a.commit()
        assert await late == 1
        await b.commit()
    async with sessions() as session:
        handover = await session.get(Handover, handover_id)
        summaries = (await session.scalars(select(OutboxItem).where(
            OutboxItem.idempotency_key == f"handover:{handover_id}:summary"))).all()
        settled = await session.scalar(select(func.count()).where(AuditEntry.action == "handover.settled"))
    assert handover.settled_at is not None and settled == 1
    [summary] = summaries
    assert "0 位已由 张伟 接手，2 位客户拒绝" in summary.payload["text"]["content"]
