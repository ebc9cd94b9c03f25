"""Birthday and festival greetings: the right customers on the right day, through a channel WeCom
allows, once each however the jobs are run, never to customers who did not agree or opted out,
and never in the night."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, datetime, time, timedelta, timezone
from functools import partial
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connectors.wecom.inbound import kf_message_json
from crm_core.birthdays import parse_birthday
from crm_core.care import QuietHours, default_care_policy
from crm_core.models import CareDelivery, Customer, CustomerIdentity, CustomerTag, InboxItem, Message, OutboxItem, Staff
from scheduler.care import JOBS, send_birthday_greetings, send_festival_greetings
from scheduler.runner import LEADER_KEY, JobContext, ScheduledJob, Scheduler
from scrm.ingest.analysis import MessageAnalysis
from scrm.ingest.care_optout import CareOptOut
from scrm.ingest.context import IngestContext
from scrm.ingest.kf import KfMessages
from scrm.ingest.pipeline import Pipeline
from tests.nlp.opt_out_phrasings import opt_out_phrasings, sample
from tests.support.chat import SHANGHAI as TZ
from tests.support.scheduling import JobClock

KFID = "wkCareKf01"
NINE = time(9, 0)


def at(day: date, clock: time = NINE) -> datetime:
    return datetime.combine(day, clock, tzinfo=TZ)


def context(sessions, day: date) -> JobContext:
    return JobContext(sessions, at(day), TZ)


async def birthdays(sessions, day: date, **kwargs) -> str:
    """The job as the scheduler runs it at 09:00 on `day`, on time."""
    return await send_birthday_greetings(context(sessions, day), clock=lambda: at(day), **kwargs)


async def add_customer(session, name: str, *, owner: Staff | None = None, birthday: str | None = None,
                       consent: bool = True, opted_out: datetime | None = None, lifecycle: str = "customer",
                       contact: bool = True, kf_at: datetime | None = None, tags: tuple[str, ...] = ()) -> Customer:
    customer = Customer(name=name, owner_id=owner.id if owner else None, care_consent=consent,
                        care_opted_out_at=opted_out, lifecycle=lifecycle)
    if birthday:
        customer.birthday = parse_birthday(birthday)
    session.add(customer)
    await session.flush()
    if contact:
        session.add(CustomerIdentity(customer_id=customer.id, channel="wecom", external_id=f"wm_{customer.id}"))
    if kf_at is not None:
        session.add(Message(channel="wecom_kf", direction="in", external_msg_id=f"kf-{customer.id}", msg_type="text",
                            sender=f"wm_{customer.id}", recipient=KFID, text="你好，在吗", customer_id=customer.id,
                            sent_at=kf_at))
    for tag in tags:
        session.add(CustomerTag(customer_id=customer.id, name=tag))
    await session.flush()
    return customer


async def add_rep(session, userid: str = "zhangwei", name: str = "张伟") -> Staff:
    rep = Staff(userid=userid, name=name)
    session.add(rep)
    await session.flush()
    return rep


async def outbox(sessions) -> list[OutboxItem]:
    async with sessions() as session:
        return list((await session.scalars(select(OutboxItem).order_by(OutboxItem.id))).all())


async def deliveries(sessions) -> list[CareDelivery]:
    async with sessions() as session:
        return list((await session.scalars(select(CareDelivery).order_by(CareDelivery.id))).all())


def greeted(rows: list[OutboxItem]) -> list[str]:
    """The customer-facing keys, i.e. care:<occasion>:<customer id>:<date>, in order."""
    return [r.idempotency_key for r in rows if r.kind != "app_message"]


def content(row: OutboxItem) -> str:
    return row.payload["text"]["content"]


# -- pure rules -------------------------------------------------------------------------------------

def test_quiet_hours_hold_a_send_until_the_window_ends():
    night = QuietHours(time(21, 0), time(8, 0))
    day = date(2026, 11, 29)
    assert night.next_allowed(at(day), TZ) == at(day)
    assert night.next_allowed(at(day, time(20, 59)), TZ) == at(day, time(20, 59))
    assert night.next_allowed(at(day, time(21, 0)), TZ) == at(day + timedelta(days=1), time(8, 0))
    assert night.next_allowed(at(day, time(22, 30)), TZ) == at(day + timedelta(days=1), time(8, 0))
    assert night.next_allowed(at(day, time(3, 0)), TZ) == at(day, time(8, 0))
    assert night.next_allowed(at(day, time(8, 0)), TZ) == at(day, time(8, 0))
    # A UTC instant is judged by its local time: 14:30 UTC is 22:30 in Shanghai.
    assert night.next_allowed(datetime(2026, 11, 29, 14, 30, tzinfo=timezone.utc), TZ) == at(day + timedelta(days=1), time(8))
    lunch = QuietHours(time(12, 0), time(14, 0))
    assert lunch.next_allowed(at(day, time(13, 0)), TZ) == at(day, time(14, 0))
    assert lunch.next_allowed(at(day, time(23, 0)), TZ) == at(day, time(23, 0))
    assert QuietHours(time(8), time(8)).next_allowed(at(day, time(3)), TZ) == at(day, time(3))
    # Where clocks change, "08:00" is still 08:00 on the wall: New York leaves DST that night.
    new_york = ZoneInfo("America/New_York")
    held = night.next_allowed(datetime(2026, 10, 31, 22, 30, tzinfo=new_york), new_york)
    assert held == datetime(2026, 11, 1, 13, 0, tzinfo=timezone.utc)  # 08:00 EST, not 08:00 EDT


# -- who is greeted, and when ------------------------------------------------------------------------

async def test_solar_and_lunar_birthdays_are_greeted_on_their_day_two_years_running(env):  # noqa: F811
    sessions, _ = env
    async with sessions() as session:
        rep = await add_rep(session)
        solar = await add_customer(session, "赵磊", owner=rep, birthday="11月29日")
        lunar = await add_customer(session, "钱芳", owner=rep, birthday="农历三月初二")
        await session.commit()
    # 农历三月初二 is 2026-04-18 and 2027-04-08.
    for day in (date(2026, 4, 17), date(2026, 4, 18), date(2026, 11, 29), date(2026, 11, 30),
                date(2027, 4, 7), date(2027, 4, 8), date(2027, 11, 29)):
        await birthdays(sessions, day)
    assert greeted(await outbox(sessions)) == [
        f"care:birthday:{lunar.id}:2026-04-18", f"care:birthday:{solar.id}:2026-11-29",
        f"care:birthday:{lunar.id}:2027-04-08", f"care:birthday:{solar.id}:2027-11-29",
    ]


async def test_29_february_is_celebrated_on_28_february_in_common_years(env):  # noqa: F811
    sessions, _ = env
    async with sessions() as session:
        rep = await add_rep(session)
        leapling = await add_customer(session, "孙悦", owner=rep, birthday="2月29日")
        await session.commit()
    for day in (date(2027, 2, 27), date(2027, 2, 28), date(2027, 3, 1), date(2028, 2, 28), date(2028, 2, 29)):
        await birthdays(sessions, day)
    assert greeted(await outbox(sessions)) == [f"care:birthday:{leapling.id}:2027-02-28",
                                               f"care:birthday:{leapling.id}:2028-02-29"]


async def test_no_consent_opted_out_or_churned_means_no_greeting(env):  # noqa: F811
    sessions, _ = env
    today = date(2026, 11, 29)
    async with sessions() as session:
        rep = await add_rep(session)
        agreed = await add_customer(session, "赵磊", owner=rep, birthday="11-29")
        await add_customer(session, "钱芳", owner=rep, birthday="11-29", consent=False)
        await add_customer(session, "孙悦", owner=rep, birthday="11-29", opted_out=at(today) - timedelta(days=30))
        await add_customer(session, "李强", owner=rep, birthday="11-29", lifecycle="churned")
        await session.commit()
    await birthdays(sessions, today)
    assert greeted(await outbox(sessions)) == [f"care:birthday:{agreed.id}:2026-11-29"]
    assert [d.customer_id for d in await deliveries(sessions)] == [agreed.id]
    [notice] = [r for r in await outbox(sessions) if r.kind == "app_message"]
    assert "赵磊" in content(notice) and "钱芳" not in content(notice) and "孙悦" not in content(notice)


def _kf_writer(sessions, customer, now):
    """The customer writing through 微信客服, analysed and reacted to as in the service."""
    context = IngestContext(wecom=None, timezone=TZ, reactions=[MessageAnalysis(), CareOptOut(clock=lambda: now)])
    pipeline = Pipeline(context, [KfMessages(context)])

    async def writes(text: str, msgid: str) -> None:
        body = {"msgid": msgid, "open_kfid": KFID, "external_userid": f"wm_{customer.id}", "send_time": int(now.timestamp()),
                "origin": 3, "msgtype": "text", "text": {"content": text}}
        async with sessions() as session:
            await pipeline(session, InboxItem(dedup_key=f"wecom:kfmsg:{msgid}", source="wecom_kf", payload=kf_message_json(body)))
            await session.commit()
    return writes


async def test_a_customer_who_writes_tuiding_is_opted_out_confirmed_once_and_never_greeted(env):  # noqa: F811
    sessions, _ = env
    today = date(2026, 11, 29)
    async with sessions() as session:
        rep = await add_rep(session)
        customer = await add_customer(session, "周敏", owner=rep, birthday="11-30")
        await session.commit()
    now = at(today, time(15, 0))
    writes = _kf_writer(sessions, customer, now)
    await writes("退订", "m1")
    await writes("TD", "m2")
    async with sessions() as session:
        stored = await session.get(Customer, customer.id)
    assert stored.care_opted_out_at == now and not stored.may_receive_care
    [confirmation] = [r for r in await outbox(sessions) if r.kind == "kf_message"]
    # It says what stops (care, campaigns) and what does not (replies to their own questions).
    text = content(confirmation)
    assert "关怀消息" in text and "活动推广" in text and "仍会在这里回复您" in text
    assert (confirmation.payload["touser"], confirmation.payload["open_kfid"]) == (f"wm_{customer.id}", KFID)
    [told] = [r for r in await outbox(sessions) if r.kind == "app_message"]
    assert told.payload["touser"] == rep.userid and "周敏" in content(told) and "退订" in content(told)
    # The birthday comes the next day, with the kf window still open: nothing is sent.
    before = [r.id for r in await outbox(sessions)]
    assert "0 by kf, 0 group-send task(s), 0 without channel" in await birthdays(sessions, today + timedelta(days=1))
    assert [r.id for r in await outbox(sessions)] == before


@pytest.mark.parametrize("text", ["别再给我发这些节日祝福了", *sample(opt_out_phrasings(), 6)])
async def test_each_way_of_saying_stop_stops_care_messages(env, text):  # noqa: F811
    sessions, _ = env
    today = date(2026, 11, 29)
    async with sessions() as session:
        customer = await add_customer(session, "吴敏", owner=await add_rep(session), birthday="11-30")
        await session.commit()
    await _kf_writer(sessions, customer, at(today, time(15, 0)))(text, "m1")
    async with sessions() as session:
        assert not (await session.get(Customer, customer.id)).may_receive_care
    assert "0 by kf" in await birthdays(sessions, today + timedelta(days=1))


@pytest.mark.parametrize("text", ["先别发货，我地址要改", "不要再发错货了", "会员自动续费怎么取消", "你好"])
async def test_look_alikes_leave_care_consent_alone(env, text):  # noqa: F811
    sessions, _ = env
    today = date(2026, 11, 29)
    async with sessions() as session:
        customer = await add_customer(session, "郑洁", owner=await add_rep(session), birthday="11-30")
        await session.commit()
    await _kf_writer(sessions, customer, at(today, time(15, 0)))(text, "m1")
    async with sessions() as session:
        assert (await session.get(Customer, customer.id)).may_receive_care


# -- channels -----------------------------------------------------------------------------------------

async def test_the_channel_is_kf_while_the_window_is_open_else_a_task_for_the_rep_else_the_rep_is_asked(env):  # noqa: F811
    sessions, _ = env
    today = date(2026, 11, 29)
    async with sessions() as session:
        rep = await add_rep(session)
        chatting = await add_customer(session, "赵磊", owner=rep, birthday="11-29", kf_at=at(today) - timedelta(hours=2),
                                      tags=("VIP",))
        contact = await add_customer(session, "钱芳", owner=rep, birthday="11-29", kf_at=at(today) - timedelta(days=3))
        unreachable = await add_customer(session, "孙悦", owner=rep, birthday="11-29", contact=False)
        orphan = await add_customer(session, "李强", birthday="11-29", contact=False)
        await session.commit()
    summary = await birthdays(sessions, today)
    assert summary == ("birthday 2026-11-29: 1 by kf, 1 group-send task(s), 2 without channel, 0 already decided; "
                       "1 rep notice(s)")
    kf, task, notice = await outbox(sessions)
    assert kf.kind == "kf_message" and (kf.payload["touser"], kf.payload["open_kfid"]) == (f"wm_{chatting.id}", KFID)
    assert content(kf).startswith("尊敬的赵磊") and "张伟" in content(kf)  # the VIP wording, signed by the rep
    assert task.kind == "msg_template" and task.payload["chat_type"] == "single"
    assert task.payload["external_userid"] == [f"wm_{contact.id}"] and task.payload["sender"] == "zhangwei"
    assert content(task).startswith("亲爱的钱芳") and "张伟" in content(task)
    assert notice.kind == "app_message" and notice.payload["touser"] == "zhangwei"
    told = content(notice)
    assert "钱芳" in told and "群发助手" in told and "孙悦" in told and "亲自问候" in told and "李强" not in told
    by_customer = {d.customer_id: d for d in await deliveries(sessions)}
    assert {c: (d.channel, d.status) for c, d in by_customer.items()} == {
        chatting.id: ("kf", "queued"), contact.id: ("template", "queued"),
        unreachable.id: ("none", "no_channel"), orphan.id: ("none", "no_channel")}
    assert by_customer[chatting.id].outbox_key == kf.idempotency_key
    assert by_customer[contact.id].outbox_key == task.idempotency_key
    assert by_customer[unreachable.id].outbox_key == notice.idempotency_key
    assert by_customer[orphan.id].staff_id is None  # nobody to tell


async def test_a_late_run_waits_for_the_morning_and_then_needs_the_window_still_open(env):  # noqa: F811
    sessions, _ = env
    today = date(2026, 11, 29)
    async with sessions() as session:
        rep = await add_rep(session)
        # Wrote via kf 26 h before 09:00: open now, but 49 h old at 08:00 tomorrow.
        customer = await add_customer(session, "赵磊", owner=rep, birthday="11-29", kf_at=at(today) - timedelta(hours=26))
        await session.commit()
    # The scheduler was down all day and catches the 09:00 run up at 22:30.
    await send_birthday_greetings(context(sessions, today), clock=lambda: at(today, time(22, 30)))
    task, notice = await outbox(sessions)
    morning = at(today + timedelta(days=1), time(8, 0))
    assert task.kind == "msg_template" and task.idempotency_key == f"care:birthday:{customer.id}:2026-11-29"
    assert task.available_at == morning and notice.available_at == morning


# -- once only ----------------------------------------------------------------------------------------

async def test_concurrent_runs_and_two_schedulers_greet_each_customer_once(env):  # noqa: F811
    sessions, (redis_a, redis_b) = env
    today = date(2026, 11, 29)
    async with sessions() as session:
        rep = await add_rep(session)
        ids = [(await add_customer(session, f"客户{i}", owner=rep, birthday="11-29",
                                   kf_at=at(today) - timedelta(hours=1) if i % 2 else None)).id for i in range(6)]
        await session.commit()
    await asyncio.gather(birthdays(sessions, today, batch_size=2), birthdays(sessions, today, batch_size=2))
    clock = JobClock(at(today, time(9, 0, 5)))
    job = ScheduledJob("care.birthdays", "0 9 * * *", "birthday greetings", partial(send_birthday_greetings, clock=clock))
    schedulers = [Scheduler([job], sessions, redis, TZ, clock=clock) for redis in (redis_a, redis_b)]
    await asyncio.gather(*(s.tick() for s in schedulers))
    await redis_a.delete(LEADER_KEY)  # a second leader, and an operator's run for another time
    await asyncio.gather(schedulers[1].tick(), schedulers[0].run_job("care.birthdays", at(today, time(9, 5))))
    rows = await outbox(sessions)
    assert sorted(greeted(rows)) == sorted(f"care:birthday:{i}:2026-11-29" for i in ids)
    assert [r.kind for r in rows].count("app_message") == 1
    assert sorted(d.customer_id for d in await deliveries(sessions)) == sorted(ids)


async def test_a_crash_after_the_first_batch_is_resumed_without_duplicates_or_gaps(env):  # noqa: F811
    sessions, _ = env
    today = date(2026, 11, 29)
    async with sessions() as session:
        rep = await add_rep(session)
        ids = [(await add_customer(session, f"客户{i}", owner=rep, birthday="11-29")).id for i in range(5)]
        await session.commit()

    async def crash(_last_id: int) -> None:
        raise RuntimeError("killed after the first batch")

    with pytest.raises(RuntimeError):
        await birthdays(sessions, today, batch_size=2, after_batch=crash)
    assert [d.customer_id for d in await deliveries(sessions)] == ids[:2]
    assert await birthdays(sessions, today, batch_size=2) == (
        "birthday 2026-11-29: 0 by kf, 3 group-send task(s), 0 without channel, 0 already decided; 1 rep notice(s)")
    rows = await outbox(sessions)
    assert greeted(rows) == [f"care:birthday:{i}:2026-11-29" for i in ids]
    [notice] = [r for r in rows if r.kind == "app_message"]
    assert "5 位客户" in content(notice)  # the notice counts the first run's customers too
    assert [d.customer_id for d in await deliveries(sessions)] == ids


# -- festivals ----------------------------------------------------------------------------------------

async def test_festivals_greet_every_consenting_customer_once_in_their_segment(env):  # noqa: F811
    sessions, _ = env
    mid_autumn = date(2026, 9, 25)  # 农历八月十五
    async with sessions() as session:
        rep = await add_rep(session)
        vip = await add_customer(session, "赵磊", owner=rep, tags=("VIP",))
        plain = [await add_customer(session, name, owner=rep) for name in ("钱芳", "孙悦")]
        await add_customer(session, "李强", owner=rep, consent=False)
        await session.commit()
    ctx = context(sessions, mid_autumn)
    assert await send_festival_greetings(ctx, clock=lambda: ctx.now, batch_size=2) == (
        "festival:mid_autumn 2026-09-25: 0 by kf, 3 group-send task(s), 0 without channel, 0 already decided; "
        "1 rep notice(s)")
    assert "0 group-send task(s)" in await send_festival_greetings(ctx, clock=lambda: ctx.now, batch_size=2)
    rows = await outbox(sessions)
    assert greeted(rows) == [f"care:festival:mid_autumn:{c.id}:2026-09-25" for c in (vip, *plain)]
    texts = [content(r) for r in rows if r.kind == "msg_template"]
    assert texts[0].startswith("尊敬的赵磊") and texts[1].startswith("亲爱的钱芳，中秋快乐")
    [notice] = [r for r in rows if r.kind == "app_message"]
    assert "中秋节" in content(notice) and "李强" not in content(notice)
    # An ordinary day greets nobody, and a disabled festival is skipped.
    assert await send_festival_greetings(context(sessions, date(2026, 9, 26))) == "no festival on 2026-09-26"
    policy = default_care_policy()
    off = dataclasses.replace(policy, festivals=tuple(dataclasses.replace(f, enabled=False) for f in policy.festivals))
    national_day = context(sessions, date(2026, 10, 1))
    assert await send_festival_greetings(national_day, policy=off) == "no festival on 2026-10-01"


def test_the_jobs_are_exported_for_the_schedule():
    assert JOBS == {"care.birthdays": send_birthday_greetings, "care.festivals": send_festival_greetings}
