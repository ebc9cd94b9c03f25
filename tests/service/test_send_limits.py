"""WeCom silently drops app messages past 30 a minute or 1,000 an hour to one member: the sender
keeps under both limits across processes (Redis), defers the rest until a slot frees without using
up their attempts, and delivers every one of them exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sqlalchemy import select, update

from crm_core.models import OutboxItem
from crm_core.outbox import OutboxService
from scrm import keys
from scrm.delivery.send_limits import MINUTE_WINDOW, SLACK_SECONDS, DeferredSend

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
    limit.clock, service.sim.now = (lambda: MINUTE), MINUTE.timestamp  # WeCom's clock and ours agree
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

    # A minute (and the sender's slack) later: the deferred five go out, nothing is sent twice.
    limit.clock = lambda: MINUTE + timedelta(minutes=1, seconds=SLACK_SECONDS)
    service.sim.now = (MINUTE + timedelta(minutes=1, seconds=SLACK_SECONDS)).timestamp
    async with service.sessions() as session:
        await session.execute(update(OutboxItem).where(OutboxItem.status == "pending")
                              .values(available_at=datetime.now(timezone.utc)))
        await session.commit()
    await drain(service)
    texts = delivered(service, "liuyang")
    assert len(texts) == 35 and len(set(texts)) == 35
    assert service.sim.over_limit_app_messages == []  # WeCom, which drops past the limit, dropped none


async def test_the_minute_slides_so_no_60_messages_pass_in_the_seconds_around_a_full_minute(service):
    """Counted by clock minute, 30 at 01:00:50 and 30 more at 01:01:05 would all pass; WeCom may
    count the trailing minute and drop the second 30."""
    limit = service.app[keys.OUTBOX_WORKERS][0].process.member_limit
    limit.clock = lambda: MINUTE + timedelta(seconds=40)  # 01:00:50
    for _ in range(30):
        await limit.take(["liuyang"])
    limit.clock = lambda: MINUTE + timedelta(seconds=55)  # 01:01:05
    with pytest.raises(DeferredSend, match="30 app messages a minute") as deferred:
        await limit.take(["liuyang", "lina"])
    assert 45 + SLACK_SECONDS <= deferred.value.retry_after <= 50 + SLACK_SECONDS  # until 01:01:50 (and slack), spread 5 s
    await limit.take(["lina"])  # refused together, counted for neither


async def test_a_member_gets_at_most_1000_an_hour_and_the_next_waits_for_the_oldest_to_age_out(service):
    limit = service.app[keys.OUTBOX_WORKERS][0].process.member_limit
    for minute in range(34):  # 30 a minute (and slack), the most the minute allows: 1,000 by 01:34
        limit.clock = lambda minute=minute: MINUTE + minute * timedelta(seconds=MINUTE_WINDOW)
        for _ in range(30 if minute < 33 else 10):
            await limit.take(["liuyang"])
    limit.clock = lambda: MINUTE + timedelta(minutes=40)
    with pytest.raises(DeferredSend, match="1000 app messages an hour") as deferred:
        await limit.take(["liuyang"])
    wait = 20 * 60 + SLACK_SECONDS  # until 02:00:10 (and slack), when the first 30 are an hour old
    assert wait <= deferred.value.retry_after <= wait + 5
    limit.clock = lambda: MINUTE + timedelta(hours=1, seconds=SLACK_SECONDS)
    await limit.take(["liuyang"])
