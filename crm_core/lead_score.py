"""热度 (lead score): how warm a customer is right now, 0-100.

The score is a function of the customer's own inbound messages in the last `window_days` (how
recent the latest one is, how many there were, what the analysis read in them: purchase intent
and price questions warm a lead, complaints and churn talk cool it) and of their deal (later
stages are warmer). Weights are in config/lifecycle.toml [lead_score].

Nothing is accumulated: the same messages and deal give the same score whether it is computed
when a message is analysed or by the nightly `leads.rescore`, so the two never drift apart and an
idle lead cools down simply because its messages age. A per-message update re-reads the
customer's messages after taking the customer's row lock (like crm_core.insights), so two workers
analysing messages of one customer both end up counted: whoever locks second sees the first's
committed message.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from config.policies import CONFIG_DIR, shipped_policy
from crm_core.models import Customer, Deal, Message
from crm_core.sql import reread_locked

POLICY_FILE = CONFIG_DIR / "lifecycle.toml"  # [lead_score], beside the stages it feeds
# A customer writing more than this within the window is as warm as it gets; older lines are not read.
MAX_MESSAGES = 200
HIGH, MEDIUM, LOW = "high", "medium", "low"


@dataclass(frozen=True)
class LeadScorePolicy:
    window: timedelta
    hot: int
    warm: int
    morning_top: int
    recency_max: float
    per_message: float
    frequency_max: float
    intents: dict[str, float]
    intent_max: float
    intent_min: float
    deal_stages: dict[str, float]
    won: float

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> LeadScorePolicy:
        raw = raw["lead_score"]
        messages, deal = raw["messages"], raw["deal"]
        intents = {str(k): float(v) for k, v in raw["intents"].items()}
        policy = cls(
            window=timedelta(days=int(raw["window_days"])), hot=int(raw["hot"]), warm=int(raw["warm"]),
            morning_top=int(raw["morning_top"]), recency_max=float(messages["recency_max"]),
            per_message=float(messages["per_message"]), frequency_max=float(messages["frequency_max"]),
            intent_max=intents.pop("max"), intent_min=intents.pop("min"), intents=intents,
            deal_stages={str(k): float(v) for k, v in deal.get("stages", {}).items()}, won=float(deal["won"]),
        )
        problems = []
        if policy.window <= timedelta(0) or policy.morning_top <= 0:
            problems.append("window_days and morning_top must be positive")
        if not 0 < policy.warm < policy.hot <= 100:
            problems.append("need 0 < warm < hot <= 100")
        if policy.intent_min > 0 or policy.intent_max < 0:
            problems.append("intents.min must be <= 0 <= intents.max")
        if problems:
            raise ValueError("; ".join(problems))
        return policy

    def band(self, score: int) -> str:
        """高 / 中 / 低 on the card, by the configured thresholds."""
        return HIGH if score >= self.hot else MEDIUM if score >= self.warm else LOW


default_policy = shipped_policy(POLICY_FILE.name, LeadScorePolicy.from_toml)


@dataclass(frozen=True)
class RescoredPage:
    last_id: int  # where the next page starts
    seen: int
    changed: int


@dataclass(frozen=True)
class Inbound:
    """One customer message as the score sees it: when, and the intents the analysis found."""

    sent_at: datetime
    intents: dict[str, float]


def compute(messages: Iterable[Inbound], deal_points: float, now: datetime, policy: LeadScorePolicy) -> int:
    """The score at `now`: recency of the latest message, message count, fading intents, deal."""
    window_days = policy.window.total_seconds() / 86400
    freshest, count, intents = 0.0, 0, 0.0
    for message in messages:
        age = max(0.0, (now - message.sent_at).total_seconds() / 86400)
        if age >= window_days:
            continue
        fade = 1.0 - age / window_days
        count += 1
        freshest = max(freshest, fade)
        intents += sum(policy.intents.get(name, 0.0) * float(confidence) * fade
                       for name, confidence in (message.intents or {}).items())
    total = (policy.recency_max * freshest + min(policy.frequency_max, policy.per_message * count)
             + min(policy.intent_max, max(policy.intent_min, intents)) + deal_points)
    return max(0, min(100, round(total)))


class LeadScoreService:
    def __init__(self, session: AsyncSession, policy: LeadScorePolicy | None = None):
        self.session = session
        self.policy = policy or default_policy()

    async def rescore(self, customer: Customer, *, at: datetime) -> int:
        """Recompute one customer's score, under the customer's row lock, as of `at` (never earlier
        than the score already stored: a message processed late does not turn the clock back)."""
        await reread_locked(self.session, customer, ["lead_score", "lead_score_at"])
        if customer.lead_score_at is not None and customer.lead_score_at > at:
            at = customer.lead_score_at
        messages = await self._inbound([customer.id], at)
        deals = await self._deal_points([customer.id])
        customer.lead_score = compute(messages.get(customer.id, []), deals.get(customer.id, 0.0), at, self.policy)
        customer.lead_score_at = at
        return customer.lead_score

    async def rescore_page(self, now: datetime, *, after_id: int, limit: int) -> RescoredPage | None:
        """Recompute one page (by id) of the customers whose score can change with time: warm ones,
        never scored ones and recently contacted ones; None when there are no more.

        The page's rows are locked (FOR NO KEY UPDATE on PostgreSQL: messages may still be
        inserted for them) so a worker's per-message update is not overwritten with an older
        answer; a row scored after `now` is left alone."""
        rows = (await self.session.execute(
            select(Customer.id, Customer.lead_score, Customer.lead_score_at)
            .where(Customer.id > after_id,
                   or_(Customer.lead_score > 0, Customer.lead_score_at.is_(None),
                       Customer.last_contact_at >= now - self.policy.window))
            .order_by(Customer.id).limit(limit).with_for_update(key_share=True)
        )).all()
        if not rows:
            return None
        ids = [r.id for r in rows]
        messages = await self._inbound(ids, now)
        deals = await self._deal_points(ids)
        changes = []
        for r in rows:
            if r.lead_score_at is not None and r.lead_score_at > now:
                continue
            score = compute(messages.get(r.id, []), deals.get(r.id, 0.0), now, self.policy)
            if score != r.lead_score or r.lead_score_at is None:
                changes.append({"id": r.id, "lead_score": score, "lead_score_at": now})
        if changes:
            await self.session.execute(update(Customer), changes)
        return RescoredPage(ids[-1], len(ids), len(changes))

    async def _inbound(self, customer_ids: list[int], now: datetime) -> dict[int, list[Inbound]]:
        """Each customer's latest MAX_MESSAGES own messages within the window before `now` (contact
        events such as "added the rep" are not something the customer said)."""
        rank = func.row_number().over(partition_by=Message.customer_id,
                                      order_by=(Message.sent_at.desc(), Message.id.desc())).label("rank")
        recent = (
            select(Message.customer_id, Message.sent_at, Message.analysis["intents"].label("intents"), rank)
            .where(Message.customer_id.in_(customer_ids), Message.direction == "in",
                   Message.msg_type.not_like("event%"), Message.sent_at > now - self.policy.window,
                   Message.sent_at <= now)
            .subquery()
        )
        rows = (await self.session.execute(
            select(recent.c.customer_id, recent.c.sent_at, recent.c.intents).where(recent.c.rank <= MAX_MESSAGES)
        )).all()
        found: dict[int, list[Inbound]] = defaultdict(list)
        for customer_id, sent_at, intents in rows:
            found[customer_id].append(Inbound(sent_at, intents if isinstance(intents, dict) else {}))
        return found

    async def _deal_points(self, customer_ids: list[int]) -> dict[int, float]:
        """The open deal's stage points; with no open deal, `won` when the latest closed deal was won."""
        rows = (await self.session.execute(
            select(Deal.customer_id, Deal.stage, Deal.status)
            .where(Deal.customer_id.in_(customer_ids))
            .order_by(Deal.customer_id, (Deal.status == "open").desc(), Deal.closed_at.desc(), Deal.id.desc())
        )).all()
        points: dict[int, float] = {}
        for customer_id, stage, status in rows:
            if customer_id in points:
                continue
            points[customer_id] = (self.policy.deal_stages.get(stage, 0.0) if status == "open"
                                   else self.policy.won if status == "won" else 0.0)
        return points

