"""The month's sales forecast, its snapshot, and last month's forecast against what closed.

forecast = won so far this month + Σ budget × probability(stage) over the open deals expected to
close this month. Both per-stage numbers come from the whole company's history (one pipeline,
and a small team's own history is too thin to learn from), each replacing its configured
default (config/forecast.toml) only once enough deals back it:
- probability: of the deals closed (won or lost) in the last `learn_months` complete months that
  had reached the stage (their history shows it or a later open stage), the share won;
- days to close: the median days from a won deal's last entry into the stage to its win.
The pipeline has no expected-close-date field, so a deal is expected this month when its stage
entry plus the stage's days to close falls before the month ends (an overdue deal included).

The first forecast of a month for a scope is kept (ForecastSnapshot, unique per month and scope)
by the `forecast.snapshot` job on the 1st and by whichever report runs first; next month it is
shown against the deals actually won, which is how a manager learns how far to trust it.
Months are business-time (configured zone) calendar months.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.deals import DealStages
from crm_core.funnel import budget, days_between, medians, reach_of_deal
from crm_core.models import Customer, Deal, DealStageChange, ForecastSnapshot, Staff
from crm_core.scope import Scope, scope_for
from crm_core.sql import insert_if_absent

COMPANY = "company"
SCOPE_KEY_LENGTH = 32  # forecast_snapshots.scope


@dataclass(frozen=True)
class StageDefault:
    probability: float
    days_to_close: float


@dataclass(frozen=True)
class ForecastSettings:
    learn_months: int
    min_closed_deals: int
    min_won_deals: int
    defaults: dict[str, StageDefault]

    @classmethod
    def from_toml(cls, data: dict[str, Any], stages: DealStages) -> ForecastSettings:
        table = data.get("stages", {})
        missing = [s for s in stages.stages if s not in table]
        defaults = {s: StageDefault(float(table[s]["probability"]), float(table[s]["days_to_close"]))
                    for s in stages.stages if s in table}
        wrong = [s for s, d in defaults.items() if not 0 <= d.probability <= 1 or d.days_to_close < 0]
        if missing or wrong:
            raise ValueError(f"stages without defaults {missing}, out of range {wrong}")
        return cls(learn_months=int(data["learn_months"]), min_closed_deals=int(data["min_closed_deals"]),
                   min_won_deals=int(data["min_won_deals"]), defaults=defaults)


@dataclass(frozen=True)
class Month:
    label: str  # 2026-12
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    @classmethod
    def of(cls, at: datetime, tz: ZoneInfo, shift: int = 0) -> Month:
        """The business-time calendar month containing `at`, moved by `shift` months."""
        first = _add_months(at.astimezone(tz).date().replace(day=1), shift)
        start, end = _midnight(first, tz), _midnight(_add_months(first, 1), tz)
        return cls(f"{first:%Y-%m}", start.astimezone(UTC), end.astimezone(UTC))


@dataclass(frozen=True)
class StageForecast:
    stage: str
    open_deals: int
    open_amount: int
    in_month_deals: int  # expected to close this month
    in_month_amount: int
    probability: float
    probability_learned: bool
    closed_sample: int  # closed deals in the learning window that reached the stage
    days_to_close: float
    days_learned: bool

    @property
    def expected_amount(self) -> float:
        return self.in_month_amount * self.probability

    @property
    def expected_deals(self) -> float:
        return self.in_month_deals * self.probability


@dataclass(frozen=True)
class Forecast:
    month: Month
    made_at: datetime
    stages: list[StageForecast]
    won_deals: int  # won this month so far
    won_amount: int

    @property
    def amount(self) -> float:
        return self.won_amount + sum(s.expected_amount for s in self.stages)

    @property
    def deals(self) -> float:
        return self.won_deals + sum(s.expected_deals for s in self.stages)


@dataclass(frozen=True)
class MonthReview:
    """Last month: its kept forecast (None when none was made) against what was actually won."""

    month: Month
    forecast_amount: float | None
    forecast_deals: int | None
    won_deals: int
    won_amount: int

    @property
    def accuracy(self) -> float | None:
        """Actual won amount as a share of the forecast."""
        return self.won_amount / self.forecast_amount if self.forecast_amount else None


@dataclass(frozen=True)
class Outlook:
    forecast: Forecast
    scope_key: str | None  # None: no snapshot is kept for this scope (a rep's own customers)
    snapshot_made: bool  # this call kept the month's first forecast
    last_month: MonthReview


def scope_key(staff: Staff | None, scope: Scope) -> str | None:
    """'company', 'dept:<ids>' for a manager's departments, None for a scope no snapshot is kept for."""
    if scope.everyone:
        return COMPANY
    if staff is None or staff.role != "manager" or not staff.department_ids:
        return None
    key = "dept:" + ",".join(str(d) for d in sorted(set(staff.department_ids)))
    if len(key) > SCOPE_KEY_LENGTH:  # very many departments: a stable digest instead
        key = "dept:" + hashlib.sha1(key.encode()).hexdigest()[:SCOPE_KEY_LENGTH - 5]
    return key


