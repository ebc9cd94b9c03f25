"""WeCom silently drops app messages past 30 a minute to one member: the sender keeps under that
limit across processes (Redis), defers the rest to the next minute without using up their
attempts, and delivers every one of them exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from crm_core.models import OutboxItem
from crm_core.outbox import OutboxService
from scrm import keys

MINUTE = datetime(2026, 11, 29, 1, 0, 10, tzinfo=timezone.utc)


async def drain(service) -> None:
    worker = service.app[keys.OUTBOX_WORKERS][0]
    while await worker.run_once():
        pass


def delivered(service, userid: str) -> list[str]:
    return [m["text"]["content"] for m in service.sim.sent_app_messages if m["touser"] == userid]


async def test_a_busy_member_gets_30_a_minute_and_the_rest_next_minute_exactly_once(service):
    await service.stop_background_workers()
    limit = service.app[keys.OUTBOX_WORKERS][0].process.member_limit
    limit.clock = lambda: MINUTE
    async with service.sessions() as session:
        outbox = OutboxService(session)
        for i in range(35):
            await outbox.enqueue(idempotency_key=f"burst:{i}", kind="app_message",
                                 payload={"touser": "liuyang", "msgtype": "text", "text": {"content": f"提醒 {i}"}})
        for i in range(2):
            await outbox.enqueue(idempotency_key=f"other:{i}", kind="app_message",
                                 payload={"touser": "lina", "msgtype": "text", "text": {"content": f"你好 {i}"}})
        await session.commit()

    await drain(service)
    assert len(delivered(service, "liuyang")) == 30
    assert len(delivered(service, "lina")) == 2  # the limit is per member
    async with service.sessions() as session:
        waiting = (await session.scalars(select(OutboxItem).where(OutboxItem.status == "pending"))).all()
    assert len(waiting) == 5
    assert all(row.attempts == 0 and "30 app messages a minute" in row.last_error for row in waiting)
    assert all(row.available_at > datetime.now(timezone.utc) + timedelta(seconds=40) for row in waiting)

    # The next minute: the deferred five go out, nothing is sent twice.
    limit.clock = lambda: MINUTE + timedelta(minutes=1)
    async with service.sessions() as session:
        await session.execute(update(OutboxItem).where(OutboxItem.status == "pending")
                              .values(available_at=datetime.now(timezone.utc)))
        await session.commit()
    await drain(service)
    texts = delivered(service, "liuyang")
    assert len(texts) == 35 and len(set(texts)) == 35
