"""The managers' 看板: every figure `/h5/dashboard` shows and `scrm report` prints, from one set of functions.

A view is a viewer (None: the company), a period and optionally one department:
- scope: the viewer's (crm_core.scope), narrowed to the department's members when one is chosen;
  a manager may choose among their departments, an admin any (`visible_departments`);
- the funnel over the period: crm_core.funnel, as `scrm report funnel` prints it;
- where deals are lost (`losses`): deals closed as lost in the period, by the stage they left for
  输单 (their history's last row), with the most common reasons;
- the trend (`trend`): for each of the six months up to the period's last one, the deals won in it,
  their amount, the average size of those with a budget, and the median sales cycle (days from a
  deal's creation to its win), exact, computed in the database as the funnel's medians are;
- attainment against targets for the period's last month: crm_core.targets;
- this month's forecast against what is won so far, and last month's forecast against actual:
  crm_core.forecast, its snapshot kept per scope (a department chosen is kept as that department's,
  the key a manager of exactly that department has).
Periods are business-time calendar days, [since, until] with until included, as the CLI takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.deals import DealStages
from crm_core.errors import NotFoundError
from crm_core.forecast import ForecastSettings, Month, Outlook, outlook, scope_key
from crm_core.funnel import Funnel, budget, days_between, funnel, medians
from crm_core.models import Customer, Deal, DealStageChange, Staff
from crm_core.reports import Period
from crm_core.scope import Scope, scope_for
from crm_core.targets import Attainment, TargetService, department_names, month_of

TREND_MONTHS = 6
TOP_REASONS = 5
# The period choices the page offers, each a [since, until] of local days as of today.
PERIODS = ("this_month", "last_month", "last_30_days", "last_90_days")
DASHBOARD_ROLES = frozenset({"manager", "admin"})


class DepartmentNotVisibleError(NotFoundError):
    """No such department, or not one of the viewer's: answered alike."""


# -- the view ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    viewer: Staff | None  # None: the whole company (the CLI without --as)
    scope: Scope
    department_id: int | None
    since: date
    until: date  # included
    tz: ZoneInfo

    @property
    def period(self) -> Period:
        return Period.local(_midnight(self.since, self.tz), _midnight(self.until + timedelta(days=1), self.tz))

    @property
    def month(self) -> Month:
        """The month targets and the trend are read for: the period's last."""
        return month_of(f"{self.until:%Y-%m}", self.tz)

    @property
    def snapshot_key(self) -> str | None:
        """Where this view's forecast snapshot is kept (crm_core.forecast), None when none is."""
        if self.department_id is None:
            return scope_key(self.viewer, self.scope)
        if self.viewer is not None and self.viewer.role not in DASHBOARD_ROLES:
            return None
        return f"dept:{self.department_id}"


def period_dates(name: str, today: date) -> tuple[date, date]:
    """(since, until) of a named period as of `today` (local); ValueError for an unknown name."""
    if name == "this_month":
        return today.replace(day=1), today
    if name == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    if name == "last_30_days":
        return today - timedelta(days=29), today
    if name == "last_90_days":
        return today - timedelta(days=89), today
    raise ValueError(f"unknown period {name!r}; one of {', '.join(PERIODS)}")


async def visible_departments(session: AsyncSession, viewer: Staff | None) -> dict[int, str]:
    """{id: name} of the departments `viewer` may narrow a view to: an admin's (or the company's) every
    department, a manager's their own, anyone else's none."""
    names = await department_names(session)
    if viewer is None or viewer.role == "admin":
        return dict(sorted(names.items()))
    if viewer.role != "manager":
        return {}
    return {d: names.get(d, f"#{d}") for d in sorted(set(viewer.department_ids or []))}


async def find_department(session: AsyncSession, viewer: Staff | None, name_or_id: str) -> int:
    """A department the viewer may choose, by name or id; DepartmentNotVisibleError otherwise."""
    visible = await visible_departments(session, viewer)
    text_value = name_or_id.strip()
    if text_value.isdigit() and int(text_value) in visible:
        return int(text_value)
    named = [d for d, name in visible.items() if name == text_value]
    if len(named) == 1:
        return named[0]
    raise DepartmentNotVisibleError(f"no department {text_value!r} among those this view may choose")


async def make_view(session: AsyncSession, viewer: Staff | None, since: date, until: date, tz: ZoneInfo,
                    department_id: int | None = None) -> View:
    """The viewer's scope, narrowed to `department_id`'s members (which must be visible to them)."""
    scope = await scope_for(session, viewer) if viewer is not None else Scope(0, None)
    if department_id is not None:
        if department_id not in await visible_departments(session, viewer):
            raise DepartmentNotVisibleError(f"department {department_id} is not visible to this view")
        rows = (await session.execute(select(Staff.id, Staff.department_ids))).all()
        members = frozenset(r.id for r in rows if department_id in (r.department_ids or []))
        scope = Scope(scope.staff_id, members if scope.everyone else members & scope.owner_ids)
    return View(viewer, scope, department_id, since, until, tz)


