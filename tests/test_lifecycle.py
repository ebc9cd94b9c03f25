"""Lifecycle stages (潜在 → 意向 → 成交 → 忠诚, 沉睡, 已流失) and the lead score (热度), as reps notice
them: moves driven by messages, deals, silence and contact changes, never backwards by accident;
the stage set by hand from chat; 热度 on the card, in 我的客户 热度 and in the morning nudge. Both
backends, fixed clocks."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from itertools import count

from sqlalchemy import select, update

from config.templates import render
from connectors.wecom.simulator.callbacks import build_plaintext_change_external_contact
from crm_core.customers import CustomerService
from crm_core.deals import DealService, default_stages
from crm_core.lead_score import default_policy as lead_score_policy
from crm_core.importer import CustomerImporter
from crm_core import lifecycle
from crm_core.lifecycle import LifecyclePolicy
from crm_core.messages import MessageService, NewMessage
from crm_core.models import AuditEntry, Customer, LifecycleChange, OutboxItem, Staff
from crm_core.notes import NoteService
from scheduler.leads import JOBS, rescore_leads
from scheduler.nudges import mark_dormant_customers, send_morning_nudges
from scheduler.runner import JobContext
from scrm.ingest.analysis import MessageAnalysis
from tests.support.chat import FIXED_NOW
from tests.support.service import external_id
from tests.support.chat import SHANGHAI as TZ

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=TZ)
PURCHASE = "我想买两台，怎么下单？"
COMPLAINT = "太坑了，东西用两天就坏了，我要去12315投诉"
_msg_ids = count(1)


async def new_rep(sessions, userid: str = "zhangwei", name: str = "张伟") -> Staff:
    async with sessions() as session:
        rep = Staff(userid=userid, name=name, role="sales", department_ids=[2])
        session.add(rep)
        await session.commit()
        return rep


async def new_customer(sessions, name: str, owner: Staff | None, **values) -> int:
    async with sessions() as session:
        customer = Customer(name=name, owner_id=owner.id if owner else None, created_at=T0 - timedelta(days=200),
                            **values)
        session.add(customer)
        await session.commit()
        return customer.id


async def writes(session, customer_id: int, text: str, at: datetime) -> None:
    """A customer's 微信客服 line, handled as the ingest pipeline does: archive, contact, analysis."""
    customer = await session.get(Customer, customer_id)
    message = await MessageService(session).archive(NewMessage(
        channel="wecom_kf", direction="in", external_msg_id=f"lc-{next(_msg_ids)}", msg_type="text", text=text,
        sent_at=at, customer_id=customer_id))
    await CustomerService(session).touch_contact(customer, at=at)
    await MessageAnalysis()(session, customer, message)


async def customer_writes(sessions, customer_id: int, text: str, at: datetime) -> Customer:
    async with sessions() as session:
        await writes(session, customer_id, text, at)
        await session.commit()
    return await reload(sessions, customer_id)


async def deal(sessions, customer_id: int, stage: str, rep: Staff, at: datetime, **values: str) -> Customer:
    async with sessions() as session:
        customer, by = await session.get(Customer, customer_id), await session.get(Staff, rep.id)
        await DealService(session, default_stages()).move(customer, stage, by, values=values,
                                                                                    at=at)
        await session.commit()
    return await reload(sessions, customer_id)


async def reload(sessions, customer_id: int) -> Customer:
    async with sessions() as session:
        return await session.get(Customer, customer_id)


async def history(sessions, customer_id: int) -> list[tuple[str, str, str]]:
    async with sessions() as session:
        rows = (await session.execute(
            select(LifecycleChange.from_stage, LifecycleChange.to_stage, LifecycleChange.reason)
            .where(LifecycleChange.customer_id == customer_id).order_by(LifecycleChange.id))).all()
    return [tuple(r) for r in rows]


def job(sessions, at: datetime) -> JobContext:
    return JobContext(sessions, at, TZ)


# -- stages driven by events --------------------------------------------------------------------------

