"""Care messages sent as group-send tasks: what the rep did in WeCom comes back to the delivery,
and a rep who sits on a task is reminded once. Real database, the real outbox sender and the
simulator over HTTP; the job's clock is fixed relative to the moment WeCom got the task."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import fakeredis
import pytest
import redis.asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.wecom.client import WeComClient
from connectors.wecom.simulator.sample_data import sample_state
from connectors.wecom.simulator.server import SimulatorAccessLogger, create_simulator_app
from connectors.wecom.simulator.state import SimulatorState
from crm_core.db import create_engine, session_factory
from crm_core.migrate import upgrade_async
from crm_core.models import CareDelivery, Customer, CustomerIdentity, OutboxItem, Staff
from crm_core.outbox import OutboxService
from scheduler.runner import JobContext, JobFunc
from scrm.delivery.group_sends import make_group_send_sync_job
from scrm.queue_worker import QueueWorker
from scrm.delivery.sender import OutboxSender

TZ = ZoneInfo("Asia/Shanghai")
ZHAO_LEI = "wmDemoZhaoLei0000000000000000001"
SUN_LI = "wmDemoSunLi000000000000000000002"
ZHOU_JIE = "wmDemoZhouJie0000000000000000003"
WU_MIN = "wmDemoWuMin000000000000000000004"  # lina's customer in WeCom
BIRTHDAY = date(2026, 11, 29)


@dataclass
class World:
    sim: SimulatorState
    sessions: async_sessionmaker[AsyncSession]
    wecom: WeComClient
    outbox: QueueWorker
    staff: dict[str, int]

    async def sync(self, at: datetime, job: JobFunc | None = None) -> str:
        """One scheduled run at `at`, then whatever it queued is delivered to WeCom."""
        summary = await (job or make_group_send_sync_job(self.wecom))(JobContext(self.sessions, at.astimezone(TZ), TZ))
        await self.outbox.drain()
        return summary

    async def greet(self, name: str, external_userid: str, rep: str = "zhangwei", occasion: str = "birthday") -> int:
        """What the care job does when the customer's 微信客服 window is closed: a task for the rep."""
        async with self.sessions() as session:
            customer = Customer(name=name)
            session.add(customer)
            await session.flush()
            session.add(CustomerIdentity(customer_id=customer.id, channel="wecom", external_id=external_userid))
            key = f"care:{occasion}:{customer.id}:{BIRTHDAY.isoformat()}"
            await OutboxService(session).enqueue(
                idempotency_key=key, kind="msg_template", customer_id=customer.id, staff_id=self.staff[rep],
                payload={"chat_type": "single", "external_userid": [external_userid], "sender": rep,
                         "text": {"content": f"亲爱的{name}，祝您节日快乐！"}},
            )
            delivery = CareDelivery(customer_id=customer.id, occasion=occasion, occasion_date=BIRTHDAY,
                                    channel="template", status="queued", outbox_key=key, staff_id=self.staff[rep],
                                    detail="segment=standard")
            session.add(delivery)
            await session.commit()
        await self.outbox.drain()
        return delivery.id

    async def task_created_at(self, delivery_id: int) -> datetime:
        """When the sender handed the task to WeCom: the clock reminders and expiry run on."""
        async with self.sessions() as session:
            delivery = await session.get(CareDelivery, delivery_id)
            return await session.scalar(select(OutboxItem.sent_at).where(OutboxItem.idempotency_key == delivery.outbox_key))

    async def delivery(self, delivery_id: int) -> CareDelivery:
        async with self.sessions() as session:
            return await session.get(CareDelivery, delivery_id)

    def msgid(self, external_userid: str) -> str:
        return next(t["msgid"] for t in self.sim.msg_templates if t["external_userid"] == [external_userid])

    def reminders(self, userid: str) -> list[str]:
        return [m["text"]["content"] for m in self.sim.sent_app_messages if m["touser"] == userid]


