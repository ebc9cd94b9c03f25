"""Funnel and forecast on a fixed history, on both backends: the conversion and median arithmetic a
manager checks by hand, channel and department breakdowns, the forecast with configured and with
learned probabilities, one kept snapshot per month and scope, last month against what was won,
the `scrm report` output and the weekly digest's forecast section."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import select

from config.templates import render
from crm_core.deals import DealService, default_stages
from crm_core.forecast import ForecastSettings, make_forecast, outlook, scope_key
from crm_core.funnel import UNKNOWN_CHANNEL, funnel
from crm_core.models import ContactChannel, Customer, Deal, DealStageChange, ForecastSnapshot, OutboxItem, Staff
from crm_core.reports import Period
from crm_core.scope import Scope, scope_for
from scheduler.digests import send_weekly_digests
from scheduler.forecast_jobs import JOBS, forecast_settings
from scheduler.runner import JobContext
from scrm.cli import main as cli
from tests.support.chat import SHANGHAI as TZ

NOW = datetime(2026, 12, 10, 10, 0, tzinfo=TZ)  # the forecast's month: December 2026
NOVEMBER = Period.local(datetime(2026, 11, 1, tzinfo=TZ), datetime(2026, 12, 1, tzinfo=TZ))


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=TZ)


async def seed(sessions) -> dict[str, Staff]:
    """Two teams, one 渠道活码, and deals whose history is written out below (local times, 10:00).

    dept 10 (张伟): A 展会2026, B 展会2026, C 官网, D (no source, October), G (December)
    dept 20 (陈静): E 官网, F 展会2026
      dA  初访 11-02 → 需求确认 11-04 → 方案演示 11-10 → 赢单 11-20   50万
      dB  初访 11-03 → 需求确认 11-07 → 输单 11-12
      dC  初访 11-05 → 方案演示 11-06 (open)                            20万
      dD  初访 10-15 → 报价谈判 11-08 (open)                            30万
      dE  初访 11-06 → 方案演示 11-16 → 赢单 11-26                      10万
      dF  初访 11-20 (open)                                              9万
      dG  初访 12-01 → 签约回款 12-05 (open)                           100万
      dH  初访 12-02 → 赢单 12-08 (E's second deal)                      8万
    """
    async with sessions() as session:
        wang = Staff(userid="wangfang", name="王芳", role="manager", department_ids=[10])
        li = Staff(userid="liqiang", name="李强", role="manager", department_ids=[20])
        boss = Staff(userid="zhouzong", name="周总", role="admin", department_ids=[1])
        zhang = Staff(userid="zhangwei", name="张伟", role="sales", department_ids=[10])
        chen = Staff(userid="chenjing", name="陈静", role="sales", department_ids=[20])
        expo = ContactChannel(name="展会2026", state="expo2026")
        session.add_all([wang, li, boss, zhang, chen, expo])
        await session.flush()

        def customer(name: str, owner: Staff, created: datetime, channel: ContactChannel | None = None,
                     source: str = "") -> Customer:
            c = Customer(name=name, owner_id=owner.id, created_at=created, source=source,
                         source_channel_id=channel.id if channel else None)
            session.add(c)
            return c

        a, b = customer("A", zhang, at(11, 2, 9), expo), customer("B", zhang, at(11, 3, 9), expo)
        c, d = customer("C", zhang, at(11, 5, 9), source="官网"), customer("D", zhang, at(10, 15, 9))
        g = customer("G", zhang, at(12, 1, 9))
        e, f = customer("E", chen, at(11, 6, 9), source="官网"), customer("F", chen, at(11, 20, 9), expo)
        await session.flush()

        def deal(who: Customer, history: list[tuple[str, datetime]], budget: int | None = None) -> None:
            last_stage, last_at = history[-1]
            status = {"赢单": "won", "输单": "lost"}.get(last_stage, "open")
            row = Deal(customer_id=who.id, owner_id=who.owner_id, stage=last_stage, status=status,
                       fields={"budget": budget} if budget else {}, created_at=history[0][1],
                       stage_changed_at=last_at, closed_at=last_at if status != "open" else None)
            session.add(row)
            previous = ""
            for stage, when in history:
                row_changes.append((row, previous, stage, when))
                previous = stage

        row_changes: list = []
        deal(a, [("初访", at(11, 2)), ("需求确认", at(11, 4)), ("方案演示", at(11, 10)), ("赢单", at(11, 20))], 500_000)
        deal(b, [("初访", at(11, 3)), ("需求确认", at(11, 7)), ("输单", at(11, 12))])
        deal(c, [("初访", at(11, 5)), ("方案演示", at(11, 6))], 200_000)
        deal(d, [("初访", at(10, 15)), ("报价谈判", at(11, 8))], 300_000)
        deal(e, [("初访", at(11, 6)), ("方案演示", at(11, 16)), ("赢单", at(11, 26))], 100_000)
        deal(f, [("初访", at(11, 20))], 90_000)
        deal(g, [("初访", at(12, 1)), ("签约回款", at(12, 5))], 1_000_000)
        deal(e, [("初访", at(12, 2)), ("赢单", at(12, 8))], 80_000)
        await session.flush()
        session.add_all(DealStageChange(deal_id=row.id, customer_id=row.customer_id, owner_id=row.owner_id,
                                        from_stage=previous, to_stage=stage, changed_at=when)
                        for row, previous, stage, when in row_changes)
        await session.commit()
    return {"wang": wang, "li": li, "boss": boss, "zhang": zhang}


async def scope_of(session, staff: Staff) -> Scope:
    return await scope_for(session, staff)


def rows(result) -> list[tuple]:
    return [(r.stage, r.reached, _r(r.next_rate), _r(r.win_rate), r.median_days, r.stays) for r in result.stages]


def _r(share: float | None) -> float | None:
    return None if share is None else round(share, 3)


async def test_a_move_records_every_stage_a_deal_enters(env):  # noqa: F811
    sessions, _ = env
    people = await seed(sessions)
    async with sessions() as session:
        customer = await session.scalar(select(Customer).where(Customer.name == "B"))
        rep = await session.get(Staff, people["zhang"].id)
        service = DealService(session, default_stages())
        first, _ = await service.move(customer, "初访", rep, values={}, at=at(12, 1))
        await service.move(customer, "需求确认", rep, values={}, at=at(12, 2))
        await service.move(customer, "需求确认", rep, values={}, at=at(12, 3))  # no move: nothing recorded
        await service.move(customer, "报价谈判", rep, values={"budget": "12万"}, at=at(12, 4))
        await service.move(customer, "赢单", rep, values={}, at=at(12, 5))
        second, _ = await service.move(customer, "初访", rep, values={}, at=at(12, 6))  # a new deal
        await session.commit()
        history = (await session.execute(
            select(DealStageChange.deal_id, DealStageChange.from_stage, DealStageChange.to_stage,
                   DealStageChange.changed_at, DealStageChange.owner_id)
            .where(DealStageChange.deal_id.in_((first.id, second.id))).order_by(DealStageChange.id))).all()
    assert [(d, f, t, w.astimezone(TZ).day, o) for d, f, t, w, o in history] == [
        (first.id, "", "初访", 1, rep.id), (first.id, "初访", "需求确认", 2, rep.id),
        (first.id, "需求确认", "报价谈判", 4, rep.id), (first.id, "报价谈判", "赢单", 5, rep.id),
        (second.id, "", "初访", 6, rep.id)]


async def test_funnel_conversion_medians_and_won_for_the_company(env):  # noqa: F811
    sessions, _ = env
    people = await seed(sessions)
    async with sessions() as session:
        result = await funnel(session, await scope_of(session, people["boss"]), NOVEMBER, default_stages())
    assert (result.customers, result.deals_opened, result.cohort_won) == (5, 5, 2)
    assert (result.won_deals, result.won_amount) == (2, 600_000)
    # Reached: every deal 初访; A, B, C, E 需求确认 (E skipped it but went further); A, C, E 方案演示; the won
    # A and E everything. Stays that ended in November: 初访 1 (C), 2 (A), 4 (B), 10 (E), 24 (D, from October).
    assert rows(result) == [
        ("初访", 5, 0.8, 0.4, 4.0, 5),
        ("需求确认", 4, 0.75, 0.5, 5.5, 2),
        ("方案演示", 3, 0.667, 0.667, 10.0, 2),
        ("报价谈判", 2, 1.0, 1.0, None, 0),
        ("签约回款", 2, 1.0, 1.0, None, 0),
    ]


async def test_the_channel_breakdown_adds_up_to_the_whole(env):  # noqa: F811
    sessions, _ = env
    people = await seed(sessions)
    async with sessions() as session:
        result = await funnel(session, await scope_of(session, people["boss"]), NOVEMBER, default_stages())
    by = {c.channel: c for c in result.channels}
    assert [c.channel for c in result.channels] == ["展会2026", "官网", UNKNOWN_CHANNEL]
    expo, web, unknown = by["展会2026"], by["官网"], by[UNKNOWN_CHANNEL]
    assert (expo.customers, expo.deals_opened, expo.reached, expo.won_deals, expo.won_amount) == \
        (3, 3, (3, 2, 1, 1, 1, 1), 1, 500_000)
    assert expo.median_days == (3.0, 5.5, 10.0, None, None)
    assert (web.customers, web.deals_opened, web.reached, web.won_deals, web.won_amount) == \
        (2, 2, (2, 2, 2, 1, 1, 1), 1, 100_000)
    assert web.median_days == (5.5, None, 10.0, None, None)
    # D came with no source in October: no new customer or deal in November, but its 初访 stay ended then.
    assert (unknown.customers, unknown.deals_opened, unknown.median_days[0]) == (0, 0, 24.0)
    assert sum(c.customers for c in result.channels) == result.customers
    assert [sum(c.reached[i] for c in result.channels) for i in range(6)] == [r.reached for r in result.stages] + [2]


async def test_each_manager_sees_only_their_departments(env):  # noqa: F811
    sessions, _ = env
    people = await seed(sessions)
    async with sessions() as session:
        east = await funnel(session, await scope_of(session, people["wang"]), NOVEMBER, default_stages())
        south = await funnel(session, await scope_of(session, people["li"]), NOVEMBER, default_stages())
    assert (east.customers, east.deals_opened, east.won_deals, east.won_amount) == (3, 3, 1, 500_000)
    assert [(r.reached, r.median_days) for r in east.stages][:2] == [(3, 3.0), (3, 5.5)]  # 初访 1, 2, 4, 24
    assert {c.channel for c in east.channels} == {"展会2026", "官网", UNKNOWN_CHANNEL}
    assert (south.customers, south.deals_opened, south.won_deals, south.won_amount) == (2, 2, 1, 100_000)
    assert [r.reached for r in south.stages] == [2, 1, 1, 1, 1] and south.stages[0].median_days == 10.0


async def test_forecast_with_the_configured_probabilities(env):  # noqa: F811
    sessions, _ = env
    people = await seed(sessions)
    async with sessions() as session:
        company = await make_forecast(session, Scope(0, None), default_stages(), forecast_settings(), NOW, TZ)
        east = await make_forecast(session, await scope_of(session, people["wang"]), default_stages(), forecast_settings(),
                                   NOW, TZ)
    stages = {s.stage: s for s in company.stages}
    assert not any(s.probability_learned or s.days_learned for s in company.stages)  # 3 closed deals: too few
    # F entered 初访 on 11-20: 75 days to close → February. C (方案演示 11-06 + 40 d), D (报价谈判, overdue) and
    # G (签约回款 12-05 + 10 d) are expected in December.
    assert [(s.open_deals, s.in_month_deals, s.in_month_amount) for s in company.stages] == [
        (1, 0, 0), (0, 0, 0), (1, 1, 200_000), (1, 1, 300_000), (1, 1, 1_000_000)]
    assert (company.won_deals, company.won_amount) == (1, 80_000)  # H, won 12-08
    assert company.amount == pytest.approx(80_000 + 200_000 * 0.30 + 300_000 * 0.50 + 1_000_000 * 0.85)  # 114万
    assert company.deals == pytest.approx(1 + 0.30 + 0.50 + 0.85)
    assert stages["初访"].open_amount == 90_000
    assert east.amount == pytest.approx(1_060_000) and east.won_deals == 0


async def test_forecast_learns_probabilities_once_enough_deals_closed(env):  # noqa: F811
    sessions, _ = env
    await seed(sessions)
    defaults = forecast_settings().defaults
    # Three closed deals (A won, B lost, E won) reached 初访 and 需求确认; only A and E reached 方案演示.
    strict = ForecastSettings(learn_months=6, min_closed_deals=3, min_won_deals=2, defaults=defaults)
    async with sessions() as session:
        learned = await make_forecast(session, Scope(0, None), default_stages(), strict, NOW, TZ)
        stale = await make_forecast(session, Scope(0, None), default_stages(),
                                    ForecastSettings(1, 3, 2, defaults), datetime(2027, 3, 1, tzinfo=TZ), TZ)
    by = {s.stage: s for s in learned.stages}
    assert (by["初访"].probability, by["初访"].probability_learned, by["初访"].closed_sample) == \
        (pytest.approx(2 / 3), True, 3)
    assert (by["需求确认"].probability, by["需求确认"].probability_learned) == (pytest.approx(2 / 3), True)
    assert (by["方案演示"].probability, by["方案演示"].probability_learned, by["方案演示"].closed_sample) == (0.30, False, 2)
    # Days to close from the last entry to the win: 初访 A 18, E 20 → 19; 方案演示 A 10, E 10 → 10;
    # 需求确认 only A (16), below the minimum of 2 → the default 55.
    assert (by["初访"].days_to_close, by["初访"].days_learned) == (pytest.approx(19.0), True)
    assert (by["方案演示"].days_to_close, by["方案演示"].days_learned) == (pytest.approx(10.0), True)
    assert (by["需求确认"].days_to_close, by["需求确认"].days_learned) == (55.0, False)
    # So F (初访 11-20 + 19 d) is now expected in December, at 2/3.
    assert by["初访"].in_month_amount == 90_000
    assert learned.amount == pytest.approx(80_000 + 90_000 * 2 / 3 + 60_000 + 150_000 + 850_000)  # 120万
    # Learning looks only at the last complete months: none of these deals closed in February 2027.
    assert not any(s.probability_learned or s.days_learned for s in stale.stages)


async def test_one_snapshot_per_month_and_scope_and_last_month_against_actual(env):  # noqa: F811
    sessions, _ = env
    people = await seed(sessions)
    async with sessions() as session:
        session.add_all([ForecastSnapshot(month="2026-11", scope="dept:10", amount=400_000, deals=1, detail={},
                                          made_at=at(11, 1, 0)),
                         ForecastSnapshot(month="2026-11", scope="company", amount=500_000, deals=2, detail={},
                                          made_at=at(11, 1, 0))])
        await session.commit()

    first_of_month = JobContext(sessions, datetime(2026, 12, 1, 0, 10, tzinfo=TZ), TZ)
    assert await JOBS["forecast.snapshot"](first_of_month) == \
        "3 forecast snapshot(s) kept for 2026-12 (0 of 3 scope(s) already had one)"
    assert await JOBS["forecast.snapshot"](first_of_month) == \
        "0 forecast snapshot(s) kept for 2026-12 (3 of 3 scope(s) already had one)"

    async with sessions() as session:
        boss = await session.get(Staff, people["boss"].id)
        wang = await session.get(Staff, people["wang"].id)
        company = await outlook(session, Scope(0, None), scope_key(boss, Scope(0, None)), default_stages(),
                                forecast_settings(), NOW, TZ)
        east_scope = await scope_of(session, wang)
        east = await outlook(session, east_scope, scope_key(wang, east_scope), default_stages(), forecast_settings(), NOW, TZ)
        await session.commit()
        kept = {(s.month, s.scope): s for s in (await session.scalars(select(ForecastSnapshot))).all()}
    assert set(kept) == {("2026-11", "dept:10"), ("2026-11", "company"), ("2026-12", "company"),
                         ("2026-12", "dept:10"), ("2026-12", "dept:20")}
    # The December snapshot is the one made on the 1st (before H was won), not today's 114万.
    assert kept[("2026-12", "company")].amount == pytest.approx(1_060_000)
    assert not company.snapshot_made and company.forecast.amount == pytest.approx(1_140_000)
    # November: 50万 forecast, A and E won (60万): 120 %; dept 10 forecast 40万, A won (50万): 125 %.
    review = company.last_month
    assert (review.month.label, review.forecast_amount, review.won_deals, review.won_amount) == \
        ("2026-11", 500_000, 2, 600_000)
    assert review.accuracy == pytest.approx(1.2)
    assert (east.last_month.forecast_amount, east.last_month.won_amount, east.last_month.accuracy) == \
        (400_000, 500_000, pytest.approx(1.25))


async def scrm(capsys, *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", *argv])
    return code, capsys.readouterr().out


def normalized(out: str) -> list[str]:
    return [" ".join(line.split()) for line in out.splitlines()]


async def test_report_commands_print_what_a_manager_reads(env, backend, monkeypatch, capsys):  # noqa: F811
    sessions, _ = env
    await seed(sessions)
    monkeypatch.setenv("SCRM_DATABASE_URL", backend.database_url)
    monkeypatch.delenv("SCRM_CONFIG", raising=False)

    code, out = await scrm(capsys, "report", "funnel", "--since", "2026-11-01", "--until", "2026-11-30",
                           "--as", "wangfang", "--at", "2026-12-10T10:00+08:00")
    lines = normalized(out)
    assert code == 0
    assert lines[0] == " ".join(render("funnel.title", start="2026-11-01", end="2026-11-30", scope="王芳 的范围").split())
    assert lines[1] == render("funnel.summary", customers=3, deals=3, won=1, amount="50万")
    assert "初访 3 100.0% 33.3% 3.0 天（4 次）" in lines
    assert "方案演示 2 50.0% 50.0% 10.0 天（1 次）" in lines
    assert "展会2026 2 2 2 2 1 1 1 1 1 50万" in lines
    assert "官网 1 1 1 1 1 0 0 0 0 0元" in lines
    assert "陈静" not in out and "9万" not in out

    code, out = await scrm(capsys, "report", "forecast", "--at", "2026-12-10T10:00+08:00")
    lines = normalized(out)
    assert code == 0
    assert lines[1] == render("forecast.summary", amount="114万", deals=3, won="8万", won_deals=1)
    assert "签约回款 1 100万 1 100万 85.0%（默认） 10 天（默认）" in lines
    assert render("forecast.review_no_snapshot", month="2026-11", actual="60万", actual_deals=2) in lines
    assert render("forecast.snapshot_made") in lines
    code, again = await scrm(capsys, "report", "forecast", "--at", "2026-12-10T11:00+08:00")
    assert code == 0 and render("forecast.snapshot_made") not in again

    code, _ = await scrm(capsys, "report", "forecast", "--as", "nobody")
    assert code == 2


async def test_the_weekly_digest_shows_the_forecast_against_last_month(env):  # noqa: F811
    sessions, _ = env
    people = await seed(sessions)
    async with sessions() as session:
        session.add(ForecastSnapshot(month="2026-11", scope="dept:10", amount=400_000, deals=1, detail={},
                                     made_at=at(11, 1, 0)))
        await session.commit()
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=TZ)
    await send_weekly_digests(JobContext(sessions, monday, TZ))
    async with sessions() as session:
        digests = {row.staff_id: row.payload["markdown"]["content"]
                   for row in (await session.scalars(select(OutboxItem))).all()}
        kept = (await session.scalars(select(ForecastSnapshot.scope).where(ForecastSnapshot.month == "2026-12")
                                      .order_by(ForecastSnapshot.scope))).all()
    east = digests[people["wang"].id]
    # As of 12-07, dept 10's C, D and G: 6万 + 15万 + 85万, nothing won yet in December.
    assert render("forecast.digest_month", kind="markdown", amount="106万", deals=2, won="0元") in east
    assert render("forecast.digest_review", kind="markdown", forecast="40万", actual="50万", actual_deals=1, ratio="125%") in east
    company = digests[people["boss"].id]
    assert render("forecast.digest_review_none", kind="markdown", actual="60万", actual_deals=2) in company
    assert kept == ["company", "dept:10", "dept:20"]  # the digest was December's first forecast for each
