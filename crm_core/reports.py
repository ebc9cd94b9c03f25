"""Team reports: what happened among the customers a staff member may see, over a period.

One `team_report` call answers the questions a manager asks at the end of a day or a week (new
customers, conversation volume and mood, complaints and tickets, overdue follow-ups, the deal
pipeline, what customers talk about). Counting happens in the database (GROUP BY / COUNT); only
the keyword tally reads message analyses, streamed in batches. The digest jobs render it, and a
CLI or API can reuse it as is.

Periods are half-open [start, end) in UTC, computed from business-time boundaries: a week is
Monday 00:00 to the next Monday 00:00 local time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer, Deal, FollowUp, Message, Staff
from crm_core.scope import Scope
from crm_core.ticket_models import Ticket, TicketEvent

TRENDING_NEGATIVE = 5
TOP_KEYWORDS = 10
KEYWORD_BATCH = 500
# Ticket events that carry a customer's complaint message: the ticket policy, not the raw NLP
# score, decides what a complaint is (it also catches plain problem reports the score misses).
COMPLAINT_EVENTS = ("created", "message", "reopened")


@dataclass(frozen=True)
class Period:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    @classmethod
    def local(cls, start: datetime, end: datetime) -> Period:
        """From business-time boundaries (aware, any zone) to the UTC bounds queries use."""
        return cls(start.astimezone(UTC), end.astimezone(UTC))

    @classmethod
    def day_before(cls, end: datetime, tz: ZoneInfo) -> Period:
        """The 24 local hours up to `end`: consecutive daily reports leave no gap between them."""
        local_end = end.astimezone(tz)
        local_start = (local_end.replace(tzinfo=None) - timedelta(days=1)).replace(tzinfo=tz)
        return cls.local(local_start, local_end)

    @classmethod
    def week_before(cls, at: datetime, tz: ZoneInfo) -> Period:
        """The last complete local week (Monday 00:00 – Sunday 24:00) before `at`."""
        local = at.astimezone(tz)
        this_monday = local.date() - timedelta(days=local.weekday())
        return cls.local(_midnight(this_monday - timedelta(days=7), tz), _midnight(this_monday, tz))

    def contains(self, column) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


@dataclass(frozen=True)
class SentimentMix:
    """Inbound messages by their analysis label; messages without analysis are not counted."""

    positive: int = 0
    neutral: int = 0
    negative: int = 0

    @property
    def total(self) -> int:
        return self.positive + self.neutral + self.negative


@dataclass(frozen=True)
class CustomerMood:
    customer_id: int
    name: str  # name, else remark; may be empty
    sentiment: float  # the customer's rolling sentiment, -1 .. 1


@dataclass(frozen=True)
class RepCount:
    staff_id: int
    name: str  # name, else WeCom userid
    count: int


@dataclass(frozen=True)
class TicketStats:
    complaints: int = 0  # complaint messages that opened, joined or reopened a ticket
    opened: int = 0
    resolved: int = 0
    sla_breached: int = 0  # tickets escalated for a missed SLA


@dataclass(frozen=True)
class DealStats:
    open_by_stage: dict[str, int]  # now, whatever the period
    moved: int = 0  # open deals that entered their stage in the period (new deals included)
    won: int = 0
    lost: int = 0
    won_amount: int = 0  # sum of the won deals' budget field


@dataclass(frozen=True)
class TeamReport:
    period: Period
    as_of: datetime  # when the snapshot figures (overdue follow-ups, open deals) were taken
    new_customers: int
    messages_in: int
    messages_out: int
    sentiment: SentimentMix
    trending_negative: list[CustomerMood]  # lowest rolling sentiment among those negative in the period
    tickets: TicketStats
    overdue_followups: list[RepCount]  # every rep with overdue follow-ups, most first
    deals: DealStats
    keywords: list[tuple[str, int]]  # most frequent first, from inbound messages' analyses

    @property
    def has_activity(self) -> bool:
        """Whether anything happened in the period (snapshot figures do not count)."""
        t, d = self.tickets, self.deals
        return any((self.new_customers, self.messages_in, self.messages_out, t.complaints, t.opened, t.resolved,
                    t.sla_breached, d.moved, d.won, d.lost))


async def team_report(session: AsyncSession, scope: Scope, period: Period, *, as_of: datetime | None = None) -> TeamReport:
    """Everything a digest shows for the customers in `scope` during `period`."""
    as_of = as_of or period.end
    messages_in, messages_out = await _message_counts(session, scope, period)
    return TeamReport(
        period=period,
        as_of=as_of,
        new_customers=await _new_customers(session, scope, period),
        messages_in=messages_in,
        messages_out=messages_out,
        sentiment=await _sentiment_mix(session, scope, period),
        trending_negative=await _trending_negative(session, scope, period),
        tickets=await _ticket_stats(session, scope, period),
        overdue_followups=await _overdue_followups(session, scope, as_of),
        deals=await _deal_stats(session, scope, period),
        keywords=await _top_keywords(session, scope, period),
    )


async def _new_customers(session: AsyncSession, scope: Scope, period: Period) -> int:
    stmt = select(func.count()).select_from(Customer).where(period.contains(Customer.created_at), *scope.where())
    return await session.scalar(stmt) or 0


def _customer_messages(period: Period, scope: Scope, *columns) -> Select:
    """Messages exchanged with customers in scope; staff's chats with the bot have no customer."""
    return (select(*columns).select_from(Message).join(Customer, Customer.id == Message.customer_id)
            .where(period.contains(Message.sent_at), *scope.where()))


