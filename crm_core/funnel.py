"""The sales funnel over a period, for a scope (a manager's departments, or the company).

What a manager reads, and how each figure is counted:
- new customers: created in the period, by channel;
- deals opened: created in the period. This cohort is followed to today: a deal *reached* a stage
  when its history (deal_stage_changes) shows it in that stage or a later one; a won deal reached
  every stage, and every deal reached the first (deals skip stages, and the history of deals from
  before it was recorded holds only the stage they were in then). Conversion from a stage is
  reached(next) / reached(this); the win rate from a stage is won / reached(this);
- days in a stage: each stay that ended in the period (the deal moved on, or was closed), from one
  history row to the next (LEAD over the deal's rows); the median, exact, per stage;
- won deals and amount (the `budget` field): closed as won in the period.
A deal's channel is its customer's: the 渠道活码 it came through, else the free-text `source`.

Medians are computed in the database, exact (the mean of the two middle values for an even count),
so only one row per group leaves it. PostgreSQL uses percentile_cont over GROUPING SETS: per stage
and per channel and stage in one sort (at 200k deals this was about twice as fast as ranking with
window functions). SQLite has neither, so there ROW_NUMBER and COUNT over the group keep the middle
one or two rows (`medians`); the tests check both give the same numbers on one history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, Subquery, and_, case, func, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UTCDateTime
from crm_core.deals import DealStages
from crm_core.models import ContactChannel, Customer, Deal, DealStageChange
from crm_core.reports import Period
from crm_core.scope import Scope

UNKNOWN_CHANNEL = ""  # customers with neither a channel nor a source


@dataclass(frozen=True)
class StageRow:
    stage: str
    reached: int  # deals of the cohort that reached this stage
    next_rate: float | None  # share of those that reached the next stage (or won, after the last)
    win_rate: float | None  # share of those that were won
    median_days: float | None  # median stay that ended in the period
    stays: int  # how many stays the median is taken over


@dataclass(frozen=True)
class ChannelRow:
    channel: str  # UNKNOWN_CHANNEL when not attributed
    customers: int
    deals_opened: int
    reached: tuple[int, ...]  # per open stage, then won
    median_days: tuple[float | None, ...]  # per open stage
    won_deals: int
    won_amount: int


@dataclass(frozen=True)
class Funnel:
    period: Period
    customers: int
    deals_opened: int
    stages: list[StageRow]
    cohort_won: int  # deals of the cohort won so far
    won_deals: int  # closed as won in the period, whenever opened
    won_amount: int
    channels: list[ChannelRow]  # most new customers first


def channel_label() -> ColumnElement[str]:
    """The customer's channel name, else source, else ''; literal SQL so GROUP BY repeats it exactly."""
    empty = literal_column("''")
    return func.coalesce(ContactChannel.name, func.nullif(Customer.source, empty), empty)


def budget() -> ColumnElement[float]:
    return func.coalesce(Deal.fields["budget"].as_float(), 0)


def days_between(later, earlier, dialect: str) -> ColumnElement[float]:
    if dialect == "sqlite":
        return func.julianday(later) - func.julianday(earlier)
    return func.extract("epoch", later - earlier) / 86400.0


def stage_index(stages: DealStages) -> ColumnElement[int]:
    """A history row's open-stage position (0 = first), NULL for 赢单/输单."""
    return case({stage: i for i, stage in enumerate(stages.stages)}, value=DealStageChange.to_stage)


def reach_of_deal(stages: DealStages) -> ColumnElement[int]:
    """The furthest open stage the deal's history shows (-1: none recorded)."""
    furthest = select(func.max(stage_index(stages))).where(DealStageChange.deal_id == Deal.id).scalar_subquery()
    return func.coalesce(furthest, -1)


async def stay_medians(session: AsyncSession, stays: Subquery) -> dict[tuple, tuple[float, int]]:
    """{(channel, stage): (median days, stays)}, and {(None, stage): …} over every channel.

    PostgreSQL: percentile_cont over GROUPING SETS, one sort of the stays for both levels.
    SQLite: `medians` twice (it has neither)."""
    if session.get_bind().dialect.name != "postgresql":
        by_channel = await medians(session, stays, ["channel", "stage"])
        overall = {(None, stage): value for (stage,), value in (await medians(session, stays, ["stage"])).items()}
        return {**by_channel, **overall}
    channel = func.grouping(stays.c.channel)
    stmt = (select(channel, stays.c.channel, stays.c.stage, func.percentile_cont(0.5).within_group(stays.c.days),
                   func.count())
            .group_by(func.grouping_sets(tuple_(stays.c.stage), tuple_(stays.c.channel, stays.c.stage))))
    return {(None if overall else name, stage): (float(median), int(count))
            for overall, name, stage, median, count in await session.execute(stmt)}


async def medians(session: AsyncSession, samples: Subquery, keys: list[str]) -> dict[tuple, tuple[float, int]]:
    """Exact median of `samples.days` per group of `keys`: {key values: (median, sample size)}."""
    groups = [samples.c[k] for k in keys]
    ranked = select(*groups, samples.c.days,
                    func.row_number().over(partition_by=groups, order_by=samples.c.days).label("rn"),
                    func.count().over(partition_by=groups).label("n")).subquery()
    by = [ranked.c[k] for k in keys]
    stmt = (select(*by, func.avg(ranked.c.days), func.max(ranked.c.n))
            .where(and_(ranked.c.rn * 2 >= ranked.c.n, ranked.c.rn * 2 <= ranked.c.n + 2)).group_by(*by))
    return {tuple(row[:-2]): (float(row[-2]), int(row[-1])) for row in await session.execute(stmt)}


