"""Nudges a rep or manager would notice: the morning digest, stalled-deal escalations, dormant
customers with their reactivation task, and contract renewals; each sent once, on both backends,
with a fixed clock."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, timedelta

from sqlalchemy import select

from crm_core.models import AuditEntry, Customer, Deal, FollowUp, Note, OutboxItem, Staff
from crm_core.nudges import default_policy
from scheduler.jobs import remind_due_followups
from crm_core.notes import NoteService
from scheduler.nudges import (JOBS, escalate_stalled_deals, mark_dormant_customers, remind_contract_renewals,
                              send_morning_nudges)
from scheduler.runner import JobContext
from tests.support.chat import SHANGHAI as TZ

NOW = datetime(2026, 11, 30, 8, 30, tzinfo=TZ)  # a Monday morning, business time
LONG_AGO = NOW - timedelta(days=400)


async def setup_team(sessions) -> dict[str, Staff]:
    """Two reps and their manager in department 2, and a manager of another department."""
    async with sessions() as session:
        team = {
            "zhangwei": Staff(userid="zhangwei", name="张伟", role="sales", department_ids=[2]),
            "lina": Staff(userid="lina", name="李娜", role="sales", department_ids=[2]),
            "boss": Staff(userid="wangzong", name="王总", role="manager", department_ids=[2]),
            "other_boss": Staff(userid="zhaozong", name="赵总", role="manager", department_ids=[3]),
        }
        session.add_all(team.values())
        await session.commit()
    return team


async def add_customer(sessions, name: str, owner: Staff | None, *, company: str = "", lifecycle: str = "prospect",
                       contacted: datetime | None = None, created: datetime = LONG_AGO,
                       contract_ends_on: date | None = None) -> int:
    async with sessions() as session:
        customer = Customer(name=name, company=company, owner_id=owner.id if owner else None, lifecycle=lifecycle,
                            last_contact_at=contacted, created_at=created, contract_ends_on=contract_ends_on)
        session.add(customer)
        await session.commit()
        return customer.id


async def add(sessions, *rows) -> None:
    async with sessions() as session:
        session.add_all(rows)
        await session.commit()


def ctx(sessions, moment: datetime) -> JobContext:
    return JobContext(sessions, moment.astimezone(TZ), TZ)


async def messages(sessions) -> list[OutboxItem]:
    async with sessions() as session:
        return list((await session.scalars(select(OutboxItem).order_by(OutboxItem.id))).all())


def content(item: OutboxItem) -> str:
    return item.payload["text"]["content"]


def test_the_jobs_are_exported_under_their_schedule_names():
    assert set(JOBS) == {"nudges.morning", "deals.stall_escalations", "customers.dormant",
                         "contracts.renewal_reminders"}


# -- the morning digest -----------------------------------------------------------------------------

async def test_morning_nudge_lists_follow_ups_quiet_customers_and_contracts_once(env):  # noqa: F811
    sessions, _ = env
    team = await setup_team(sessions)
    rep = team["zhangwei"]
    zhao = await add_customer(sessions, "赵磊", rep, company="华东精密", contacted=NOW - timedelta(days=2))
    qian = await add_customer(sessions, "钱敏", rep, company="蓝天科技", contacted=NOW - timedelta(days=1))
    sun = await add_customer(sessions, "孙强", rep, company="远航物流", contacted=NOW - timedelta(days=20))
    await add_customer(sessions, "周洁", rep, contacted=NOW - timedelta(days=10))  # not quiet long enough
    await add_customer(sessions, "吴昊", rep, lifecycle="dormant", contacted=NOW - timedelta(days=200))
    await add_customer(sessions, "郑新", rep, created=NOW - timedelta(days=30))  # never contacted
    planned = await add_customer(sessions, "冯涛", rep, contacted=NOW - timedelta(days=40))
    quoting = await add_customer(sessions, "陈静", rep, company="星河电子", contacted=NOW - timedelta(days=6))
    first_visit = await add_customer(sessions, "褚亮", rep, contacted=NOW - timedelta(days=6))
    await add_customer(sessions, "卫东", rep, contacted=NOW - timedelta(days=1), contract_ends_on=date(2026, 12, 3))
    await add_customer(sessions, "蒋平", rep, contacted=NOW - timedelta(days=1), contract_ends_on=date(2026, 12, 20))
    await add(sessions,
              FollowUp(customer_id=zhao, owner_id=rep.id, due_at=NOW - timedelta(days=1, hours=2), text="带方案上门"),
              FollowUp(customer_id=qian, owner_id=rep.id, due_at=NOW.replace(hour=15, minute=0), text=""),
              FollowUp(customer_id=planned, owner_id=rep.id, due_at=NOW + timedelta(days=3), text="月底拜访"),
              FollowUp(customer_id=zhao, owner_id=rep.id, due_at=NOW - timedelta(days=3), text="已完成的", status="done"),
              Note(customer_id=qian, text="客户说下周预算批下来", created_at=NOW - timedelta(days=1)),
              Deal(customer_id=quoting, owner_id=rep.id, stage="报价谈判", stage_changed_at=NOW - timedelta(days=9)),
              Deal(customer_id=first_visit, owner_id=rep.id, stage="初访", stage_changed_at=NOW - timedelta(days=9)))

    assert await send_morning_nudges(ctx(sessions, NOW)) == "1 morning nudge(s) queued for 4 staff"
    assert await send_morning_nudges(ctx(sessions, NOW)) == "0 morning nudge(s) queued for 4 staff"

    [item] = await messages(sessions)  # the other rep and the managers own nothing: no message
    assert item.payload["touser"] == "zhangwei" and item.idempotency_key == f"nudge:morning:{rep.id}:2026-11-30"
    text = content(item)
    assert text.startswith("早上好，张伟！")
    assert "今日及逾期跟进（2 条）" in text
    assert "赵磊（华东精密） 已逾期（11-29 06:30）：带方案上门" in text
    assert "钱敏（蓝天科技） 今天 15:00：最近备注「客户说下周预算批下来」" in text
    assert "月底拜访" not in text and "已完成的" not in text
    assert "久未联系的客户（3 位）" in text
    assert "孙强（远航物流） 20 天未联系" in text
    assert "郑新 建档 30 天仍未联系" in text
    assert "陈静（星河电子） 6 天未联系，商机在「报价谈判」" in text  # the late-stage override: 5 days
    for not_quiet in ("周洁", "吴昊", "冯涛", "褚亮"):
        assert not_quiet not in text
    assert "7 天内合同到期（1 位）" in text and "卫东 12-03 到期（还有 3 天）" in text
    assert "蒋平" not in text
    assert text.index("郑新") < text.index("孙强") < text.index("陈静")  # quietest first


async def test_quiet_thresholds_are_per_lifecycle_stage(env):  # noqa: F811
    sessions, _ = env
    team = await setup_team(sessions)
    rep = team["lina"]
    await add_customer(sessions, "活跃二十天", rep, contacted=NOW - timedelta(days=20))
    await add_customer(sessions, "活跃四十天", rep, contacted=NOW - timedelta(days=40))
    await add_customer(sessions, "沉睡七十天", rep, lifecycle="dormant", contacted=NOW - timedelta(days=70))
    await add_customer(sessions, "沉睡五十天", rep, lifecycle="dormant", contacted=NOW - timedelta(days=50))
    await add_customer(sessions, "流失一年", rep, lifecycle="churned", contacted=NOW - timedelta(days=365))
    policy = dataclasses.replace(default_policy(), quiet_days={"prospect": 30, "dormant": 60}, quiet_days_by_stage={})

    await send_morning_nudges(ctx(sessions, NOW), policy)

    [item] = await messages(sessions)
    text = content(item)
    assert "久未联系的客户（2 位）" in text
    assert "活跃四十天 40 天未联系" in text and "沉睡七十天 70 天未联系" in text
    assert "活跃二十天" not in text and "沉睡五十天" not in text and "流失一年" not in text


async def test_a_long_morning_nudge_fits_one_wecom_message_and_counts_the_rest(env):  # noqa: F811
    sessions, _ = env
    team = await setup_team(sessions)
    rep = team["zhangwei"]
    async with sessions() as session:
        customers = [Customer(name=f"客户{i:02d}", company="某某省某某市超长名称精密机械制造有限公司", owner_id=rep.id,
                              last_contact_at=NOW - timedelta(days=30 + i), created_at=LONG_AGO,
                              contract_ends_on=date(2026, 12, 1 + i % 7) if i < 25 else None)
                     for i in range(60)]
        session.add_all(customers)
        await session.flush()
        session.add_all(FollowUp(customer_id=c.id, owner_id=rep.id, due_at=NOW - timedelta(days=1, hours=i),
                                 text="请带上最新的报价单和技术方案，和客户的采购负责人再确认一次交期与付款方式" * 2)
                        for i, c in enumerate(customers[:40]))
        await session.commit()

    await send_morning_nudges(ctx(sessions, NOW))

    [item] = await messages(sessions)
    text = content(item)
    assert len(text.encode()) <= 2048
    assert "今日及逾期跟进（40 条）" in text and "7 天内合同到期（25 位）" in text
    shown_follow_ups = text.count("已逾期")
    assert 1 <= shown_follow_ups < 40 and f"…还有 {40 - shown_follow_ups} 条" in text
    assert "…还有" in text.split("7 天内合同到期")[1]  # every list is cut, and says so
    assert text.endswith("发「查 客户名」看客户详情。")


# -- stalled deals ----------------------------------------------------------------------------------

async def test_a_stalled_deal_goes_to_the_rep_then_48h_later_to_the_managers_once_each(env):  # noqa: F811
    sessions, _ = env
    team = await setup_team(sessions)
    rep = team["zhangwei"]
    entered = datetime(2026, 11, 20, 10, 0, tzinfo=TZ)
    customer = await add_customer(sessions, "赵磊", rep, company="华东精密", contacted=entered - timedelta(days=1))
    await add(sessions, Deal(customer_id=customer, owner_id=rep.id, stage="报价谈判", stage_changed_at=entered,
                             created_at=entered))

    assert await escalate_stalled_deals(ctx(sessions, entered + timedelta(hours=47))) == \
        "0 stalled deal(s) told to reps, 0 escalated to managers"
    assert await escalate_stalled_deals(ctx(sessions, entered + timedelta(hours=49))) == \
        "1 stalled deal(s) told to reps, 0 escalated to managers"
    assert await escalate_stalled_deals(ctx(sessions, entered + timedelta(hours=50))) == \
        "0 stalled deal(s) told to reps, 0 escalated to managers"
    [to_rep] = await messages(sessions)
    assert to_rep.payload["touser"] == "zhangwei"
    assert "赵磊（华东精密） 的商机在「报价谈判」阶段已 49 小时没有进展" in content(to_rep)
    assert "进入该阶段：11-20 10:00" in content(to_rep)

    told = entered + timedelta(hours=49)
    assert await escalate_stalled_deals(ctx(sessions, told + timedelta(hours=47))) == \
        "0 stalled deal(s) told to reps, 0 escalated to managers"
    assert await escalate_stalled_deals(ctx(sessions, told + timedelta(hours=48))) == \
        "0 stalled deal(s) told to reps, 1 escalated to managers"
    assert await escalate_stalled_deals(ctx(sessions, told + timedelta(hours=60))) == \
        "0 stalled deal(s) told to reps, 0 escalated to managers"
    [_, to_manager] = await messages(sessions)
    assert to_manager.payload["touser"] == "wangzong"  # the rep's department's manager, not department 3's
    assert "张伟 负责的 赵磊（华东精密） 商机在「报价谈判」阶段已 4 天没有进展，11-22 11:00 已提醒负责人" in content(to_manager)


async def test_activity_holds_off_a_stall_and_a_new_stage_is_a_new_stall(env):  # noqa: F811
    sessions, _ = env
    team = await setup_team(sessions)
    rep = team["lina"]
    entered = datetime(2026, 11, 20, 10, 0, tzinfo=TZ)
    noted = await add_customer(sessions, "钱敏", rep, contacted=entered - timedelta(days=3))
    talked = await add_customer(sessions, "孙强", rep, contacted=entered - timedelta(days=3))
    await add(sessions,
              Deal(customer_id=noted, owner_id=rep.id, stage="方案演示", stage_changed_at=entered),
              Deal(customer_id=talked, owner_id=rep.id, stage="方案演示", stage_changed_at=entered),
              Note(customer_id=noted, text="演示约在下周", created_at=entered + timedelta(hours=30)))
    async with sessions() as session:
        (await session.get(Customer, talked)).last_contact_at = entered + timedelta(hours=10)
        await session.commit()

    await escalate_stalled_deals(ctx(sessions, entered + timedelta(hours=49)))
    assert await messages(sessions) == []
    await escalate_stalled_deals(ctx(sessions, entered + timedelta(hours=59)))
    assert [content(m)[:20] for m in await messages(sessions)] == ["⚠️ 商机停滞提醒：孙强 的商机在「方案"]
    await escalate_stalled_deals(ctx(sessions, entered + timedelta(hours=79)))
    assert len(await messages(sessions)) == 2  # the noted deal, 48 h after the note

    # The rep answers the notice by talking to the customer: the manager's 48 h start again from there.
    told = entered + timedelta(hours=59)
    async with sessions() as session:
        (await session.get(Customer, talked)).last_contact_at = told + timedelta(hours=10)
        await session.commit()
    await escalate_stalled_deals(ctx(sessions, told + timedelta(hours=48)))
    assert len(await messages(sessions)) == 2
    await escalate_stalled_deals(ctx(sessions, told + timedelta(hours=58)))
    assert [m.payload["touser"] for m in await messages(sessions)][2:] == ["wangzong"]

    # Moving the deal to the next stage is progress; stalling there is a new stall for the rep.
    moved = told + timedelta(hours=60)
    async with sessions() as session:
        deal = await session.scalar(select(Deal).where(Deal.customer_id == talked))
        deal.stage, deal.stage_changed_at = "报价谈判", moved
        await session.commit()
    await escalate_stalled_deals(ctx(sessions, moved + timedelta(hours=47)))
    [noted_to_manager] = (await messages(sessions))[3:]  # meanwhile the noted deal sat still 48 h more
    assert noted_to_manager.payload["touser"] == "wangzong" and "钱敏" in content(noted_to_manager)
    await escalate_stalled_deals(ctx(sessions, moved + timedelta(hours=48)))
    [new_stall] = (await messages(sessions))[4:]
    assert new_stall.payload["touser"] == "lina" and "孙强 的商机在「报价谈判」" in content(new_stall)


async def test_a_backlog_of_stalled_deals_reaches_a_rep_a_few_at_a_time(env):  # noqa: F811
    sessions, _ = env
    team = await setup_team(sessions)
    rep = team["zhangwei"]
    entered = datetime(2026, 11, 1, 10, 0, tzinfo=TZ)
    for i in range(7):
        customer = await add_customer(sessions, f"客户{i}", rep)
        await add(sessions, Deal(customer_id=customer, owner_id=rep.id, stage="初访", stage_changed_at=entered))

    first = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
    assert await escalate_stalled_deals(ctx(sessions, first)) == \
        "5 stalled deal(s) told to reps, 0 escalated to managers; 2 left for the next run"
    assert await escalate_stalled_deals(ctx(sessions, first + timedelta(hours=1))) == \
        "2 stalled deal(s) told to reps, 0 escalated to managers"
    told = sorted(re.search(r"提醒：(客户\d) ", content(m)).group(1) for m in await messages(sessions))
    assert told == [f"客户{i}" for i in range(7)]  # each deal once


# -- dormant customers --------------------------------------------------------------------------------

async def test_quiet_customers_turn_dormant_with_a_reactivation_task_once(env):  # noqa: F811
    sessions, _ = env
    team = await setup_team(sessions)
    rep = team["zhangwei"]
    run = datetime(2026, 11, 30, 2, 0, tzinfo=TZ)
    gone_quiet = await add_customer(sessions, "赵磊", rep, company="华东精密", contacted=run - timedelta(days=100))
    never = await add_customer(sessions, "钱敏", rep, created=run - timedelta(days=120))
    recent = await add_customer(sessions, "孙强", rep, contacted=run - timedelta(days=30))
    churned = await add_customer(sessions, "李四", rep, lifecycle="churned", contacted=run - timedelta(days=300))
    unowned = await add_customer(sessions, "周五", None, contacted=run - timedelta(days=95))

    assert await mark_dormant_customers(ctx(sessions, run)) == \
        "3 customer(s) marked dormant; 1 dormant notice(s) queued for 1 staff"
    assert await mark_dormant_customers(ctx(sessions, run + timedelta(hours=1))) == \
        "0 customer(s) marked dormant; 0 dormant notice(s) queued for 1 staff"

    async with sessions() as session:
        lifecycles = dict((await session.execute(select(Customer.id, Customer.lifecycle))).all())
        follow_ups = (await session.scalars(select(FollowUp).order_by(FollowUp.customer_id))).all()
        audited = (await session.scalars(select(AuditEntry.customer_id).where(AuditEntry.action == "customer.dormant")
                                         .order_by(AuditEntry.customer_id))).all()
    assert lifecycles == {gone_quiet: "dormant", never: "dormant", recent: "prospect", churned: "churned",
                          unowned: "dormant"}
    assert audited == sorted([gone_quiet, never, unowned])
    assert [(f.customer_id, f.owner_id, f.due_at.astimezone(TZ)) for f in follow_ups] == [
        (gone_quiet, rep.id, datetime(2026, 11, 30, 10, 0, tzinfo=TZ)),
        (never, rep.id, datetime(2026, 11, 30, 10, 0, tzinfo=TZ))]
    assert follow_ups[0].text.startswith("沉睡客户唤醒：已 100 天没有互动（最近联系：2026-08-22）")
    assert follow_ups[1].text.startswith("沉睡客户唤醒：已 120 天没有互动（最近联系：从未联系）")

    [item] = await messages(sessions)
    assert item.payload["touser"] == "zhangwei"
    assert item.available_at.astimezone(TZ) == datetime(2026, 11, 30, 8, 0, tzinfo=TZ)  # not at 2 am
    text = content(item)
    assert "以下 2 位客户已 90 天以上没有互动，已转为「沉睡」客户" in text and "11-30 10:00" in text
    assert "赵磊（华东精密）" in text and "钱敏" in text and "孙强" not in text

    # The batched message was the reminder: no separate ping per customer when the tasks fall due.
    assert await remind_due_followups(ctx(sessions, datetime(2026, 11, 30, 10, 1, tzinfo=TZ))) == \
        "0 follow-up reminder(s) queued"


async def test_a_dormant_customer_wakes_up_when_the_rep_writes_a_note(env):  # noqa: F811
    sessions, _ = env
    rep = (await setup_team(sessions))["zhangwei"]
    run = datetime(2026, 11, 30, 2, 0, tzinfo=TZ)
    quiet = await add_customer(sessions, "赵磊", rep, contacted=run - timedelta(days=100))
    await mark_dormant_customers(ctx(sessions, run))
    async with sessions() as session:
        customer, author = await session.get(Customer, quiet), await session.get(Staff, rep.id)
        assert customer.lifecycle == "dormant"
        await NoteService(session).add(customer, author, "电话回访，客户有新需求", at=run + timedelta(hours=8))
        await session.commit()
        await session.refresh(customer)
        assert customer.lifecycle == "prospect"  # back to the stage it had before it went quiet


# -- contract renewals ---------------------------------------------------------------------------------

async def test_renewal_reminder_lists_contracts_ending_in_seven_days_once_per_rep(env):  # noqa: F811
    sessions, _ = env
    team = await setup_team(sessions)
    rep, other = team["zhangwei"], team["lina"]
    run = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
    await add_customer(sessions, "赵磊", rep, company="华东精密", contract_ends_on=date(2026, 12, 7))
    await add_customer(sessions, "钱敏", rep, contract_ends_on=date(2026, 12, 7))
    await add_customer(sessions, "孙强", rep, contract_ends_on=date(2026, 12, 6))
    await add_customer(sessions, "李四", other, contract_ends_on=date(2026, 12, 8))

    assert await remind_contract_renewals(ctx(sessions, run)) == "1 renewal reminder(s) queued for 1 staff"
    assert await remind_contract_renewals(ctx(sessions, run + timedelta(hours=2))) == \
        "0 renewal reminder(s) queued for 1 staff"

    [item] = await messages(sessions)
    assert item.payload["touser"] == "zhangwei"
    text = content(item)
    assert "以下 2 位客户的合同将于 2026-12-07（7 天后）到期" in text
    assert "赵磊（华东精密）" in text and "钱敏" in text and "孙强" not in text

    # The next day brings 李四's contract into range for the other rep only.
    assert await remind_contract_renewals(ctx(sessions, run + timedelta(days=1))) == \
        "1 renewal reminder(s) queued for 1 staff"
    assert [m.payload["touser"] for m in await messages(sessions)] == ["zhangwei", "lina"]
