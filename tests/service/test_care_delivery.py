"""A birthday greeting through the running service: the job decides, the sender delivers to the
WeCom simulator, and the care record follows the send (kf), or waits for the rep (group-send task)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from crm_core.birthdays import Birthday
from crm_core.models import CareDelivery, Customer
from scheduler.care import send_birthday_greetings
from scheduler.runner import JobContext
from scrm import keys
from tests.support.service import external_id

MORNING = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)  # 09:00 in Shanghai


async def greet_today(desk, name: str) -> Customer:
    async with desk.service.sessions() as session:
        customer = (await session.scalars(select(Customer).where(Customer.name == name))).one()
        customer.birthday = Birthday(11, 29, year=1988)
        customer.care_consent = True
        await session.commit()
    return customer


async def run_birthdays(desk) -> str:
    tz = desk.service.settings.tz
    ctx = JobContext(desk.service.app[keys.SESSIONS], MORNING.astimezone(tz), tz)
    summary = await send_birthday_greetings(ctx, clock=lambda: desk.now)
    await desk.service.settle()
    return summary


async def deliveries(desk) -> list[CareDelivery]:
    async with desk.service.sessions() as session:
        return list((await session.scalars(select(CareDelivery).order_by(CareDelivery.id))).all())


async def test_a_customer_who_wrote_today_is_greeted_by_kf_once(desk):
    desk.set_clock(MORNING)
    await desk.onboard("孙丽")
    await greet_today(desk, "孙丽")
    desk.advance(minutes=20)
    await desk.customer_writes("孙丽", "你好，想问下发货时间")

    assert "1 by kf" in await run_birthdays(desk)
    [greeting] = [text for text in desk.kf_sent("孙丽") if "生日" in text]
    assert "孙丽" in greeting
    [delivery] = await deliveries(desk)
    assert (delivery.channel, delivery.status) == ("kf", "sent")

    assert "0 by kf" in await run_birthdays(desk)  # a re-run (second scheduler, catch-up) sends nothing
    assert len([text for text in desk.kf_sent("孙丽") if "生日" in text]) == 1


async def test_without_a_kf_window_the_rep_gets_a_group_send_task_to_confirm(desk):
    desk.set_clock(MORNING)
    await desk.onboard("孙丽")
    await greet_today(desk, "孙丽")

    assert "1 group-send task(s)" in await run_birthdays(desk)
    [task] = desk.service.sim.msg_templates
    assert task["sender"] == "zhangwei" and task["external_userid"] == [external_id(desk.service.sim, "孙丽")]
    assert "孙丽" in task["text"]["content"]
    assert any("群发" in reply and "孙丽" in reply for reply in desk.replies("zhangwei"))
    assert desk.kf_sent("孙丽") == []
    [delivery] = await deliveries(desk)
    assert delivery.channel == "template" and delivery.status in ("queued", "sent")