async def snapshot_scopes(session: AsyncSession) -> list[tuple[str, Scope]]:
    """The scopes a month's snapshot is kept for: the company and each active manager's departments."""
    scopes = {COMPANY: Scope(0, None)}
    managers = await session.scalars(select(Staff).where(Staff.active, Staff.role == "manager").order_by(Staff.id))
    for manager in managers.all():
        scope = await scope_for(session, manager)
        key = scope_key(manager, scope)
        if key is not None:
            scopes.setdefault(key, scope)
    return list(scopes.items())


async def make_forecast(session: AsyncSession, scope: Scope, stages: DealStages, settings: ForecastSettings,
                        now: datetime, tz: ZoneInfo) -> Forecast:
    """This month's forecast for the deals in `scope`, as of `now`."""
    month = Month.of(now, tz)
    learned_from = Month.of(now, tz, -settings.learn_months).start
    probabilities = await _learned_probabilities(session, stages, learned_from, month.start)
    days = await _learned_days(session, stages, learned_from, month.start)
    plan = {}
    for stage in stages.stages:
        default = settings.defaults[stage]
        won, closed = probabilities.get(stage, (0, 0))
        median, won_sample = days.get((stage,), (None, 0))
        p_learned, d_learned = closed >= settings.min_closed_deals, won_sample >= settings.min_won_deals
        plan[stage] = (won / closed if p_learned else default.probability, p_learned, closed,
                       median if d_learned else default.days_to_close, d_learned)
    pipeline = await _open_deals(session, scope, month.end, {s: p[3] for s, p in plan.items()})
    won_deals, won_amount = await won_between(session, scope, month.start, now)
    rows = []
    for stage, (probability, p_learned, closed, days_to_close, d_learned) in plan.items():
        count, amount, in_month, in_month_amount = pipeline.get(stage, (0, 0, 0, 0))
        rows.append(StageForecast(stage, count, amount, in_month, in_month_amount, probability, p_learned, closed,
                                  days_to_close, d_learned))
    return Forecast(month=month, made_at=now, stages=rows, won_deals=won_deals, won_amount=won_amount)


async def outlook(session: AsyncSession, scope: Scope, key: str | None, stages: DealStages,
                  settings: ForecastSettings, now: datetime, tz: ZoneInfo) -> Outlook:
    """This month's forecast (kept as the month's snapshot if it is the first) and last month's review."""
    forecast = await make_forecast(session, scope, stages, settings, now, tz)
    made = await keep_snapshot(session, key, forecast) if key is not None else False
    previous = Month.of(now, tz, -1)
    kept = None
    if key is not None:
        kept = await session.scalar(select(ForecastSnapshot).where(ForecastSnapshot.month == previous.label,
                                                                   ForecastSnapshot.scope == key))
    won_deals, won_amount = await won_between(session, scope, previous.start, previous.end)
    review = MonthReview(previous, kept.amount if kept else None, kept.deals if kept else None, won_deals, won_amount)
    return Outlook(forecast=forecast, scope_key=key, snapshot_made=made, last_month=review)


