"""The 看板's query layer (crm_core.dashboard) on the funnel tests' fixed history, on both backends:
where deals are lost, the six-month trend of won deals, average size and median cycle, the
department filter within what a viewer may choose, and the forecast snapshot kept per view."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import select, update

from crm_core import dashboard
from crm_core.deals import default_stages
from crm_core.models import Customer, Deal, DealStageChange, ForecastSnapshot
from crm_core.targets import SalesTarget
from scheduler.forecast_jobs import forecast_settings
from tests.support.chat import SHANGHAI as TZ
from tests.test_funnel import at, seed

NOW = datetime(2026, 12, 10, 10, 0, tzinfo=TZ)


async def seed_more(sessions) -> dict:
    """The funnel history, B's lost reason, and I (张伟's): 初访 11-09 → 报价谈判 11-12 → 输单 11-25, 40万."""
    people = await seed(sessions)
    async with sessions() as session:
        await session.execute(update(Deal).where(Deal.status == "lost").values(lost_reason="选了竞品"))
        i = Customer(name="I", owner_id=people["zhang"].id, created_at=at(11, 9, 9))
        session.add(i)
        await session.flush()
        deal = Deal(customer_id=i.id, owner_id=i.owner_id, stage="输单", status="lost", fields={"budget": 400_000},
                    lost_reason=" 价格太高 ", created_at=at(11, 9), stage_changed_at=at(11, 25), closed_at=at(11, 25))
        session.add(deal)
        await session.flush()
        for previous, stage, when in (("", "初访", at(11, 9)), ("初访", "报价谈判", at(11, 12)),
                                      ("报价谈判", "输单", at(11, 25))):
            session.add(DealStageChange(deal_id=deal.id, customer_id=i.id, owner_id=i.owner_id, from_stage=previous,
                                        to_stage=stage, changed_at=when))
        session.add(SalesTarget(month="2026-11", kind="staff", subject_id=people["zhang"].id, amount=1_000_000))
        session.add(SalesTarget(month="2026-11", kind="department", subject_id=10, amount=2_000_000))
        await session.commit()
    return people


async def view(session, viewer, since: date, until: date, department: int | None = None) -> dashboard.View:
    return await dashboard.make_view(session, viewer, since, until, TZ, department)


NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


async def test_where_deals_are_lost_by_stage_and_reason(env):  # noqa: F811
    sessions, _ = env
    people = await seed_more(sessions)
    async with sessions() as session:
        company = await dashboard.losses(session, await view(session, None, *NOVEMBER), default_stages())
        east = await dashboard.losses(session, await view(session, people["wang"], *NOVEMBER), default_stages())
        west = await dashboard.losses(session, await view(session, people["li"], *NOVEMBER), default_stages())
        december = await dashboard.losses(session, await view(session, None, date(2026, 12, 1), date(2026, 12, 31)),
                                          default_stages())
    assert (company.deals, company.amount) == (2, 400_000)
    assert [(s.stage, s.deals, s.amount) for s in company.stages] == [("需求确认", 1, 0), ("报价谈判", 1, 400_000)]
    assert company.reasons == [("价格太高", 1), ("选了竞品", 1)]
    assert (east.deals, west.deals, december.deals) == (2, 0, 0)
    assert west.stages == [] and west.reasons == []


async def test_the_six_month_trend_of_won_deals_size_and_cycle(env):  # noqa: F811
    sessions, _ = env
    people = await seed_more(sessions)
    async with sessions() as session:
        company = await dashboard.trend(session, await view(session, None, date(2026, 12, 1), date(2026, 12, 10)))
        east = await dashboard.trend(session, await view(session, people["wang"], date(2026, 12, 1), date(2026, 12, 10)))
        november = await dashboard.trend(session, await view(session, None, *NOVEMBER))
    assert [m.month for m in company] == ["2026-07", "2026-08", "2026-09", "2026-10", "2026-11", "2026-12"]
    assert [(m.won_deals, m.won_amount, m.average_amount, m.median_cycle_days) for m in company[-3:]] == [
        (0, 0, None, None), (2, 600_000, 300_000.0, 19.0), (1, 80_000, 80_000.0, 6.0)]  # A 18 d, E 20 d; H 6 d
    assert [(m.won_deals, m.median_cycle_days) for m in east[-2:]] == [(1, 18.0), (0, None)]
    assert november[-1].month == "2026-11" and november[0].month == "2026-06"


async def test_a_department_narrows_the_view_within_what_the_viewer_may_choose(env):  # noqa: F811
    sessions, _ = env
    people = await seed_more(sessions)
    async with sessions() as session:
        assert await dashboard.visible_departments(session, people["wang"]) == {10: "#10"}
        assert set(await dashboard.visible_departments(session, people["boss"])) == {1, 10, 20}
        assert await dashboard.visible_departments(session, people["zhang"]) == {}
        with pytest.raises(dashboard.DepartmentNotVisibleError):
            await view(session, people["wang"], *NOVEMBER, department=20)
        with pytest.raises(dashboard.DepartmentNotVisibleError):
            await dashboard.find_department(session, people["wang"], "20")
        assert await dashboard.find_department(session, people["boss"], "20") == 20

        west = await view(session, people["boss"], *NOVEMBER, department=20)
        assert west.scope.owner_ids == frozenset({people["li"].id, (await session.scalar(
            select(Customer.owner_id).where(Customer.name == "E")))})
        assert west.snapshot_key == "dept:20"
        funnel = (await dashboard.dashboard(session, west, default_stages(), forecast_settings(), NOW)).funnel
        assert (funnel.customers, funnel.deals_opened, funnel.won_deals, funnel.won_amount) == (2, 2, 1, 100_000)

        board = await dashboard.dashboard(session, await view(session, people["boss"], *NOVEMBER, department=10),
                                          default_stages(), forecast_settings(), NOW)
        rows = {(r.kind, r.name): (r.target, r.won_amount, r.won_deals) for r in board.attainment.rows}
        assert rows == {("department", "#10"): (2_000_000, 500_000, 1), ("staff", "张伟"): (1_000_000, 500_000, 1),
                        ("staff", "王芳"): (None, 0, 0)}
        assert board.attainment.month.label == "2026-11"
        assert (board.losses.deals, board.trend[-1].won_deals) == (2, 1)
        await session.commit()
        kept = (await session.scalars(select(ForecastSnapshot.scope).where(ForecastSnapshot.month == "2026-12")
                                      .order_by(ForecastSnapshot.scope))).all()
    assert kept == ["dept:10", "dept:20"]  # the views' first forecasts of December, one per department


def test_named_periods():
    today = date(2026, 12, 10)
    assert dashboard.period_dates("this_month", today) == (date(2026, 12, 1), today)
    assert dashboard.period_dates("last_month", today) == (date(2026, 11, 1), date(2026, 11, 30))
    assert dashboard.period_dates("last_30_days", today) == (date(2026, 11, 11), today)
    assert dashboard.period_dates("last_90_days", today) == (date(2026, 9, 12), today)
    with pytest.raises(ValueError):
        dashboard.period_dates("forever", today)
