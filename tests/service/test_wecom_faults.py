"""WeCom failing in every way it does (5xx, "system busy", rate limits, an expired token) delays a
reply but never loses or duplicates it, and the row's history says what happened."""

from __future__ import annotations

from sqlalchemy import select

from crm_core.models import OutboxItem


async def test_a_reply_survives_every_kind_of_wecom_failure_and_arrives_once(service):
    await service.stop_background_workers()
    sim = service.sim
    sim.fail_next("message/send", http_status=502)
    sim.fail_next("message/send", errcode=-1)  # 系统繁忙
    sim.fail_next("message/send", errcode=45009)  # 接口调用超过限制
    sim.fail_next("message/send", errcode=45033)  # 接口并发调用超过限制
    await service.wecom.text("zhangwei", "帮助", msg_id=770001)
    await service.settle_past_backoffs()
    sim.expire_all_tokens()  # and the token runs out before the last try: refreshed, then sent
    await service.settle_past_backoffs()

    replies = [m for m in sim.sent_app_messages if m["touser"] == "zhangwei"]
    assert len(replies) == 1 and "可用命令" in replies[0]["text"]["content"]
    async with service.sessions() as session:
        [row] = (await session.scalars(select(OutboxItem))).all()
    assert row.status == "sent" and row.attempts == 5  # four failures, then the one that went through
    assert row.last_error == ""  # delivered: no stale error left for `scrm outbox failed`


async def test_a_send_that_keeps_failing_is_parked_with_its_error_and_retried_on_request(service):
    await service.stop_background_workers()
    service.sim.fail_next("message/send", http_status=503, times=service.settings.outbox_max_attempts)
    await service.wecom.text("zhangwei", "帮助", msg_id=770002)
    await service.settle_past_backoffs()
    async with service.sessions() as session:
        [row] = (await session.scalars(select(OutboxItem))).all()
    assert row.status == "parked" and row.attempts == service.settings.outbox_max_attempts
    assert "503" in row.last_error
    assert [m for m in service.sim.sent_app_messages if m["touser"] == "zhangwei"] == []