async def keep_snapshot(session: AsyncSession, key: str, forecast: Forecast) -> bool:
    """Keep the month's forecast for `key` unless one is kept already (the unique key decides)."""
    detail = {"won_deals": forecast.won_deals, "won_amount": forecast.won_amount,
              "stages": {s.stage: {"deals": s.in_month_deals, "amount": s.in_month_amount,
                                   "probability": round(s.probability, 4), "learned": s.probability_learned}
                         for s in forecast.stages}}
    row = {"month": forecast.month.label, "scope": key, "amount": round(forecast.amount, 2),
           "deals": round(forecast.deals), "detail": detail, "made_at": forecast.made_at}
    return await insert_if_absent(session, ForecastSnapshot, row, ["month", "scope"]) is not None


async def won_between(session: AsyncSession, scope: Scope, start: datetime, end: datetime) -> tuple[int, int]:
    """(count, budget sum) of the deals in scope won in [start, end)."""
    stmt = (select(func.count(), func.coalesce(func.sum(budget()), 0)).select_from(Deal)
            .join(Customer, Customer.id == Deal.customer_id)
            .where(Deal.status == "won", Deal.closed_at >= start, Deal.closed_at < end, *scope.where()))
    count, amount = (await session.execute(stmt)).one()
    return int(count), round(float(amount))


async def _learned_probabilities(session: AsyncSession, stages: DealStages, start: datetime,
                                 end: datetime) -> dict[str, tuple[int, int]]:
    """{stage: (won, closed)} over the deals closed in [start, end) that reached the stage."""
    closed = (select(Deal.status, reach_of_deal(stages).label("reach")).select_from(Deal)
              .where(Deal.status.in_(("won", "lost")), Deal.closed_at >= start, Deal.closed_at < end).subquery())
    counts = await session.execute(select(closed.c.status, closed.c.reach, func.count())
                                   .group_by(closed.c.status, closed.c.reach))
    totals = {stage: [0, 0] for stage in stages.stages}
    for status, reach, count in counts:
        for stage in stages.stages[:int(reach) + 1]:
            totals[stage][1] += count
            totals[stage][0] += count if status == "won" else 0
    return {stage: (won, closed) for stage, (won, closed) in totals.items()}


async def _learned_days(session: AsyncSession, stages: DealStages, start: datetime,
                        end: datetime) -> dict[tuple, tuple[float, int]]:
    """{(stage,): (median days from the last entry into the stage to the win, won deals)}."""
    dialect = session.get_bind().dialect.name
    entries = (select(DealStageChange.to_stage.label("stage"),
                      days_between(Deal.closed_at, func.max(DealStageChange.changed_at), dialect).label("days"))
               .join(Deal, Deal.id == DealStageChange.deal_id)
               .where(Deal.status == "won", Deal.closed_at >= start, Deal.closed_at < end,
                      DealStageChange.to_stage.in_(stages.stages))
               .group_by(DealStageChange.deal_id, Deal.closed_at, DealStageChange.to_stage).subquery())
    return await medians(session, entries, ["stage"])


async def _open_deals(session: AsyncSession, scope: Scope, month_end: datetime,
                      days_to_close: dict[str, float]) -> dict[str, tuple[int, int, int, int]]:
    """{stage: (open deals, their amount, those expected this month, their amount)}."""
    expected = or_(*(and_(Deal.stage == stage, Deal.stage_changed_at < month_end - timedelta(days=days))
                     for stage, days in days_to_close.items()))
    stmt = (select(Deal.stage, func.count(), func.sum(budget()), func.sum(case((expected, 1), else_=0)),
                   func.sum(case((expected, budget()), else_=0)))
            .select_from(Deal).join(Customer, Customer.id == Deal.customer_id)
            .where(Deal.status == "open", Deal.stage.in_(list(days_to_close)), *scope.where()).group_by(Deal.stage))
    return {stage: (int(n), round(float(amount or 0)), int(m or 0), round(float(m_amount or 0)))
            for stage, n, amount, m, m_amount in await session.execute(stmt)}


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)
