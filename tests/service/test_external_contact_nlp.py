"""Issue #17 through the external-contact channel (a rep's WeChat contacts, read from the chat
archive 会话存档), not only 微信客服: a neutral question opens no ticket and does not make the
customer's mood go down; a buying message tells the owner rep once and moves 潜在 → 意向; every
way of saying stop ends care messages, and the rep hears what stops and what does not; the
manager's digest names real topics as 客户热词, never stop words or time words."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import select

from crm_core.birthdays import parse_birthday
from crm_core.models import Customer, Message, OutboxItem, Staff
from crm_core.ticket_models import Ticket
from scheduler.care import send_birthday_greetings
from scheduler.digests import send_daily_digests
from scheduler.runner import JobContext
from tests.nlp.opt_out_phrasings import NATURAL, opt_out_phrasings, sample
from tests.support.service import external_id
from tests.service.test_chat_archive import ArchiveService, archive, company_key, puller  # noqa: F401 (fixtures)

REP = "zhangwei"


async def contact_writes(service, name: str, *texts: str) -> None:
    """The customer writes to their rep in WeChat; the archive puller files it as WeCom serves it."""
    sim = service.sim
    for text in texts:
        sim.chat_archive.add(external_id(sim, name), [REP], "text", {"content": text},
                             msgtime_ms=int(sim.now() * 1000))
    await puller(service).drain()
    await service.settle()


async def customer(service, name: str) -> Customer:
    async with service.sessions() as session:
        return await session.scalar(select(Customer).where(Customer.name == name))


async def app_texts(service, userid: str) -> list[str]:
    return [m["text"]["content"] for m in service.sim.sent_app_messages if m["touser"] == userid and "text" in m]


async def test_a_neutral_question_opens_no_ticket_and_leaves_the_mood_alone(archive):
    service = await archive.start()
    async with service.sessions() as session:
        tickets_before = len((await session.scalars(select(Ticket))).all())
    for text in ("您好，请问你们的注塑机保修期是几年？", "发票一般开出来要多久？", "你们仓库周六有人收货吗",
                 "这个型号和上次那款有什么区别？"):
        await contact_writes(service, "周杰", text)
    zhou = await customer(service, "周杰")
    async with service.sessions() as session:
        mine = (await session.scalars(select(Message).where(Message.customer_id == zhou.id, Message.direction == "in")
                                      .order_by(Message.id))).all()
        assert len((await session.scalars(select(Ticket))).all()) == tickets_before
    assert [m.analysis["label"] for m in mine] == ["neutral"] * 4, [(m.text, m.analysis["probabilities"]) for m in mine]
    assert zhou.last_negative_message_id is None and zhou.sentiment_score > -0.2


async def test_a_buying_message_tells_the_rep_once_and_moves_the_stage(archive):
    service = await archive.start()
    await contact_writes(service, "周杰", "你好")
    before = await customer(service, "周杰")
    assert before.lifecycle == "prospect" and before.owner.userid == REP
    await contact_writes(service, "周杰", "我们下个月想订三百台，麻烦报个价")
    await contact_writes(service, "周杰", "含税的话单价能到多少？")  # the same window: no second alert
    after = await customer(service, "周杰")
    alerts = [t for t in await app_texts(service, REP) if "购买意向" in t and "周杰" in t]
    assert len(alerts) == 1 and "报个价" in alerts[0] and "查 周杰" in alerts[0]
    assert after.lifecycle == "interested" and after.lead_score > before.lead_score


# Generated from the grammar's parts, and natural ones in several registers (dialect, typo, a
# long message where the request is one clause, a threat, leaving the group).
SAYING_STOP = [*sample(opt_out_phrasings(), 8), *sample(NATURAL, 5),
               "莫发了莫发了", "别在给我推了", "以后有需要我会找你们的，不用主动给我发消息", "再打电话就拉黑", "我退群了"]


@pytest.mark.parametrize("text", SAYING_STOP)
async def test_every_way_of_saying_stop_ends_care_messages(archive, text):
    service = await archive.start()
    await contact_writes(service, "周杰", "你好")
    await contact_writes(service, "郑浩", "你好")
    tomorrow = datetime.fromtimestamp(service.sim.now(), service.settings.tz).date() + timedelta(days=1)
    async with service.sessions() as session:
        for name in ("周杰", "郑浩"):
            row = await session.scalar(select(Customer).where(Customer.name == name))
            row.care_consent, row.birthday, row.lifecycle = True, parse_birthday(tomorrow.strftime("%m-%d")), "customer"
        await session.commit()

    await contact_writes(service, "周杰", text)
    await contact_writes(service, "周杰", text)  # said twice: the rep hears it once
    zhou = await customer(service, "周杰")
    assert zhou.care_opted_out_at is not None and not zhou.may_receive_care
    [told] = [t for t in await app_texts(service, zhou.owner.userid) if "不再接收消息" in t]
    assert "关怀和活动推广" in told and "回复对方的咨询不受影响" in told
    # No 微信客服 window reaches a WeChat contact: the rep is asked to pass the confirmation on.
    assert "请您转告对方" in told and "也不会再给您发送活动推广消息" in told and "仍会在这里回复您" in told

    nine = datetime.combine(tomorrow, time(9, 0), tzinfo=service.settings.tz)
    await send_birthday_greetings(JobContext(service.sessions, nine, service.settings.tz), clock=lambda: nine)
    async with service.sessions() as session:
        greeted = set((await session.scalars(select(OutboxItem.customer_id).where(
            OutboxItem.idempotency_key.like("care:%birthday%")))).all())
    zheng = await customer(service, "郑浩")
    assert zheng.id in greeted and zhou.id not in greeted


@pytest.mark.parametrize("text", ["不用联系快递了，已经拿到了", "现在别打电话，我在开会", "别打电话，微信上说就行",
                                  "帮我退订明天的机票"])
async def test_a_look_alike_leaves_care_messages_on(archive, text):
    service = await archive.start()
    await contact_writes(service, "周杰", "你好")
    await contact_writes(service, "周杰", text)
    zhou = await customer(service, "周杰")
    assert zhou.care_opted_out_at is None
    assert not [t for t in await app_texts(service, zhou.owner.userid) if "不再接收消息" in t]


# Words that say when or how, or are politeness: never a topic a manager could act on.
NOT_TOPICS = frozenset({"上次", "下次", "下个月", "这个月", "下周", "这周", "今天", "明天", "昨天", "现在", "以后", "之前",
                        "最近", "一般", "你好", "您好", "请问", "麻烦", "谢谢", "一下", "什么", "时候", "多久", "怎么",
                        "可以", "我们", "你们", "还是", "这个", "那个", "一批", "有没有", "能不能", "好的", "报个"})


async def test_the_managers_digest_names_real_topics_and_only_customers_whose_mood_fell(archive):
    service = await archive.start()
    await contact_writes(service, "周杰", "你好，请问你们的数控车床交货期一般多久？", "上次说的发票什么时候能开出来？",
                         "下个月还要订一批，麻烦先报个价")
    await contact_writes(service, "郑浩", "你好，我们以后的冷链配送能覆盖到合肥吗？", "发票抬头要改一下，怎么弄？",
                         "这周的物流一直没更新，货到底发了没有？太慢了，很不满意")
    now = datetime.fromtimestamp(service.sim.now(), service.settings.tz) + timedelta(minutes=1)
    await send_daily_digests(JobContext(service.sessions, now, service.settings.tz))
    async with service.sessions() as session:
        [digest] = (await session.scalars(select(OutboxItem).join(Staff, Staff.id == OutboxItem.staff_id).where(
            Staff.userid == "chenjing", OutboxItem.idempotency_key.like("digest:daily:%")))).all()
    content = digest.payload["markdown"]["content"]
    [hot] = [line for line in content.splitlines() if line.startswith("**客户热词**")]
    words = [w.split("(")[0] for w in hot.split("　", 1)[1].split("、")]
    assert words and not set(words) & NOT_TOPICS, words
    assert {"发票", "冷链"} <= set(words) or {"发票", "物流"} <= set(words), words
    trending = content.split("**情绪走低的客户**")[1] if "**情绪走低的客户**" in content else ""
    assert "周杰" not in trending  # only questions: not a customer whose mood fell