async def test_messages_and_deals_move_a_customer_forward_and_never_back(env):  # noqa: F811
    sessions, _ = env
    rep = await new_rep(sessions)
    zhao = await new_customer(sessions, "赵磊", rep)

    assert (await customer_writes(sessions, zhao, "你好，在吗", T0)).lifecycle == "prospect"
    moved = await customer_writes(sessions, zhao, PURCHASE, T0 + timedelta(hours=1))
    assert moved.lifecycle == "interested" and moved.lifecycle_changed_at == T0 + timedelta(hours=1)
    assert (await deal(sessions, zhao, "初访", rep, T0 + timedelta(days=1))).lifecycle == "interested"
    assert (await deal(sessions, zhao, "赢单", rep, T0 + timedelta(days=5))).lifecycle == "customer"
    # A customer asking to buy again, or a new deal being opened, is not a step back to 意向.
    assert (await customer_writes(sessions, zhao, "还想再买一批，怎么下单", T0 + timedelta(days=6))).lifecycle == "customer"
    assert (await deal(sessions, zhao, "需求确认", rep, T0 + timedelta(days=7))).lifecycle == "customer"
    loyal = await deal(sessions, zhao, "赢单", rep, T0 + timedelta(days=9))
    assert loyal.lifecycle == "loyal" and loyal.lifecycle_changed_at == T0 + timedelta(days=9)

    assert await history(sessions, zhao) == [("prospect", "interested", "purchase_intent"),
                                             ("interested", "customer", "deal.won"),
                                             ("customer", "loyal", "repeat_purchase")]
    async with sessions() as session:
        actors = (await session.scalars(select(LifecycleChange.actor_id).order_by(LifecycleChange.id))).all()
    assert actors == [None, rep.id, rep.id]  # deals are the rep's doing, messages nobody's


async def test_an_opened_deal_makes_a_prospect_interested_and_a_loss_changes_nothing(env):  # noqa: F811
    sessions, _ = env
    rep = await new_rep(sessions)
    sun = await new_customer(sessions, "孙丽", rep)
    assert (await deal(sessions, sun, "初访", rep, T0)).lifecycle == "interested"
    assert (await deal(sessions, sun, "输单", rep, T0 + timedelta(days=3), lost_reason="价格太高")).lifecycle == "interested"
    assert await history(sessions, sun) == [("prospect", "interested", "deal.opened")]


def test_loyalty_rule_counts_won_deals_or_their_total():
    by_count = LifecyclePolicy(buying_min_confidence=0.5, loyal_won_deals=2, loyal_won_amount=0)
    by_amount = LifecyclePolicy(buying_min_confidence=0.5, loyal_won_deals=0, loyal_won_amount=500_000)
    assert not by_count.is_loyal(1, 9_000_000) and by_count.is_loyal(2, 0)
    assert by_amount.is_loyal(1, 500_000) and not by_amount.is_loyal(5, 499_999)


def test_every_stage_and_reason_reads_in_chinese_and_every_deal_stage_has_a_weight():
    labels = [render(f"lifecycle.{stage}") for stage in lifecycle.STAGES]
    assert labels == ["潜在", "意向", "成交", "忠诚", "沉睡", "已流失"]
    for reason in (lifecycle.PURCHASE_INTENT, lifecycle.DEAL_OPENED, lifecycle.DEAL_WON, lifecycle.REPEAT_PURCHASE,
                   lifecycle.WENT_DORMANT, lifecycle.WOKE_UP, lifecycle.LEFT, lifecycle.RE_ADDED, lifecycle.MANUAL,
                   lifecycle.IMPORT, lifecycle.REANALYSED):
        assert render(f"lifecycle_reasons.{reason}")
    assert set(lead_score_policy().deal_stages) == set(default_stages().stages)


async def test_a_dormant_customer_wakes_up_in_the_stage_they_had(env):  # noqa: F811
    sessions, _ = env
    rep = await new_rep(sessions)
    zhou = await new_customer(sessions, "周杰", rep)
    wu = await new_customer(sessions, "吴敏", rep)
    await deal(sessions, zhou, "赢单", rep, T0 - timedelta(days=120))
    async with sessions() as session:  # both went quiet long ago
        await session.execute(update(Customer).values(last_contact_at=T0 - timedelta(days=100)))
        await session.commit()

    assert (await mark_dormant_customers(job(sessions, T0))).startswith("2 customer(s) marked dormant")
    assert (await reload(sessions, zhou)).lifecycle == "dormant"
    # Writing again, even with a purchase intent, brings 周杰 back as 成交, not as 意向.
    assert (await customer_writes(sessions, zhou, PURCHASE, T0 + timedelta(days=3))).lifecycle == "customer"
    async with sessions() as session:  # the rep calling 吴敏 wakes her too
        customer, author = await session.get(Customer, wu), await session.get(Staff, rep.id)
        await NoteService(session).add(customer, author, "电话回访", at=T0 + timedelta(days=4))
        await session.commit()
    assert (await reload(sessions, wu)).lifecycle == "prospect"

    assert await history(sessions, zhou) == [("prospect", "customer", "deal.won"), ("customer", "dormant", "dormant"),
                                             ("dormant", "customer", "woke_up")]
    assert await history(sessions, wu) == [("prospect", "dormant", "dormant"), ("dormant", "prospect", "woke_up")]


