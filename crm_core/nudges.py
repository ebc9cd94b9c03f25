"""What reps and managers should be nudged about: due follow-ups, customers gone quiet, contracts
ending, stalled deals, customers turning dormant.

Every query here is bounded: per rep with a LIMIT (plus a count only when the list is full), or
in pages ordered by id, so a million customers are never in memory at once. Thresholds come from
config/nudges.toml. The scheduler (scheduler/nudges.py) turns these answers into messages.

Stall escalations leave an audit row per level, written at the run's business time: the rep's
row is what tells a later run when the rep was told, so the manager hears only after the deal sat
still for `manager_after_hours` more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, distinct, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from config.policies import CONFIG_DIR, shipped_policy
from config.templates import render
from crm_core.lifecycle import DORMANT, FUNNEL, WENT_DORMANT, history_row
from crm_core.models import AuditEntry, Customer, Deal, FollowUp, LifecycleChange, Note, Staff

log = logging.getLogger(__name__)

POLICY_FILE = CONFIG_DIR / "nudges.toml"
SYSTEM_ACTOR = "scheduler"
DORMANT_ACTION = "customer.dormant"
STALL_REP_ACTION = "deal.stall_rep"
STALL_MANAGER_ACTION = "deal.stall_manager"

T = TypeVar("T")


@dataclass(frozen=True)
class NudgePolicy:
    max_items: int
    contract_within_days: int
    quiet_days: dict[str, int]
    quiet_days_by_stage: dict[str, int]
    stall_rep_after: timedelta
    stall_manager_after: timedelta
    stall_max_per_recipient: int
    dormant_after: timedelta
    followup_time: time
    notify_not_before: time
    renewal_days_before: int

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> NudgePolicy:
        morning, stall, dormant = raw["morning"], raw["stall"], raw["dormant"]
        policy = cls(
            max_items=int(morning["max_items"]),
            contract_within_days=int(morning["contract_within_days"]),
            quiet_days={str(k): int(v) for k, v in morning.get("quiet_days", {}).items()},
            quiet_days_by_stage={str(k): int(v) for k, v in morning.get("quiet_days_by_deal_stage", {}).items()},
            stall_rep_after=timedelta(hours=float(stall["rep_after_hours"])),
            stall_manager_after=timedelta(hours=float(stall["manager_after_hours"])),
            stall_max_per_recipient=int(stall["max_per_recipient_per_run"]),
            dormant_after=timedelta(days=int(dormant["after_days"])),
            followup_time=time.fromisoformat(dormant["followup_time"]),
            notify_not_before=time.fromisoformat(dormant["notify_not_before"]),
            renewal_days_before=int(raw["renewal"]["days_before"]),
        )
        numbers = {"max_items": policy.max_items, "contract_within_days": policy.contract_within_days,
                   "renewal.days_before": policy.renewal_days_before,
                   "stall.max_per_recipient_per_run": policy.stall_max_per_recipient,
                   **{f"quiet_days.{k}": v for k, v in policy.quiet_days.items()},
                   **{f"quiet_days_by_deal_stage.{k}": v for k, v in policy.quiet_days_by_stage.items()}}
        problems = [f"{name} must be positive" for name, value in numbers.items() if value <= 0]
        if min(policy.stall_rep_after, policy.stall_manager_after, policy.dormant_after) <= timedelta(0):
            problems.append("stall hours and dormant.after_days must be positive")
        if problems:
            raise ValueError("; ".join(problems))
        return policy


default_policy = shipped_policy(POLICY_FILE.name, NudgePolicy.from_toml)


def display_name(name: str, remark: str, customer_id: int) -> str:
    return name or remark or render("nudges.unnamed_customer", id=customer_id)


def local_day_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


@dataclass(frozen=True)
class Listing(Generic[T]):
    """The first items of a list and how long the whole list is."""

    items: list[T]
    total: int


@dataclass(frozen=True)
class DueFollowUp:
    customer: str
    company: str
    due_at: datetime
    text: str
    last_note: str


@dataclass(frozen=True)
class QuietCustomer:
    customer: str
    company: str
    quiet_since: datetime  # last contact, or creation for a customer never contacted
    contacted: bool
    deal_stage: str | None


@dataclass(frozen=True)
class EndingContract:
    customer: str
    company: str
    ends_on: date


@dataclass(frozen=True)
class HotLead:
    customer: str
    company: str
    score: int
    lifecycle: str


@dataclass(frozen=True)
class Reactivation:
    customer: str
    company: str
    due_at: datetime


@dataclass(frozen=True)
class StalledDeal:
    deal_id: int
    customer_id: int
    customer: str
    company: str
    stage: str
    stage_changed_at: datetime
    owner_id: int | None
    last_activity_at: datetime

    @property
    def key(self) -> str:
        """Names one stay of the deal in one stage: a new stage entry is a new stall."""
        return f"deal:{self.deal_id}:stall:{self.stage}:{int(self.stage_changed_at.timestamp())}"


@dataclass(frozen=True)
class StallNotice:
    deal: StalledDeal
    level: str  # rep | manager
    recipients: list[Staff]
    owner: Staff | None
    rep_told_at: datetime | None


def _quiet_before(cutoff: datetime) -> ColumnElement[bool]:
    """No contact since `cutoff`; a never-contacted customer counts from its creation (index friendly)."""
    return or_(Customer.last_contact_at <= cutoff,
               and_(Customer.last_contact_at.is_(None), Customer.created_at <= cutoff))


class NudgeService:
    def __init__(self, session: AsyncSession, policy: NudgePolicy, timezone: ZoneInfo):
        self.session = session
        self.policy = policy
        self.timezone = timezone

    # -- the morning digest ------------------------------------------------------------------

    async def due_follow_ups(self, owner_id: int, now: datetime) -> Listing[DueFollowUp]:
        """Open follow-ups due before tomorrow (local), overdue first."""
        today = now.astimezone(self.timezone).date()
        where = (FollowUp.owner_id == owner_id, FollowUp.status == "open",
                 FollowUp.due_at < local_day_start(today + timedelta(days=1), self.timezone))
        last_note = (select(Note.text).where(Note.customer_id == FollowUp.customer_id)
                     .order_by(Note.created_at.desc(), Note.id.desc()).limit(1).scalar_subquery())
        rows = (await self.session.execute(
            select(Customer.id, Customer.name, Customer.remark, Customer.company, FollowUp.due_at, FollowUp.text,
                   last_note.label("last_note"))
            .join(Customer, Customer.id == FollowUp.customer_id)
            .where(*where).order_by(FollowUp.due_at, FollowUp.id).limit(self.policy.max_items)
        )).all()
        items = [DueFollowUp(display_name(r.name, r.remark, r.id), r.company, r.due_at, r.text, r.last_note or "")
                 for r in rows]
        return Listing(items, await self._total(len(items), select(func.count()).select_from(FollowUp).where(*where)))

    async def quiet_customers(self, owner_id: int, now: datetime) -> Listing[QuietCustomer]:
        """The owner's customers past their quiet threshold (lifecycle, or open deal stage), quietest first.

        One pass over the rep's customers: the open deal (at most one per customer) is joined, not
        looked up per row, and the total comes from a window count instead of a second query."""
        policy = self.policy
        if not policy.quiet_days:
            return Listing([], 0)
        stage = Deal.stage
        by_lifecycle = or_(*(and_(Customer.lifecycle == lifecycle, _quiet_before(now - timedelta(days=days)))
                             for lifecycle, days in policy.quiet_days.items()))
        if policy.quiet_days_by_stage:
            overridden = list(policy.quiet_days_by_stage)
            quiet = or_(*(and_(stage == name, _quiet_before(now - timedelta(days=days)))
                          for name, days in policy.quiet_days_by_stage.items()),
                        and_(or_(stage.is_(None), stage.not_in(overridden)), by_lifecycle))
        else:
            quiet = by_lifecycle
        planned = exists().where(FollowUp.customer_id == Customer.id, FollowUp.owner_id == owner_id,
                                 FollowUp.status == "open")
        since = func.coalesce(Customer.last_contact_at, Customer.created_at)
        rows = (await self.session.execute(
            select(Customer.id, Customer.name, Customer.remark, Customer.company, Customer.last_contact_at,
                   Customer.created_at, stage.label("stage"), func.count().over().label("total"))
            .outerjoin(Deal, and_(Deal.customer_id == Customer.id, Deal.status == "open"))
            .where(Customer.owner_id == owner_id, Customer.lifecycle.in_(list(policy.quiet_days)), quiet, ~planned)
            .order_by(since, Customer.id).limit(policy.max_items)
        )).all()
        items = [QuietCustomer(display_name(r.name, r.remark, r.id), r.company, r.last_contact_at or r.created_at,
                               r.last_contact_at is not None, r.stage) for r in rows]
        return Listing(items, rows[0].total if rows else 0)

    async def contracts_ending(self, owner_id: int, first: date, last: date) -> Listing[EndingContract]:
        """The owner's customers whose contract ends between `first` and `last` (inclusive), soonest first."""
        where = (Customer.owner_id == owner_id, Customer.contract_ends_on >= first, Customer.contract_ends_on <= last)
        rows = (await self.session.execute(
            select(Customer.id, Customer.name, Customer.remark, Customer.company, Customer.contract_ends_on)
            .where(*where).order_by(Customer.contract_ends_on, Customer.id).limit(self.policy.max_items)
        )).all()
        items = [EndingContract(display_name(r.name, r.remark, r.id), r.company, r.contract_ends_on) for r in rows]
        return Listing(items, await self._total(len(items), select(func.count()).select_from(Customer).where(*where)))

    async def hot_leads(self, owner_id: int, threshold: int, limit: int) -> Listing[HotLead]:
        """The owner's warmest customers (热度 at or above `threshold`, in a funnel stage), warmest
        first: straight off ix_customers_owner_score."""
        where = (Customer.owner_id == owner_id, Customer.lead_score >= threshold, Customer.lifecycle.in_(FUNNEL))
        rows = (await self.session.execute(
            select(Customer.id, Customer.name, Customer.remark, Customer.company, Customer.lead_score, Customer.lifecycle)
            .where(*where).order_by(Customer.lead_score.desc(), Customer.id).limit(limit)
        )).all()
        items = [HotLead(display_name(r.name, r.remark, r.id), r.company, r.lead_score, r.lifecycle) for r in rows]
        total = len(items) if len(items) < limit else \
            await self.session.scalar(select(func.count()).select_from(Customer).where(*where)) or 0
        return Listing(items, total)

    async def contract_owners(self, ends_on: date) -> list[int]:
        """Owners with a customer whose contract ends on `ends_on` (an index equality, small)."""
        return list((await self.session.scalars(
            select(distinct(Customer.owner_id))
            .where(Customer.contract_ends_on == ends_on, Customer.owner_id.is_not(None))
            .order_by(Customer.owner_id)
        )).all())

    async def _total(self, shown: int, count_stmt: Select[tuple[int]]) -> int:
        """A short list is the whole list; only a full page needs counting."""
        if shown < self.policy.max_items:
            return shown
        return await self.session.scalar(count_stmt) or 0

    # -- stalled deals -----------------------------------------------------------------------

    async def stall_notices(self, now: datetime, *, after_id: int, limit: int,
                            managers: list[Staff]) -> tuple[list[StallNotice], int | None]:
        """The notices owed for one page of stalled deals (ordered by id); returns them and the last
        deal id seen, None when there are no more pages.

        The rep is told once per stage entry; the rep's managers once the deal has sat still for
        `manager_after` since both the rep's notice and the last activity. A deal whose owner is
        gone (or inactive) goes to the managers straight away."""
        page = await self._stalled_page(now, after_id, limit)
        if not page:
            return [], None
        told = await self._told(page)
        owner_ids = {d.owner_id for d in page if d.owner_id is not None}
        owners = {s.id: s for s in (await self.session.scalars(select(Staff).where(Staff.id.in_(owner_ids)))).all()}
        notices = []
        for deal in page:
            if (STALL_MANAGER_ACTION, deal.key) in told:
                continue
            owner = owners.get(deal.owner_id) if deal.owner_id is not None else None
            rep_told_at = told.get((STALL_REP_ACTION, deal.key))
            if owner is not None and owner.active:
                if rep_told_at is None:
                    notices.append(StallNotice(deal, "rep", [owner], owner, None))
                    continue
                if now - max(rep_told_at, deal.last_activity_at) < self.policy.stall_manager_after:
                    continue
            bosses = [m for m in managers if owner is not None and m.id != owner.id
                      and set(m.department_ids or []) & set(owner.department_ids or [])]
            if bosses:
                notices.append(StallNotice(deal, "manager", bosses, owner, rep_told_at))
            else:
                log.info("stalled deal %s has no manager to escalate to (owner %s)", deal.deal_id, deal.owner_id)
        return notices, page[-1].deal_id

    def record_stall_notice(self, notice: StallNotice, at: datetime) -> None:
        """Remember (at business time) that this level was told about this stage entry."""
        action = STALL_REP_ACTION if notice.level == "rep" else STALL_MANAGER_ACTION
        self.session.add(AuditEntry(actor=SYSTEM_ACTOR, action=action, customer_id=notice.deal.customer_id,
                                    detail=notice.deal.key, created_at=at))

    async def _stalled_page(self, now: datetime, after_id: int, limit: int) -> list[StalledDeal]:
        cutoff = now - self.policy.stall_rep_after
        last_note = select(func.max(Note.created_at)).where(Note.customer_id == Deal.customer_id).scalar_subquery()
        rows = (await self.session.execute(
            select(Deal.id, Deal.customer_id, Deal.stage, Deal.stage_changed_at, Deal.owner_id,
                   Customer.owner_id.label("customer_owner_id"), Customer.name, Customer.remark, Customer.company,
                   Customer.last_contact_at, last_note.label("last_note_at"))
            .join(Customer, Customer.id == Deal.customer_id)
            .where(Deal.status == "open", Deal.id > after_id, Deal.stage_changed_at <= cutoff,
                   or_(Customer.last_contact_at.is_(None), Customer.last_contact_at <= cutoff),
                   ~exists().where(Note.customer_id == Deal.customer_id, Note.created_at > cutoff))
            .order_by(Deal.id).limit(limit)
        )).all()
        return [StalledDeal(
            deal_id=r.id, customer_id=r.customer_id, customer=display_name(r.name, r.remark, r.customer_id),
            company=r.company, stage=r.stage, stage_changed_at=r.stage_changed_at,
            owner_id=r.owner_id if r.owner_id is not None else r.customer_owner_id,
            last_activity_at=max(t for t in (r.stage_changed_at, r.last_contact_at, r.last_note_at) if t is not None),
        ) for r in rows]

    async def _told(self, page: list[StalledDeal]) -> dict[tuple[str, str], datetime]:
        rows = (await self.session.execute(
            select(AuditEntry.action, AuditEntry.detail, func.min(AuditEntry.created_at))
            .where(AuditEntry.customer_id.in_({d.customer_id for d in page}),
                   AuditEntry.action.in_((STALL_REP_ACTION, STALL_MANAGER_ACTION)),
                   AuditEntry.detail.in_([d.key for d in page]))
            .group_by(AuditEntry.action, AuditEntry.detail)
        )).all()
        return {(action, detail): at for action, detail, at in rows}

    # -- dormant customers -------------------------------------------------------------------

    def reactivation_due(self, now: datetime) -> datetime:
        """The next `followup_time` (local) after `now`: the same morning for a 02:00 run."""
        local = now.astimezone(self.timezone)
        due = datetime.combine(local.date(), self.policy.followup_time, tzinfo=self.timezone)
        return due if due > local else datetime.combine(local.date() + timedelta(days=1), self.policy.followup_time,
                                                        tzinfo=self.timezone)

    async def mark_dormant(self, now: datetime, limit: int) -> int:
        """Move up to `limit` customers in a funnel stage (潜在 … 忠诚) quiet for `dormant_after` to
        dormant, each with a lifecycle change (from which a wake-up restores the stage), an audit
        row and, when owned, a reactivation follow-up; returns how many moved (0: none left).

        Each stage is updated on its own, guarded by that stage, so a customer who moved meanwhile
        (a message, a deal) is left alone and gets no history row. The follow-up is marked
        reminded: the rep hears about it in the batched dormant message and the morning digest,
        not in one ping per customer."""
        after = self.policy.dormant_after
        rows = (await self.session.execute(
            select(Customer.id, Customer.owner_id, Customer.lifecycle, Customer.last_contact_at, Customer.created_at)
            .where(Customer.lifecycle.in_(FUNNEL), _quiet_before(now - after))
            .order_by(Customer.id).limit(limit)
        )).all()
        if not rows:
            return 0
        moved: set[int] = set()
        for stage in sorted({r.lifecycle for r in rows}):
            moved.update((await self.session.scalars(
                update(Customer)
                .where(Customer.id.in_([r.id for r in rows if r.lifecycle == stage]), Customer.lifecycle == stage)
                .values(lifecycle=DORMANT, lifecycle_changed_at=now)
                .returning(Customer.id), execution_options={"synchronize_session": False}
            )).all())
        rows = [r for r in rows if r.id in moved]
        if not rows:  # all of them moved meanwhile (a race only): tomorrow's run looks again
            return 0
        await self.session.execute(insert(LifecycleChange),
                                   [history_row(r.id, r.lifecycle, DORMANT, WENT_DORMANT, now) for r in rows])
        due = self.reactivation_due(now)
        audits, follow_ups = [], []
        for r in rows:
            since = r.last_contact_at or r.created_at
            days = (now - since).days
            last = since.astimezone(self.timezone).date().isoformat() if r.last_contact_at else "never"
            audits.append({"actor": SYSTEM_ACTOR, "action": DORMANT_ACTION, "customer_id": r.id, "created_at": now,
                           "detail": f"no interaction for {days} days (last contact: {last}); "
                                     f"threshold {after.days} days"})
            if r.owner_id is not None:
                text = render("nudges.dormant.followup_text", days=days,
                              last=f"{since.astimezone(self.timezone):%Y-%m-%d}" if r.last_contact_at
                              else render("nudges.never_contacted"))
                follow_ups.append({"customer_id": r.id, "owner_id": r.owner_id, "created_by_id": None, "due_at": due,
                                   "text": text, "status": "open", "reminded_at": now, "created_at": now})
        await self.session.execute(insert(AuditEntry), audits)
        if follow_ups:
            await self.session.execute(insert(FollowUp), follow_ups)
        return len(rows)

    def _reactivations_where(self, now: datetime) -> tuple[ColumnElement[bool], ...]:
        """This run's reactivation follow-ups: system-made (no author), today, due at the reactivation time."""
        today = now.astimezone(self.timezone).date()
        return (FollowUp.status == "open", FollowUp.due_at == self.reactivation_due(now),
                FollowUp.created_by_id.is_(None), FollowUp.created_at >= local_day_start(today, self.timezone))

    async def reactivation_owners(self, now: datetime) -> list[int]:
        return list((await self.session.scalars(
            select(distinct(FollowUp.owner_id)).where(*self._reactivations_where(now)).order_by(FollowUp.owner_id)
        )).all())

    async def reactivations(self, owner_id: int, now: datetime) -> Listing[Reactivation]:
        where = (*self._reactivations_where(now), FollowUp.owner_id == owner_id)
        rows = (await self.session.execute(
            select(Customer.id, Customer.name, Customer.remark, Customer.company, FollowUp.due_at)
            .join(Customer, Customer.id == FollowUp.customer_id)
            .where(*where).order_by(FollowUp.id).limit(self.policy.max_items)
        )).all()
        items = [Reactivation(display_name(r.name, r.remark, r.id), r.company, r.due_at) for r in rows]
        return Listing(items, await self._total(len(items), select(func.count()).select_from(FollowUp).where(*where)))
