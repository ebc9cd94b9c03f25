"""Lifecycle stages (客户状态): 潜在 prospect → 意向 interested → 成交 customer → 忠诚 loyal, plus
沉睡 dormant and 已流失 churned.

Events move customers: a purchase-intent message or an opened deal makes a prospect interested, a
won deal makes a customer, a second won deal (or the rule in config/lifecycle.toml) a loyal one;
the dormant job puts quiet customers to sleep and any contact wakes them; deleting the rep churns
a customer and adding the rep back returns them. Events only move forward along the funnel, so a
purchase-intent line from a customer never demotes them to 意向, and a customer who wakes up or
comes back returns to the stage they had before (read from the history). A rep may set any stage
by hand. Every move is a LifecycleChange row with its reason and sets `lifecycle_changed_at`.

Decisions are taken on the customer row re-read under its row lock, so two workers (a message
and a deal, say) cannot both move the same customer from the same stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.policies import CONFIG_DIR, shipped_policy
from crm_core.lead_score import LeadScoreService
from crm_core.models import Customer, Deal, LifecycleChange, Staff
from crm_core.sql import reread_locked

POLICY_FILE = CONFIG_DIR / "lifecycle.toml"

PROSPECT, INTERESTED, CUSTOMER, LOYAL = "prospect", "interested", "customer", "loyal"
DORMANT, CHURNED = "dormant", "churned"
# The funnel, in order: the stages a customer is active in. Events never move a customer back along it.
FUNNEL = (PROSPECT, INTERESTED, CUSTOMER, LOYAL)
STAGES = (*FUNNEL, DORMANT, CHURNED)

# Why a stage changed (LifecycleChange.reason; worded for reps in templates_lifecycle.toml).
PURCHASE_INTENT = "purchase_intent"
DEAL_OPENED = "deal.opened"
DEAL_WON = "deal.won"
REPEAT_PURCHASE = "repeat_purchase"
WENT_DORMANT = "dormant"
WOKE_UP = "woke_up"
LEFT = "churned"
RE_ADDED = "re_added"
MANUAL = "manual"
IMPORT = "import"
REANALYSED = "reanalysed"

# How far back a return (wake-up, re-add) looks for the stage the customer had.
HISTORY_LOOKBACK = 20


@dataclass(frozen=True)
class LifecyclePolicy:
    buying_min_confidence: float
    loyal_won_deals: int
    loyal_won_amount: float
    # The owner rep hears of a customer's buying messages at most once per this many hours.
    buying_alert_hours: float = 4.0

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> LifecyclePolicy:
        policy = cls(buying_min_confidence=float(raw["interested"]["buying_min_confidence"]),
                     loyal_won_deals=int(raw["loyal"]["won_deals"]), loyal_won_amount=float(raw["loyal"]["won_amount"]),
                     buying_alert_hours=float(raw["interested"]["buying_alert_hours"]))
        problems = []
        if not 0 < policy.buying_min_confidence <= 1:
            problems.append("interested.buying_min_confidence must be in (0, 1]")
        if policy.buying_alert_hours <= 0:
            problems.append("interested.buying_alert_hours must be positive")
        if policy.loyal_won_deals < 0 or policy.loyal_won_amount < 0:
            problems.append("loyal.won_deals and loyal.won_amount must not be negative")
        if problems:
            raise ValueError("; ".join(problems))
        return policy

    def is_loyal(self, won_deals: int, won_amount: float) -> bool:
        return bool((self.loyal_won_deals and won_deals >= self.loyal_won_deals)
                    or (self.loyal_won_amount and won_amount >= self.loyal_won_amount))


default_policy = shipped_policy(POLICY_FILE.name, LifecyclePolicy.from_toml)


def history_row(customer_id: int, from_stage: str, to_stage: str, reason: str, at: datetime,
                actor_id: int | None = None) -> dict[str, Any]:
    """A LifecycleChange as a row for bulk inserts (the dormant job, the importer)."""
    return {"customer_id": customer_id, "from_stage": from_stage, "to_stage": to_stage, "reason": reason,
            "actor_id": actor_id, "changed_at": at}


class LifecycleService:
    def __init__(self, session: AsyncSession, policy: LifecyclePolicy | None = None):
        self.session = session
        self.policy = policy or default_policy()

    def move(self, customer: Customer, to: str, reason: str, *, at: datetime, actor_id: int | None = None) -> bool:
        """Set the stage and record why; False when the customer already is there. Callers decide
        whether the move is allowed (events go through the methods below; reps may set any stage)."""
        if to not in STAGES:
            raise ValueError(f"unknown lifecycle stage {to!r}")
        if customer.lifecycle == to:
            return False
        self.session.add(LifecycleChange(customer_id=customer.id, from_stage=customer.lifecycle or "", to_stage=to,
                                         reason=reason, actor_id=actor_id, changed_at=at))
        customer.lifecycle, customer.lifecycle_changed_at = to, at
        customer.churned_at = at if to == CHURNED else None
        return True

    async def advance(self, customer: Customer, to: str, reason: str, *, at: datetime,
                      actor_id: int | None = None) -> bool:
        """Move forward along the funnel only. A dormant or churned customer is measured by the
        stage they had before (a deal won with a dormant 成交 customer does not demote them)."""
        await self._lock(customer)
        base = customer.lifecycle
        if base in (DORMANT, CHURNED):
            base = await self.stage_before(customer)
        target = to if FUNNEL.index(to) > FUNNEL.index(base) else base
        return self.move(customer, target, reason, at=at, actor_id=actor_id)

    async def wake(self, customer: Customer, *, at: datetime) -> bool:
        """Any contact with a dormant (沉睡) customer returns them to their stage; cheap for everyone else."""
        return customer.lifecycle == DORMANT and await self._return(customer, DORMANT, WOKE_UP, at)

    async def re_added(self, customer: Customer, *, at: datetime) -> bool:
        """A churned customer who added the rep back returns to the stage they had."""
        return customer.lifecycle == CHURNED and await self._return(customer, CHURNED, RE_ADDED, at)

    async def churn(self, customer: Customer, *, at: datetime) -> bool:
        """The customer deleted the rep."""
        await self._lock(customer)
        return self.move(customer, CHURNED, LEFT, at=at)

    async def message_analysed(self, customer: Customer, analysis: dict[str, Any], *, at: datetime) -> bool:
        """A buying message (purchase intent or a price inquiry, nlp's buying signal) moves a
        prospect to interested; nobody else moves (a customer
        stays a customer, and a churned one comes back only by adding the rep again)."""
        if not self._is_buying(analysis) or customer.lifecycle != PROSPECT:
            return False
        await self._lock(customer)
        if customer.lifecycle != PROSPECT:
            return False
        return self.move(customer, INTERESTED, PURCHASE_INTENT, at=at)

    async def history_reanalysed(self, customer: Customer, analyses: list[dict[str, Any]], *, at: datetime) -> bool:
        """After `scrm nlp reindex` re-read a customer's whole history with a new model: a buying
        message found now makes a prospect interested; a customer the old model alone made
        interested (their last move was a purchase intent) with no buying message any more goes
        back to prospect. Every other stage came from people or deals and stays."""
        buying = any(self._is_buying(a) for a in analyses)
        if buying:
            if customer.lifecycle != PROSPECT:
                return False
            await self._lock(customer)
            return customer.lifecycle == PROSPECT and self.move(customer, INTERESTED, PURCHASE_INTENT, at=at)
        if customer.lifecycle != INTERESTED:
            return False
        await self._lock(customer)
        last = (await self.session.execute(
            select(LifecycleChange.from_stage, LifecycleChange.reason).where(LifecycleChange.customer_id == customer.id)
            .order_by(LifecycleChange.changed_at.desc(), LifecycleChange.id.desc()).limit(1))).first()
        if customer.lifecycle != INTERESTED or last is None or tuple(last) != (PROSPECT, PURCHASE_INTENT):
            return False
        return self.move(customer, PROSPECT, REANALYSED, at=at)

    def _is_buying(self, analysis: dict[str, Any]) -> bool:
        confidence = float(analysis.get("buying", (analysis.get("intents") or {}).get("buying", 0.0)))
        return confidence >= self.policy.buying_min_confidence

    async def deal_moved(self, customer: Customer, deal: Deal, previous_stage: str, *, at: datetime,
                         actor_id: int | None) -> None:
        """After DealService.move: an opened deal makes the customer interested, a won one a
        customer (or loyal, by config/lifecycle.toml [loyal]); the lead score follows the stage."""
        if deal.status == "won":
            won = list((await self.session.scalars(
                select(Deal.fields).where(Deal.customer_id == customer.id, Deal.status == "won"))).all())
            amount = sum(f.get("budget") for f in won if isinstance(f.get("budget"), (int, float)))
            if self.policy.is_loyal(len(won), amount):
                await self.advance(customer, LOYAL, REPEAT_PURCHASE if len(won) > 1 else DEAL_WON, at=at,
                                   actor_id=actor_id)
            else:
                await self.advance(customer, CUSTOMER, DEAL_WON, at=at, actor_id=actor_id)
        elif deal.status == "open" and not previous_stage:
            await self.advance(customer, INTERESTED, DEAL_OPENED, at=at, actor_id=actor_id)
        await LeadScoreService(self.session).rescore(customer, at=at)

    async def stage_before(self, customer: Customer) -> str:
        """The latest funnel stage in the customer's history; without history (customers from
        before it was kept), what their deals say, as the migration decided."""
        changes = (await self.session.execute(
            select(LifecycleChange.from_stage, LifecycleChange.to_stage)
            .where(LifecycleChange.customer_id == customer.id)
            .order_by(LifecycleChange.changed_at.desc(), LifecycleChange.id.desc()).limit(HISTORY_LOOKBACK)
        )).all()
        for from_stage, to_stage in changes:
            if to_stage in FUNNEL:
                return to_stage
            if from_stage in FUNNEL:
                return from_stage
        statuses = set((await self.session.scalars(select(Deal.status).where(Deal.customer_id == customer.id))).all())
        return CUSTOMER if "won" in statuses else INTERESTED if "open" in statuses else PROSPECT

    async def set_by_hand(self, customer: Customer, stage: str, *, by: int, at: datetime) -> bool:
        """A rep's decision: any stage, forward or back; False when the customer already is there."""
        await self._lock(customer)
        return self.move(customer, stage, MANUAL, at=at, actor_id=by)

    async def history(self, customer_id: int, limit: int = 5) -> list[tuple[LifecycleChange, str | None]]:
        """The latest moves, newest first, each with the name of the staff member who made it (if any)."""
        return [(change, name) for change, name in (await self.session.execute(
            select(LifecycleChange, Staff.name).outerjoin(Staff, Staff.id == LifecycleChange.actor_id)
            .where(LifecycleChange.customer_id == customer_id)
            .order_by(LifecycleChange.changed_at.desc(), LifecycleChange.id.desc()).limit(limit)
        )).all()]

    async def _return(self, customer: Customer, left: str, reason: str, at: datetime) -> bool:
        await self._lock(customer)
        if customer.lifecycle != left:
            return False
        return self.move(customer, await self.stage_before(customer), reason, at=at)

    async def _lock(self, customer: Customer) -> None:
        await reread_locked(self.session, customer, ["lifecycle", "lifecycle_changed_at", "churned_at"])