async def test_a_customer_who_deletes_the_rep_is_churned_and_returns_when_adding_them_again(chat):  # noqa: F811
    await chat.onboard("赵磊")
    assert "已把 赵磊 的客户状态从「潜在」改为「成交」" in await chat.ask("zhangwei", "客户状态 赵磊 成交")
    zhao, sim = external_id(chat.service.sim, "赵磊"), chat.service.sim

    async def event(change_type: str, at: datetime) -> None:
        await chat.service.wecom.raw(build_plaintext_change_external_contact(
            sim.corp_id, change_type, "zhangwei", zhao, create_time=int(at.timestamp())))
        await chat.service.settle()

    sim.end_contact(zhao, "zhangwei")
    await event("del_follow_user", FIXED_NOW + timedelta(days=1))
    churned = await chat.customer("赵磊")
    assert churned.lifecycle == "churned" and churned.churned_at == FIXED_NOW + timedelta(days=1)
    sim.add_follower(zhao, "zhangwei", add_way=1)
    await event("add_external_contact", FIXED_NOW + timedelta(days=2))
    back = await chat.customer("赵磊")
    assert back.lifecycle == "customer" and back.churned_at is None
    async with chat.service.sessions() as session:
        reasons = (await session.scalars(select(LifecycleChange.reason).where(LifecycleChange.customer_id == back.id)
                                         .order_by(LifecycleChange.id))).all()
    assert reasons == ["manual", "churned", "re_added"]


async def test_imported_customers_start_as_prospects_with_a_history_row(env):  # noqa: F811
    sessions, _ = env
    await new_rep(sessions)
    async with sessions() as session:
        report = await CustomerImporter(session, default_owner="zhangwei").run(
            ["姓名", "手机"], [(2, {"姓名": "郑浩", "手机": "13800138000"})], source="客户.xlsx")
    assert report.created == 1
    async with sessions() as session:
        customer = await session.scalar(select(Customer).where(Customer.name == "郑浩"))
    assert customer.lifecycle == "prospect" and customer.lifecycle_changed_at is not None
    assert await history(sessions, customer.id) == [("", "prospect", "import")]


# -- the stage by hand, from chat ---------------------------------------------------------------------

async def test_a_rep_sets_the_stage_by_hand_within_scope_and_it_is_audited(chat):  # noqa: F811
    await chat.onboard("赵磊", "吴敏")
    assert await chat.ask("zhangwei", "客户状态 赵磊 意向客户") == "已把 赵磊 的客户状态从「潜在」改为「意向」。"
    assert await chat.ask("zhangwei", "lifecycle zl interested") == "赵磊 的客户状态已经是「意向」，无需修改。"
    assert "没有「热情」这个客户状态。可选：潜在、意向、成交、忠诚、沉睡、已流失。" == await chat.ask("zhangwei", "客户状态 赵磊 热情")
    shown = await chat.ask("zhangwei", "客户状态 赵磊")
    assert shown.startswith("赵磊 的客户状态：意向（2026-11-18 起）")
    assert "11-18 10:00 潜在 → 意向（手动设置，张伟）" in shown
    # Another rep's customer is out of scope; support agents do not set stages.
    assert "没有找到" in await chat.ask("lina", "客户状态 赵磊 已流失")
    assert "无权使用「客户状态」" in await chat.ask("wangfang", "客户状态 吴敏 成交")

    zhao = await chat.customer("赵磊")
    assert zhao.lifecycle == "interested" and zhao.lifecycle_changed_at == FIXED_NOW
    async with chat.service.sessions() as session:
        audits = (await session.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.detail)
                                        .where(AuditEntry.action == "customer.lifecycle"))).all()
        change = await session.scalar(select(LifecycleChange).where(LifecycleChange.customer_id == zhao.id))
    assert audits == [("zhangwei", "customer.lifecycle", "prospect -> interested")]
    assert (change.reason, change.actor_id) == ("manual", (await chat.staff("zhangwei")).id)


# -- 热度 ------------------------------------------------------------------------------------------

async def test_a_purchase_intent_warms_a_lead_and_a_complaint_cools_it(env):  # noqa: F811
    sessions, _ = env
    rep = await new_rep(sessions)
    zhao = await new_customer(sessions, "赵磊", rep)
    greeted = (await customer_writes(sessions, zhao, "你好", T0)).lead_score
    keen = (await customer_writes(sessions, zhao, PURCHASE, T0 + timedelta(minutes=5))).lead_score
    asked = (await customer_writes(sessions, zhao, "报价多少", T0 + timedelta(minutes=10))).lead_score
    angry = await customer_writes(sessions, zhao, COMPLAINT, T0 + timedelta(minutes=15))
    assert 0 < greeted < keen < asked and angry.lead_score < asked - 15
    assert angry.lead_score_at == T0 + timedelta(minutes=15)
    # A deal in a late stage warms the lead at once.
    assert (await deal(sessions, zhao, "报价谈判", rep, T0 + timedelta(hours=1), budget="30万")).lead_score >= \
        angry.lead_score + 20