@pytest.fixture
async def world(backend, aiohttp_server):
    sim = sample_state(corp_id=f"wwtest{uuid.uuid4().hex[:10]}")
    server = await aiohttp_server(create_simulator_app(sim), access_log_class=SimulatorAccessLogger)
    await upgrade_async(backend.database_url)
    engine = create_engine(backend.database_url)
    sessions = session_factory(engine)
    cache = redis.asyncio.Redis.from_url(backend.redis_url) if backend.redis_url else fakeredis.FakeAsyncRedis()
    async with sessions() as session:
        reps = [Staff(userid="zhangwei", name="张伟"), Staff(userid="lina", name="李娜")]
        session.add_all(reps)
        await session.commit()
    async with aiohttp.ClientSession() as http:
        wecom = WeComClient(http, api_base=str(server.make_url("/cgi-bin/")), corp_id=sim.corp_id,
                            secret=sim.secret, redis=cache)
        outbox = QueueWorker("outbox", OutboxItem, sessions, OutboxSender(wecom, str(sim.agent_id)), max_attempts=3)
        yield World(sim, sessions, wecom, outbox, {rep.userid: rep.id for rep in reps})
    await cache.aclose()
    await engine.dispose()


async def test_a_task_the_rep_sent_is_confirmed(world: World) -> None:
    delivery_id = await world.greet("赵磊", ZHAO_LEI)
    created = await world.task_created_at(delivery_id)

    waiting = await world.sync(created + timedelta(hours=1))
    task = await world.delivery(delivery_id)
    assert (task.status, task.wecom_msgid, task.detail) == ("sent", world.msgid(ZHAO_LEI), "segment=standard")

    world.sim.confirm_msg_template(world.msgid(ZHAO_LEI), "zhangwei")
    confirmed = await world.sync(created + timedelta(hours=2))
    task = await world.delivery(delivery_id)
    assert task.status == "confirmed"
    assert task.detail.startswith("张伟已于 ") and task.detail.endswith("发送，客户已收到")
    assert waiting == ("1 group-send task(s) checked: 0 confirmed, 0 unsent, 1 still open; "
                       "0 reminder(s) queued for 0 rep(s)")
    assert confirmed.startswith("1 group-send task(s) checked: 1 confirmed, 0 unsent, 0 still open")
    assert (await world.sync(created + timedelta(hours=5))).startswith("0 group-send task(s) checked")
    assert world.reminders("zhangwei") == []


async def test_a_rep_who_has_not_sent_is_reminded_once_with_all_their_tasks(world: World) -> None:
    zhao = await world.greet("赵磊", ZHAO_LEI)
    sun = await world.greet("孙丽", SUN_LI, occasion="festival:mid_autumn")
    wu = await world.greet("吴敏", WU_MIN, rep="lina")
    created = max([await world.task_created_at(d) for d in (zhao, sun, wu)])

    await world.sync(created + timedelta(hours=3, minutes=59))
    assert world.sim.sent_app_messages == []
    summaries = [await world.sync(created + timedelta(hours=hours)) for hours in (4, 4.5, 5)]
    [to_zhang] = world.reminders("zhangwei")
    [to_li] = world.reminders("lina")
    assert summaries[0].endswith("3 still open; 2 reminder(s) queued for 2 rep(s)")
    assert summaries[1].endswith("0 reminder(s) queued for 0 rep(s)") and summaries[2] == summaries[1]
    assert "2 条客户关怀消息" in to_zhang and "· 赵磊：生日祝福" in to_zhang and "· 孙丽：中秋节祝福" in to_zhang
    assert "群发助手" in to_zhang and "7 天" in to_zhang
    assert to_li.startswith("客户 吴敏 的生日祝福还在企业微信「群发助手」里等您确认")
    assert {(await world.delivery(d)).status for d in (zhao, sun, wu)} == {"sent"}

    # A task that arrives later gets its own reminder; the ones already reminded are not repeated.
    zhou = await world.greet("周杰", ZHOU_JIE)
    await world.sync(await world.task_created_at(zhou) + timedelta(hours=4, minutes=30))
    first, second = world.reminders("zhangwei")
    assert first == to_zhang and "周杰" in second and "赵磊" not in second
    async with world.sessions() as session:
        keys = set((await session.scalars(
            select(OutboxItem.idempotency_key).where(OutboxItem.kind == "app_message"))).all())
    assert keys == {f"care-sync:remind:{zhao},{sun}", f"care-sync:remind:{wu}", f"care-sync:remind:{zhou}"}