async def _message_counts(session: AsyncSession, scope: Scope, period: Period) -> tuple[int, int]:
    stmt = _customer_messages(period, scope, Message.direction, func.count()).group_by(Message.direction)
    counts = dict((await session.execute(stmt)).tuples().all())
    return counts.get("in", 0), counts.get("out", 0)


async def _sentiment_mix(session: AsyncSession, scope: Scope, period: Period) -> SentimentMix:
    label = Message.analysis["label"].as_string()
    stmt = (_customer_messages(period, scope, label, func.count())
            .where(Message.direction == "in", label.in_(("positive", "neutral", "negative"))).group_by(label))
    counts = dict((await session.execute(stmt)).tuples().all())
    return SentimentMix(**counts)


async def _trending_negative(session: AsyncSession, scope: Scope, period: Period) -> list[CustomerMood]:
    """Customers whose mood is below neutral and who wrote something negative in the period.

    `last_negative_message_id` points at the latest negative message, so it falls in the period
    exactly when any negative message does."""
    stmt = (select(Customer.id, Customer.name, Customer.remark, Customer.sentiment_score)
            .join(Message, Message.id == Customer.last_negative_message_id)
            .where(Customer.sentiment_score < 0, period.contains(Message.sent_at), *scope.where())
            .order_by(Customer.sentiment_score, Customer.id).limit(TRENDING_NEGATIVE))
    return [CustomerMood(row.id, row.name or row.remark, row.sentiment_score) for row in await session.execute(stmt)]


async def _ticket_stats(session: AsyncSession, scope: Scope, period: Period) -> TicketStats:
    opened = await session.scalar(
        select(func.count()).select_from(Ticket).join(Customer, Customer.id == Ticket.customer_id)
        .where(period.contains(Ticket.created_at), *scope.where())) or 0
    complaint = and_(TicketEvent.kind.in_(COMPLAINT_EVENTS), TicketEvent.message_id.is_not(None))
    stmt = (select(TicketEvent.kind, func.count(), func.count(TicketEvent.ticket_id.distinct()))
            .join(Ticket, Ticket.id == TicketEvent.ticket_id).join(Customer, Customer.id == Ticket.customer_id)
            .where(period.contains(TicketEvent.created_at), *scope.where(),
                   or_(complaint, TicketEvent.kind.in_(("resolved", "escalated"))))
            .group_by(TicketEvent.kind))
    events, tickets = {}, {}
    for kind, count, distinct_tickets in await session.execute(stmt):
        events[kind], tickets[kind] = count, distinct_tickets
    return TicketStats(
        # Only complaint events carry a message here (the filter above), so counting them counts messages.
        complaints=sum(events.get(kind, 0) for kind in COMPLAINT_EVENTS),
        opened=opened,
        resolved=tickets.get("resolved", 0),
        sla_breached=tickets.get("escalated", 0),
    )


async def _overdue_followups(session: AsyncSession, scope: Scope, as_of: datetime) -> list[RepCount]:
    count = func.count().label("n")
    stmt = (select(Staff.id, Staff.name, Staff.userid, count).join(FollowUp, FollowUp.owner_id == Staff.id)
            .where(FollowUp.status == "open", FollowUp.due_at < as_of)
            .group_by(Staff.id, Staff.name, Staff.userid).order_by(count.desc(), Staff.id))
    if not scope.everyone:
        stmt = stmt.where(Staff.id.in_(scope.owner_ids))
    return [RepCount(row.id, row.name or row.userid, row.n) for row in await session.execute(stmt)]


async def _deal_stats(session: AsyncSession, scope: Scope, period: Period) -> DealStats:
    def deals(*columns) -> Select:
        return select(*columns).select_from(Deal).join(Customer, Customer.id == Deal.customer_id).where(*scope.where())

    by_stage = deals(Deal.stage, func.count()).where(Deal.status == "open").group_by(Deal.stage)
    open_by_stage = dict((await session.execute(by_stage)).tuples().all())
    budget = func.coalesce(func.sum(Deal.fields["budget"].as_float()), 0)
    changed = (deals(Deal.status, func.count(), budget)
               .where(or_(and_(Deal.status == "open", period.contains(Deal.stage_changed_at)),
                          and_(Deal.status != "open", period.contains(Deal.closed_at))))
               .group_by(Deal.status))
    rows = {status: (count, amount) for status, count, amount in await session.execute(changed)}
    return DealStats(
        open_by_stage=open_by_stage,
        moved=rows.get("open", (0, 0))[0],
        won=rows.get("won", (0, 0))[0],
        lost=rows.get("lost", (0, 0))[0],
        won_amount=round(rows.get("won", (0, 0))[1]),
    )


async def _top_keywords(session: AsyncSession, scope: Scope, period: Period) -> list[tuple[str, int]]:
    """Only each analysis' keyword list crosses the wire, a batch at a time."""
    keywords = Message.analysis["keywords"]
    stmt = (_customer_messages(period, scope, keywords)
            .where(Message.direction == "in")
            .execution_options(yield_per=KEYWORD_BATCH))
    counts: Counter[str] = Counter()
    async for words in await session.stream_scalars(stmt):
        counts.update(set(words or ()))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_KEYWORDS]
