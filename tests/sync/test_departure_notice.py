"""A member's departure commits with its callback at once; the managers' notice of the customers WeCom
holds for a new owner follows through the outbox, retried while WeCom's unassigned list fails, and
reaches each manager once (scrm.ingest.departures)."""

from __future__ import annotations

from sqlalchemy import select, update

from connectors.wecom.simulator import directory as company
from crm_core.db import utcnow
from crm_core.models import InboxItem, OutboxItem, Staff
from scrm import keys
from tests.support.chat import sync_directory

NOTICE = "李娜 已离职，企业微信里有 3 位客户等待分配新的负责人"
UNASSIGNED_LIST = "externalcontact/get_unassigned_list"


def notices(chat) -> list[str]:
    return [r for r in chat.replies("liuyang") if NOTICE in r]


async def departure_rows(chat) -> list[OutboxItem]:
    async with chat.service.sessions() as session:
        return list((await session.scalars(select(OutboxItem).where(OutboxItem.kind == "departure_notice"))).all())


async def lina(chat) -> Staff:
    async with chat.service.sessions() as session:
        return await session.scalar(select(Staff).where(Staff.userid == "lina"))


async def test_a_departure_commits_while_wecom_fails_and_the_notice_follows_once_it_recovers(chat) -> None:
    service = chat.service
    await sync_directory(service.app[keys.SESSIONS], service.sim)
    await chat.onboard()
    await service.stop_background_workers()  # the workers are stepped by hand below
    company.leave(service.sim, "lina")
    service.sim.fail_next(UNASSIGNED_LIST, errcode=-1, times=3)  # 系统繁忙, three times over

    status, _ = await service.wecom.change_contact("delete_user", userid="lina")
    assert status == 200
    assert sum([await inbox.run_once() for inbox in service.app[keys.INBOX_WORKERS]]) == 1
    async with service.sessions() as session:
        callbacks = (await session.scalars(select(InboxItem.status))).all()
    assert set(callbacks) == {"done"}  # the callback itself succeeded ...
    assert not (await lina(chat)).active  # ... and her access is gone at once
    [row] = await departure_rows(chat)
    assert (row.status, row.attempts) == ("pending", 0)  # WeCom not asked inside the callback

    for outbox in service.app[keys.OUTBOX_WORKERS]:
        await outbox.run_once()
    [row] = await departure_rows(chat)
    assert row.status == "pending" and row.attempts == 1 and row.last_error  # WeCom failed: retried later
    assert notices(chat) == []

    await service.settle_past_backoffs()  # WeCom answers again after its third failure
    [row] = await departure_rows(chat)
    assert (row.status, row.attempts) == ("sent", 4)
    assert len(notices(chat)) == 1

    async with service.sessions() as session:  # the step done again (a lease that ran out, say): nobody told twice
        await session.execute(update(OutboxItem).where(OutboxItem.id == row.id)
                              .values(status="pending", available_at=utcnow(), locked_by=""))
        await session.commit()
    await service.settle_past_backoffs()
    assert len(notices(chat)) == 1
    assert (await departure_rows(chat))[0].status == "sent"


async def test_a_repeated_delete_user_callback_tells_nobody_twice(chat) -> None:
    service = chat.service
    await sync_directory(service.app[keys.SESSIONS], service.sim)
    await chat.onboard()
    company.leave(service.sim, "lina")
    for _ in range(2):
        status, _ = await service.wecom.change_contact("delete_user", userid="lina")
        assert status == 200
        await service.settle()
    assert len(notices(chat)) == 1 and len(await departure_rows(chat)) == 1