async def test_what_wecom_could_not_deliver_is_unsent_with_the_reason(world: World) -> None:
    gone_friend = await world.greet("赵磊", ZHAO_LEI)
    over_limit = await world.greet("孙丽", SUN_LI)
    not_theirs = await world.greet("吴敏", WU_MIN)  # zhangwei does not follow her in WeCom: refused at once
    cancelled = await world.greet("周杰", ZHOU_JIE)
    _, allowed = world.sim.group_msg_allowance(world.sim.now())
    for _ in range(allowed):  # 孙丽 already got as many group messages this month as the month has days
        msgid, _ = world.sim.add_msg_template({"external_userid": [SUN_LI], "sender": "zhangwei",
                                               "text": {"content": "促销"}})
        world.sim.confirm_msg_template(msgid, "zhangwei")
    world.sim.end_contact(ZHAO_LEI, "zhangwei")
    world.sim.confirm_msg_template(world.msgid(ZHAO_LEI), "zhangwei")
    world.sim.confirm_msg_template(world.msgid(SUN_LI), "zhangwei")
    del world.sim.group_msg_tasks[world.msgid(ZHOU_JIE)]  # WeCom answers 41047 for it now

    summary = await world.sync(await world.task_created_at(cancelled) + timedelta(hours=1))
    outcome = {d: ((row := await world.delivery(d)).status, row.detail)
               for d in (gone_friend, over_limit, not_theirs, cancelled)}
    assert outcome == {
        gone_friend: ("unsent", "客户已不是张伟的微信好友，企业微信未能送达"),
        over_limit: ("unsent", "客户收到的群发消息已达企业微信的接收上限，未能送达"),
        not_theirs: ("unsent", "企业微信不允许张伟向该客户群发（对方不在其客户列表中），客户未收到"),
        cancelled: ("unsent", "企业微信里已找不到这条群发任务（可能已被取消或过期），客户未收到"),
    }
    assert summary.startswith("4 group-send task(s) checked: 0 confirmed, 4 unsent")


@pytest.mark.parametrize(
    ("windows", "remind_at", "expire_at", "detail"),
    [
        ({}, timedelta(hours=4), timedelta(days=7), "张伟在 7 天内没有确认发送，群发任务已失效，客户未收到"),
        ({"keep_for": timedelta(days=2), "remind_after": timedelta(hours=1)}, timedelta(hours=1), timedelta(days=2),
         "张伟在 2 天内没有确认发送，群发任务已失效，客户未收到"),
    ],
)
async def test_a_task_never_sent_expires_unsent(world: World, windows: dict, remind_at: timedelta,
                                                expire_at: timedelta, detail: str) -> None:
    job = make_group_send_sync_job(world.wecom, **windows)
    delivery_id = await world.greet("赵磊", ZHAO_LEI)
    created = await world.task_created_at(delivery_id)

    await world.sync(created + remind_at - timedelta(minutes=1), job)
    assert world.reminders("zhangwei") == []
    await world.sync(created + remind_at, job)
    before_expiry = await world.sync(created + expire_at - timedelta(minutes=1), job)
    expired = await world.sync(created + expire_at, job)
    task = await world.delivery(delivery_id)
    assert (task.status, task.detail) == ("unsent", detail)
    assert len(world.reminders("zhangwei")) == 1
    assert "1 still open" in before_expiry and expired.startswith("1 group-send task(s) checked: 0 confirmed, 1 unsent")


async def test_wecom_down_keeps_the_task_open_for_the_next_run(world: World) -> None:
    delivery_id = await world.greet("赵磊", ZHAO_LEI)
    created = await world.task_created_at(delivery_id)
    world.sim.confirm_msg_template(world.msgid(ZHAO_LEI), "zhangwei")
    world.sim.fail_next("externalcontact/get_groupmsg_task", http_status=503)

    down = await world.sync(created + timedelta(days=7, hours=1))  # even past expiry: WeCom has not answered
    task = await world.delivery(delivery_id)
    assert (task.status, task.wecom_msgid) == ("sent", world.msgid(ZHAO_LEI))
    assert down.endswith("; 1 WeCom error(s), WeCom unavailable, rest left for the next run")
    await world.sync(created + timedelta(days=7, hours=1, minutes=30))
    assert (await world.delivery(delivery_id)).status == "confirmed"


async def test_a_task_wecom_never_answers_for_is_given_up_a_day_after_expiry(world: World) -> None:
    delivery_id = await world.greet("赵磊", ZHAO_LEI)
    created = await world.task_created_at(delivery_id)
    world.sim.fail_next("externalcontact/get_groupmsg_task", errcode=41063, times=2)  # "still dispatching"

    await world.sync(created + timedelta(days=7, hours=23))
    assert (await world.delivery(delivery_id)).status == "sent"
    given_up = await world.sync(created + timedelta(days=8))
    task = await world.delivery(delivery_id)
    assert (task.status, task.detail) == ("unsent", "任务过期后企业微信一直没有返回发送结果，客户很可能未收到")
    assert given_up.endswith("; 1 WeCom error(s)")