# -- where deals are lost ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LostStage:
    stage: str  # the open stage the deal left for 输单 ("" when its history does not say)
    deals: int
    amount: int  # their budgets


@dataclass(frozen=True)
class Losses:
    deals: int
    amount: int
    stages: list[LostStage]  # pipeline order, then unknown
    reasons: list[tuple[str, int]]  # most common first


async def losses(session: AsyncSession, view: View, stages: DealStages) -> Losses:
    """Deals in scope closed as lost in the period, by the stage they were lost from, and why."""
    period = view.period
    lost_from = (select(DealStageChange.from_stage).where(DealStageChange.deal_id == Deal.id,
                                                         DealStageChange.to_stage == stages.lost)
                 .order_by(DealStageChange.changed_at.desc(), DealStageChange.id.desc()).limit(1).scalar_subquery())
    base = (select(func.coalesce(lost_from, "").label("stage"), budget().label("amount"), Deal.lost_reason)
            .select_from(Deal).join(Customer, Customer.id == Deal.customer_id)
            .where(Deal.status == "lost", period.contains(Deal.closed_at), *view.scope.where()).subquery())
    by_stage = {stage: (int(n), round(float(amount or 0))) for stage, n, amount in await session.execute(
        select(base.c.stage, func.count(), func.sum(base.c.amount)).group_by(base.c.stage))}
    order = {stage: i for i, stage in enumerate(stages.stages)}
    rows = [LostStage(stage, n, amount) for stage, (n, amount) in by_stage.items()]
    rows.sort(key=lambda r: (order.get(r.stage, len(order)), r.stage))
    reason = func.trim(base.c.lost_reason)
    count = func.count().label("n")
    reasons = [(text_value, int(n)) for text_value, n in await session.execute(
        select(reason, count).where(reason != "").group_by(reason).order_by(count.desc(), reason).limit(TOP_REASONS))]
    return Losses(sum(r.deals for r in rows), sum(r.amount for r in rows), rows, reasons)


# -- the trend ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MonthTrend:
    month: str  # 2026-12
    won_deals: int
    won_amount: int
    average_amount: float | None  # over the won deals that have a budget
    median_cycle_days: float | None  # creation to win


async def trend(session: AsyncSession, view: View, months: int = TREND_MONTHS) -> list[MonthTrend]:
    """The last `months` months up to the view's month, oldest first: won deals, amount, average size,
    median cycle. One query per figure, the months told apart by a CASE on the won time."""
    dialect = session.get_bind().dialect.name
    last = view.month
    spans = [Month.of(last.start, view.tz, -shift) for shift in range(months - 1, -1, -1)]
    bucket = case(*((Deal.closed_at < m.end, i) for i, m in enumerate(spans))).label("bucket")
    won = and_(Deal.status == "won", Deal.closed_at >= spans[0].start, Deal.closed_at < spans[-1].end)
    amount = Deal.fields["budget"].as_float()
    totals = {int(b): (int(n), float(total or 0), int(with_budget or 0), float(known or 0))
              for b, n, total, with_budget, known in await session.execute(
                  select(bucket, func.count(), func.sum(budget()), func.count(amount), func.sum(amount))
                  .select_from(Deal).join(Customer, Customer.id == Deal.customer_id)
                  .where(won, *view.scope.where()).group_by(bucket))}
    cycles = (select(bucket, days_between(Deal.closed_at, Deal.created_at, dialect).label("days"))
              .select_from(Deal).join(Customer, Customer.id == Deal.customer_id)
              .where(won, *view.scope.where()).subquery())
    median = {int(key[0]): value for key, value in (await medians(session, cycles, ["bucket"])).items()}
    result = []
    for i, m in enumerate(spans):
        n, total, with_budget, known = totals.get(i, (0, 0.0, 0, 0.0))
        result.append(MonthTrend(m.label, n, round(total), known / with_budget if with_budget else None,
                                 median[i][0] if i in median else None))
    return result


# -- everything at once ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dashboard:
    view: View
    funnel: Funnel
    losses: Losses
    trend: list[MonthTrend]
    attainment: Attainment
    forecast: Outlook


async def dashboard(session: AsyncSession, view: View, stages: DealStages, settings: ForecastSettings,
                    now: datetime) -> Dashboard:
    """Every section of the page for `view`; keeps this month's forecast snapshot if it is the first
    (as `scrm report forecast` does), so the caller commits."""
    return Dashboard(
        view=view,
        funnel=await funnel(session, view.scope, view.period, stages),
        losses=await losses(session, view, stages),
        trend=await trend(session, view),
        attainment=await attainment(session, view),
        forecast=await forecast(session, view, stages, settings, now),
    )


async def attainment(session: AsyncSession, view: View) -> Attainment:
    return await TargetService(session).attainment(view.viewer, view.month, department_id=view.department_id)


async def forecast(session: AsyncSession, view: View, stages: DealStages, settings: ForecastSettings,
                   now: datetime) -> Outlook:
    return await outlook(session, view.scope, view.snapshot_key, stages, settings, now, view.tz)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)
