"""Manager digests: each manager reads exactly their own departments' figures, weeks end on Sunday
24:00 local time, a re-run sends nothing twice, and a digest always fits WeCom's markdown limit."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import func, select

from config.templates import render
from crm_core.models import Customer, Deal, FollowUp, Message, OutboxItem, Staff
from crm_core.reports import CustomerMood, DealStats, Period, SentimentMix, TeamReport, TicketStats, team_report
from crm_core.scope import scope_for
from crm_core.ticket_models import Ticket, TicketEvent
from scheduler.digests import JOBS, MAX_BYTES, MAX_PARTS, render_digest, send_daily_digests, send_weekly_digests
from scheduler.runner import JobContext
from tests.support.chat import SHANGHAI as TZ

render = partial(render, kind="markdown")  # every digest line is markdown


def local(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


DAILY_RUN = local(27, 18)  # Friday 18:00: the window is Thursday 18:00 – Friday 18:00
WEEKLY_RUN = local(30, 9)  # Monday 09:00: the week of 23 – 29 November


def analysis(label: str, *keywords: str) -> dict:
    sentiment = {"positive": 0.6, "neutral": 0.0, "negative": -0.7}[label]
    return {"tokens": list(keywords), "keywords": list(keywords), "tags": [], "sentiment": sentiment, "label": label,
            "intents": [], "complaint_score": 0.8 if label == "negative" else 0.0}


class Company:
    """Two sales departments (10: 王芳's team, 20: 李强's team), a manager with no team (30), an admin."""

    def __init__(self, session):
        self.session = session
        self.seq = 0

    def staff(self, userid: str, name: str, role: str, *departments: int) -> Staff:
        person = Staff(userid=userid, name=name, role=role, department_ids=list(departments))
        self.session.add(person)
        return person

    def message(self, customer: Customer | None, direction: str, at: datetime, result: dict | None = None,
                staff: Staff | None = None) -> Message:
        self.seq += 1
        message = Message(channel="wecom_external", direction=direction, external_msg_id=f"m{self.seq}", msg_type="text",
                          text="…", customer_id=customer.id if customer else None, staff_id=staff.id if staff else None,
                          analysis=result, sent_at=at)
        self.session.add(message)
        return message

    def ticket(self, customer: Customer, created: datetime, status: str = "open") -> Ticket:
        self.seq += 1
        ticket = Ticket(number=f"T20261127-{self.seq:04d}", customer_id=customer.id,
                        open_key=str(customer.id) if status == "open" else None, status=status, category="quality",
                        priority="normal", group="aftersales", first_response_due_at=created + timedelta(hours=1),
                        resolution_due_at=created + timedelta(hours=4), created_at=created)
        self.session.add(ticket)
        return ticket


async def seed_company(sessions) -> dict[str, Staff]:
    async with sessions() as session:
        co = Company(session)
        wang = co.staff("wangfang", "王芳", "manager", 10)
        li = co.staff("liqiang", "李强", "manager", 20)
        co.staff("zhaomin", "赵敏", "manager", 30)
        boss = co.staff("zhouzong", "周总", "admin", 1)
        zhang, liu = co.staff("zhangwei", "张伟", "sales", 10), co.staff("liuyang", "刘洋", "sales", 10)
        chen = co.staff("chenjing", "陈静", "sales", 20)
        agent = co.staff("xiaomei", "小美", "support", 40)
        await session.flush()

        old = local(1, 10)
        zhao = Customer(name="赵磊", owner_id=zhang.id, created_at=local(27, 9))
        sun = Customer(name="孙丽", owner_id=liu.id, created_at=old, sentiment_score=-0.6)
        zhou = Customer(name="周强", owner_id=zhang.id, created_at=old, sentiment_score=-0.3)
        wu = Customer(name="吴敏", owner_id=liu.id, created_at=old, sentiment_score=-0.8)
        zheng = Customer(name="郑华", owner_id=chen.id, created_at=local(27, 10), sentiment_score=-0.9)
        qian = Customer(name="钱多", owner_id=chen.id, created_at=old)
        session.add_all([zhao, sun, zhou, wu, zheng, qian])
        await session.flush()

        # Department 10 within the window: 4 in (1 positive, 1 neutral, 2 negative), 2 out.
        co.message(zhao, "in", local(27, 10), analysis("positive", "报价", "交期"))
        sun_negative = co.message(sun, "in", local(27, 11), analysis("negative", "退款", "质量"))
        sun_again = co.message(sun, "in", local(27, 11, 5), analysis("neutral", "报价"))
        zhou_negative = co.message(zhou, "in", local(27, 12), analysis("negative", "退款", "物流"))
        co.message(zhao, "out", local(27, 10, 30), staff=zhang)
        co.message(sun, "out", local(27, 11, 30), staff=liu)
        co.message(sun, "in", local(26, 17, 59), analysis("negative", "退款"))  # a minute before the window
        wu_negative = co.message(wu, "in", local(17, 9), analysis("negative", "价格"))  # negative, but long ago
        # Department 20 within the window: 1 in, negative.
        zheng_negative = co.message(zheng, "in", local(27, 13), analysis("negative", "投诉", "发票"))
        # A rep chatting with the bot is no customer message, not even for the admin.
        co.message(None, "in", local(27, 14), analysis("neutral", "待办"), staff=zhang)
        await session.flush()
        sun.last_negative_message_id, zhou.last_negative_message_id = sun_negative.id, zhou_negative.id
        wu.last_negative_message_id, zheng.last_negative_message_id = wu_negative.id, zheng_negative.id

        # Tickets: 孙丽 complains twice and her ticket breaches its SLA (escalated to agent, then manager);
        # 周强's older ticket is resolved today; 郑华 opens one.
        sun_ticket = co.ticket(sun, local(27, 11))
        zhou_ticket = co.ticket(zhou, local(24, 9), status="resolved")
        zheng_ticket = co.ticket(zheng, local(27, 13))
        await session.flush()
        session.add_all([
            TicketEvent(ticket_id=sun_ticket.id, kind="created", message_id=sun_negative.id, created_at=local(27, 11)),
            TicketEvent(ticket_id=sun_ticket.id, kind="message", message_id=sun_again.id, created_at=local(27, 11, 5)),
            TicketEvent(ticket_id=sun_ticket.id, kind="assigned", actor_id=None, created_at=local(27, 11)),
            TicketEvent(ticket_id=sun_ticket.id, kind="escalated", detail="resolution -> agent", created_at=local(27, 15)),
            TicketEvent(ticket_id=sun_ticket.id, kind="escalated", detail="resolution -> manager",
                        created_at=local(27, 15, 30)),
            TicketEvent(ticket_id=zhou_ticket.id, kind="created", created_at=local(24, 9)),
            TicketEvent(ticket_id=zhou_ticket.id, kind="resolved", actor_id=agent.id, created_at=local(27, 14)),
            TicketEvent(ticket_id=zheng_ticket.id, kind="created", message_id=zheng_negative.id,
                        created_at=local(27, 13)),
        ])

        session.add_all([
            FollowUp(customer_id=zhao.id, owner_id=zhang.id, due_at=local(26, 10)),
            FollowUp(customer_id=zhou.id, owner_id=zhang.id, due_at=local(27, 9)),
            FollowUp(customer_id=sun.id, owner_id=liu.id, due_at=local(25, 15)),
            FollowUp(customer_id=wu.id, owner_id=liu.id, due_at=local(28, 10)),  # not due yet
            FollowUp(customer_id=wu.id, owner_id=liu.id, due_at=local(20, 10), status="done"),
            FollowUp(customer_id=zheng.id, owner_id=chen.id, due_at=local(27, 8)),
        ])
        session.add_all([
            Deal(customer_id=zhao.id, owner_id=zhang.id, stage="初访", status="open", fields={},
                 created_at=local(27, 10), stage_changed_at=local(27, 10)),
            Deal(customer_id=sun.id, owner_id=liu.id, stage="报价谈判", status="open", fields={"budget": 300000},
                 stage_changed_at=local(10, 10)),
            Deal(customer_id=zhou.id, owner_id=zhang.id, stage="赢单", status="won", fields={"budget": 500000},
                 stage_changed_at=local(27, 14), closed_at=local(27, 14)),
            Deal(customer_id=wu.id, owner_id=liu.id, stage="输单", status="lost", fields={}, lost_reason="价格太高",
                 stage_changed_at=local(27, 15), closed_at=local(27, 15)),
            Deal(customer_id=wu.id, owner_id=liu.id, stage="赢单", status="won", fields={"budget": 999999},
                 stage_changed_at=local(20, 10), closed_at=local(20, 10)),  # won last week
            Deal(customer_id=zheng.id, owner_id=chen.id, stage="方案演示", status="open", fields={},
                 stage_changed_at=local(20, 10)),
            Deal(customer_id=qian.id, owner_id=chen.id, stage="赢单", status="won", fields={"budget": 120000},
                 stage_changed_at=local(27, 16), closed_at=local(27, 16)),
        ])
        await session.commit()
    return {"wang": wang, "li": li, "boss": boss}


async def digest_parts(sessions, staff_id: int) -> list[str]:
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxItem).where(OutboxItem.staff_id == staff_id)
                                      .order_by(OutboxItem.id))).all()
    assert rows and all(r.kind == "app_message" and r.payload["msgtype"] == "markdown" for r in rows)
    return [row.payload["markdown"]["content"] for row in rows]


async def digest_for(sessions, staff_id: int) -> str:
    [content] = await digest_parts(sessions, staff_id)
    return content


async def test_the_report_counts_exactly_each_managers_departments(env):  # noqa: F811
    sessions, _ = env
    people = await seed_company(sessions)
    period = Period.day_before(DAILY_RUN, TZ)
    async with sessions() as session:
        east = await team_report(session, await scope_for(session, people["wang"]), period)
        south = await team_report(session, await scope_for(session, people["li"]), period)
        company = await team_report(session, await scope_for(session, people["boss"]), period)

    assert (east.new_customers, east.messages_in, east.messages_out) == (1, 4, 2)
    assert east.sentiment == SentimentMix(positive=1, neutral=1, negative=2)
    assert [(c.name, c.sentiment) for c in east.trending_negative] == [("孙丽", -0.6), ("周强", -0.3)]
    assert east.tickets == TicketStats(complaints=2, opened=1, resolved=1, sla_breached=1)
    assert [(r.name, r.count) for r in east.overdue_followups] == [("张伟", 2), ("刘洋", 1)]
    assert east.deals == DealStats(open_by_stage={"初访": 1, "报价谈判": 1}, moved=1, won=1, lost=1, won_amount=500000)
    assert east.keywords == [("报价", 2), ("退款", 2), ("交期", 1), ("物流", 1), ("质量", 1)]

    assert (south.new_customers, south.messages_in, south.messages_out) == (1, 1, 0)
    assert south.sentiment == SentimentMix(negative=1)
    assert south.trending_negative == [CustomerMood(south.trending_negative[0].customer_id, "郑华", -0.9)]
    assert south.tickets == TicketStats(complaints=1, opened=1)
    assert [(r.name, r.count) for r in south.overdue_followups] == [("陈静", 1)]
    assert south.deals == DealStats(open_by_stage={"方案演示": 1}, won=1, won_amount=120000)
    assert south.keywords == [("发票", 1), ("投诉", 1)]

    # The admin sees the whole company: both teams added up, and nothing that is not a customer's.
    assert (company.new_customers, company.messages_in, company.messages_out) == (2, 5, 2)
    assert company.tickets == TicketStats(complaints=3, opened=2, resolved=1, sla_breached=1)
    assert company.deals.won_amount == 620000
    assert [r.name for r in company.overdue_followups][0] == "张伟"
    assert [c.name for c in company.trending_negative] == ["郑华", "孙丽", "周强"]


async def test_each_manager_gets_a_daily_digest_of_their_own_team_only(env):  # noqa: F811
    sessions, _ = env
    people = await seed_company(sessions)
    summary = await send_daily_digests(JobContext(sessions, DAILY_RUN, TZ))
    assert summary == "4 daily digest(s) queued for 4 manager(s)/admin(s)"

    east = await digest_for(sessions, people["wang"].id)
    assert east.startswith(render("digests.daily_title", date="11月27日"))
    assert render("digests.period", start="11-26 18:00", end="11-27 18:00") in east
    for line in (render("digests.new_customers", count=1),
                 render("digests.messages", incoming=4, outgoing=2),
                 render("digests.sentiment", positive=1, neutral=1, negative=2),
                 render("digests.trending_line", name="孙丽", score=-0.6),
                 render("digests.trending_line", name="周强", score=-0.3),
                 render("digests.tickets", complaints=2, opened=1, resolved=1, breached=1),
                 render("digests.overdue_line", name="张伟", count=2),
                 render("digests.overdue_line", name="刘洋", count=1),
                 render("digests.deals_open", stages="初访 1 · 报价谈判 1"),
                 render("digests.deals_changed_amount", moved=1, won=1, lost=1, amount="50万"),
                 render("digests.keywords", words="报价(2)、退款(2)、交期(1)、物流(1)、质量(1)")):
        assert line in east
    for other_team in ("郑华", "陈静", "方案演示", "投诉(", "12万", "吴敏", render("digests.quiet_daily")):
        assert other_team not in east

    south = await digest_for(sessions, people["li"].id)
    for line in (render("digests.messages", incoming=1, outgoing=0),
                 render("digests.trending_line", name="郑华", score=-0.9),
                 render("digests.tickets", complaints=1, opened=1, resolved=0, breached=0),
                 render("digests.deals_changed_amount", moved=0, won=1, lost=0, amount="12万")):
        assert line in south
    for other_team in ("孙丽", "张伟", "刘洋", "报价", "50万"):
        assert other_team not in south

    company = await digest_for(sessions, people["boss"].id)
    assert render("digests.company_wide") in company and render("digests.messages", incoming=5, outgoing=2) in company

    # The manager of an empty department hears that nothing happened rather than nothing at all.
    async with sessions() as session:
        quiet_manager = await session.scalar(select(Staff).where(Staff.userid == "zhaomin"))
        reps = await session.scalar(select(func.count()).select_from(OutboxItem).where(
            OutboxItem.staff_id.not_in([people["wang"].id, people["li"].id, people["boss"].id, quiet_manager.id])))
    quiet = await digest_for(sessions, quiet_manager.id)
    assert render("digests.quiet_daily") in quiet and len(quiet.splitlines()) <= 4
    assert reps == 0  # sales reps and support agents get no digest


async def test_running_twice_sends_one_digest_per_manager(env):  # noqa: F811
    sessions, _ = env
    await seed_company(sessions)
    ctx = JobContext(sessions, DAILY_RUN, TZ)
    assert await JOBS["digests.daily"](ctx) == "4 daily digest(s) queued for 4 manager(s)/admin(s)"
    assert await JOBS["digests.daily"](ctx) == "0 daily digest(s) queued for 4 manager(s)/admin(s)"
    # A manual run later the same evening is still the same day's digest.
    assert (await JOBS["digests.daily"](JobContext(sessions, local(27, 21), TZ))).startswith("0 ")
    async with sessions() as session:
        keys = (await session.scalars(select(OutboxItem.idempotency_key).order_by(OutboxItem.id))).all()
        managers = (await session.scalars(select(Staff.id).where(Staff.role.in_(("manager", "admin")))
                                          .order_by(Staff.id))).all()
    assert keys == [f"digest:daily:{m}:2026-11-27" for m in managers]


async def test_the_weekly_digest_covers_monday_to_sunday_local_time(env):  # noqa: F811
    sessions, _ = env
    async with sessions() as session:
        co = Company(session)
        manager, rep = co.staff("wangfang", "王芳", "manager", 10), co.staff("zhangwei", "张伟", "sales", 10)
        newcomer = co.staff("zhaomin", "赵敏", "manager", 30)  # a department nobody has joined yet
        await session.flush()
        customer = Customer(name="赵磊", owner_id=rep.id, created_at=local(1))
        session.add(customer)
        await session.flush()
        co.message(customer, "in", local(22, 23, 59), analysis("neutral", "上周"))  # Sunday before: previous week
        co.message(customer, "in", local(23, 0, 0), analysis("neutral", "周一"))  # Monday 00:00: first moment
        co.message(customer, "in", local(29, 23, 30), analysis("negative", "周日"))  # Sunday 23:30: still this week
        co.message(customer, "in", local(30, 0, 10), analysis("positive", "下周"))  # Monday 00:10: next week
        await session.commit()

    assert await send_weekly_digests(JobContext(sessions, WEEKLY_RUN, TZ)) == \
        "2 weekly digest(s) queued for 2 manager(s)/admin(s)"
    content = await digest_for(sessions, manager.id)
    assert content.startswith(render("digests.weekly_title", start="11月23日", end="11月29日"))
    assert render("digests.messages", incoming=2, outgoing=0) in content
    assert render("digests.keywords", words="周一(1)、周日(1)") in content
    assert render("digests.quiet_weekly") not in content
    assert render("digests.quiet_weekly") in await digest_for(sessions, newcomer.id)
    async with sessions() as session:
        keys = (await session.scalars(select(OutboxItem.idempotency_key).order_by(OutboxItem.id))).all()
    assert keys == [f"digest:weekly:{manager.id}:2026-W48", f"digest:weekly:{newcomer.id}:2026-W48"]

    # Run again later that Monday (a manual re-run): still week 48, still one message.
    assert (await send_weekly_digests(JobContext(sessions, local(30, 17), TZ))).startswith("0 ")


async def test_a_busy_digest_is_split_into_messages_that_fit_wecom_markdown(env):  # noqa: F811
    sessions, _ = env
    async with sessions() as session:
        co = Company(session)
        manager = co.staff("boss", "大区经理", "manager", 10)
        reps = [co.staff(f"rep{i:02d}", f"销售{i:02d}号" + "长名" * 28, "sales", 10) for i in range(40)]
        await session.flush()
        for i, rep in enumerate(reps):
            customer = Customer(name=f"客户{i:02d}" + "有限公司" * 30, owner_id=rep.id, created_at=local(27, 9),
                                sentiment_score=-0.9 + i / 100)
            session.add(customer)
            await session.flush()
            words = [f"关键词{i:02d}{j}" + "很长" * 20 for j in range(10)]
            message = co.message(customer, "in", local(27, 10), analysis("negative", *words))
            await session.flush()
            customer.last_negative_message_id = message.id
            # Rep 0 has the most overdue follow-ups, rep 39 the fewest.
            session.add_all([FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=local(26, 9))
                             for _ in range(1 + (40 - i) // 10)])
        await session.commit()

    ctx = JobContext(sessions, DAILY_RUN, TZ)
    await send_daily_digests(ctx)
    parts = await digest_parts(sessions, manager.id)
    assert 1 < len(parts) <= MAX_PARTS and all(len(p.encode("utf-8")) <= MAX_BYTES for p in parts)
    title = render("digests.daily_title", date="11月27日")
    assert parts[0].startswith(title + "\n")
    assert [p.split("\n")[0] for p in parts[1:]] == [
        title + render("digests.continued", part=n, parts=len(parts)) for n in range(2, len(parts) + 1)]
    content = "\n".join(parts)
    assert render("digests.overdue_line", name=reps[0].name, count=5) in content
    assert render("digests.messages", incoming=40, outgoing=0) in content
    shown_reps = sum(line.startswith("> 销售") for line in content.splitlines())
    assert render("digests.more", count=40 - shown_reps) in content
    # A second run queues no part twice.
    assert (await send_daily_digests(ctx)).startswith("0 ")
    assert await digest_parts(sessions, manager.id) == parts


def test_even_an_absurdly_long_item_cannot_push_a_digest_past_the_limit():
    period = Period.day_before(DAILY_RUN, TZ)
    report = TeamReport(period=period, as_of=period.end, new_customers=3, messages_in=9, messages_out=4,
                        sentiment=SentimentMix(positive=9), trending_negative=[], tickets=TicketStats(),
                        overdue_followups=[], deals=DealStats(open_by_stage={}), keywords=[("超长" * 1500, 9)])
    [content] = render_digest("daily", report, TZ)
    assert len(content.encode("utf-8")) <= MAX_BYTES
    assert render("digests.new_customers", count=3) in content and content.endswith(render("digests.truncated"))