def _with_channel(stmt: Select, customer_id) -> Select:
    return (stmt.join(Customer, Customer.id == customer_id)
            .outerjoin(ContactChannel, ContactChannel.id == Customer.source_channel_id))


async def funnel(session: AsyncSession, scope: Scope, period: Period, stages: DealStages) -> Funnel:
    """Every figure of the funnel for the customers in `scope` during `period` (see the module doc)."""
    dialect = session.get_bind().dialect.name
    channel = channel_label()
    per_channel: dict[str, dict] = defaultdict(lambda: {"customers": 0, "opened": 0, "reached": [0] * (len(stages.stages) + 1),
                                                        "won": 0, "amount": 0.0, "days": {}})

    new = (select(channel, func.count()).select_from(Customer)
           .outerjoin(ContactChannel, ContactChannel.id == Customer.source_channel_id)
           .where(period.contains(Customer.created_at), *scope.where()).group_by(channel))
    for name, count in await session.execute(new):
        per_channel[name]["customers"] = count

    opened = select(Deal.id).where(period.contains(Deal.created_at))
    reach = (select(DealStageChange.deal_id, func.max(stage_index(stages)).label("reach"))
             .where(DealStageChange.deal_id.in_(opened)).group_by(DealStageChange.deal_id).subquery())
    cohort = (_with_channel(select(channel.label("channel"), Deal.status, func.coalesce(reach.c.reach, -1).label("reach"))
                            .select_from(Deal), Deal.customer_id).outerjoin(reach, reach.c.deal_id == Deal.id)
              .where(period.contains(Deal.created_at), *scope.where()).subquery())
    last = len(stages.stages)
    for name, status, furthest_open, count in await session.execute(
            select(cohort.c.channel, cohort.c.status, cohort.c.reach, func.count())
            .group_by(cohort.c.channel, cohort.c.status, cohort.c.reach)):
        row = per_channel[name]
        row["opened"] += count
        furthest = last if status == "won" else max(int(furthest_open), 0)
        for i in range(furthest + 1):
            row["reached"][i] += count

    won = _with_channel(select(channel, func.count(), func.sum(budget())).select_from(Deal), Deal.customer_id) \
        .where(Deal.status == "won", period.contains(Deal.closed_at), *scope.where()).group_by(channel)
    for name, count, amount in await session.execute(won):
        per_channel[name]["won"], per_channel[name]["amount"] = count, float(amount or 0)

    overall_days: dict[str, tuple[float, int]] = {}
    for (name, stage), value in (await stay_medians(session, _stays(stages, period, scope, dialect))).items():
        if name is None:
            overall_days[stage] = value
        else:
            per_channel[name]["days"][stage] = value

    reached = [sum(row["reached"][i] for row in per_channel.values()) for i in range(last + 1)]
    rows = []
    for i, stage in enumerate(stages.stages):
        median, stays_count = overall_days.get(stage, (None, 0))
        rows.append(StageRow(stage=stage, reached=reached[i], next_rate=_share(reached[i + 1], reached[i]),
                             win_rate=_share(reached[last], reached[i]), median_days=median, stays=stays_count))
    channels = [ChannelRow(channel=name, customers=row["customers"], deals_opened=row["opened"],
                           reached=tuple(row["reached"]),
                           median_days=tuple(row["days"].get(stage, (None, 0))[0] for stage in stages.stages),
                           won_deals=row["won"], won_amount=round(row["amount"]))
                for name, row in per_channel.items()]
    channels.sort(key=lambda c: (-c.customers, -c.deals_opened, c.channel == UNKNOWN_CHANNEL, c.channel))
    return Funnel(period=period, customers=sum(c.customers for c in channels),
                  deals_opened=sum(c.deals_opened for c in channels), stages=rows, cohort_won=reached[last],
                  won_deals=sum(c.won_deals for c in channels), won_amount=sum(c.won_amount for c in channels),
                  channels=channels)


def _stays(stages: DealStages, period: Period, scope: Scope, dialect: str) -> Subquery:
    """(stage, channel, days) of each open-stage stay that ended in the period.

    LEAD runs over the whole history of the deals that moved in the period (found through
    ix_deal_stage_changes_at), so a stay that began before the period still gets its start."""
    moved = select(DealStageChange.deal_id).where(period.contains(DealStageChange.changed_at))
    left = func.lead(DealStageChange.changed_at, type_=UTCDateTime).over(
        partition_by=DealStageChange.deal_id, order_by=(DealStageChange.changed_at, DealStageChange.id))
    history = _with_channel(select(DealStageChange.to_stage.label("stage"), channel_label().label("channel"),
                                   DealStageChange.changed_at.label("entered"), left.label("left"))
                            .select_from(DealStageChange), DealStageChange.customer_id) \
        .where(DealStageChange.deal_id.in_(moved), *scope.where()).subquery()
    return (select(history.c.stage, history.c.channel,
                   days_between(history.c.left, history.c.entered, dialect).label("days"))
            .where(history.c.stage.in_(stages.stages), history.c.left >= period.start, history.c.left < period.end)
            .subquery())


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