async def test_two_workers_scoring_one_customer_at_once_both_count(env):  # noqa: F811
    sessions, _ = env
    rep = await new_rep(sessions)
    zhao = await new_customer(sessions, "赵磊", rep)
    alone = await new_customer(sessions, "对照", rep)
    await customer_writes(sessions, alone, PURCHASE, T0)
    await customer_writes(sessions, alone, "报价多少", T0)

    async def worker(text: str) -> None:
        async with sessions() as session:
            await writes(session, zhao, text, T0)
            await asyncio.sleep(0)  # let the other worker start before this one commits
            await session.commit()

    await asyncio.gather(worker(PURCHASE), worker("报价多少"))
    assert (await reload(sessions, zhao)).lead_score == (await reload(sessions, alone)).lead_score


async def test_the_nightly_rescore_cools_an_idle_lead(env):  # noqa: F811
    sessions, _ = env
    rep = await new_rep(sessions)
    zhao = await new_customer(sessions, "赵磊", rep)
    quiet = await new_customer(sessions, "从未来信", rep)
    for minutes, text in enumerate((PURCHASE, "报价多少", "什么时候能发货")):
        hot = await customer_writes(sessions, zhao, text, T0 + timedelta(minutes=minutes))
    assert set(JOBS) == {"leads.rescore"}
    policy = lead_score_policy()

    assert await rescore_leads(job(sessions, T0 + timedelta(minutes=2))) == "2 lead score(s) recomputed, 1 changed"
    assert (await reload(sessions, zhao)).lead_score == hot.lead_score  # same data, same score
    await rescore_leads(job(sessions, T0 + timedelta(days=15)))
    cooled = await reload(sessions, zhao)
    assert policy.warm <= cooled.lead_score < hot.lead_score and cooled.lead_score_at == T0 + timedelta(days=15)
    await rescore_leads(job(sessions, T0 + timedelta(days=31)))
    assert (await reload(sessions, zhao)).lead_score == 0  # nothing said in the last 30 days, no deal
    untouched = await reload(sessions, quiet)
    assert untouched.lead_score == 0 and untouched.lead_score_at == T0 + timedelta(minutes=2)


async def test_the_morning_nudge_lists_the_hottest_leads(env):  # noqa: F811
    sessions, _ = env
    rep = await new_rep(sessions)
    other = await new_rep(sessions, "lina", "李娜")
    scores = {"甲": 95, "乙": 88, "丙": 80, "丁": 77, "戊": 73, "己": 70, "庚": 69}
    for name, score in scores.items():
        await new_customer(sessions, name, rep, company=f"{name}公司", lead_score=score, last_contact_at=T0)
    await new_customer(sessions, "沉睡的", rep, lifecycle="dormant", lead_score=99, last_contact_at=T0)
    await new_customer(sessions, "别人的", other, lead_score=99, last_contact_at=T0)

    await send_morning_nudges(job(sessions, T0.replace(hour=8, minute=30)))
    async with sessions() as session:
        items = {i.payload["touser"]: i.payload["text"]["content"]
                 for i in (await session.scalars(select(OutboxItem))).all()}
    text = items["zhangwei"]
    assert "🔥 热度高的客户（6 位），趁热联系：" in text
    assert "· 甲（甲公司） 热度 95（潜在）" in text
    listed = [name for name in scores if f"· {name}（" in text]
    assert listed == ["甲", "乙", "丙", "丁", "戊"] and "…还有 1 条" in text
    assert "沉睡的" not in text and "别人的" not in text
    assert "别人的" in items["lina"]


async def test_the_card_shows_heat_and_my_customers_sort_by_it(chat):  # noqa: F811
    await chat.onboard("赵磊", "孙丽", "周杰")
    chat.service.sim.now = lambda: FIXED_NOW.timestamp()
    kfid = next(iter(chat.service.sim.kf_accounts))
    token = chat.service.sim.kf_customer_writes(kfid, external_id(chat.service.sim, "孙丽"), PURCHASE)
    await chat.service.wecom.kf_msg_or_event(token, kfid)
    await chat.service.settle()
    card = await chat.ask("zhangwei", "查 孙丽")
    sun = await chat.customer("孙丽")
    assert sun.lead_score > 0
    assert f"客户状态：意向　热度：{sun.lead_score} 中" in card

    async with chat.service.sessions() as session:
        await session.execute(update(Customer).where(Customer.name == "周杰").values(lead_score=86))
        await session.commit()
    assert "热度：86 🔥高" in await chat.ask("zhangwei", "查 周杰")
    listing = await chat.ask("zhangwei", "我的客户 热度")
    assert listing.startswith("您负责的客户（3 位，按热度排序）：")
    assert listing.index("周杰") < listing.index("孙丽") < listing.index("赵磊")
    assert "热度：86 🔥高" in listing and "热度：0 低" in listing
    assert "按最近联系排序" in await chat.ask("zhangwei", "mine")
