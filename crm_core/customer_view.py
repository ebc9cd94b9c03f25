"""Everything a customer card shows, gathered in one place so the bot, API or a digest read the same."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.deals import DealService, DealStages
from crm_core.followups import FollowUpService
from crm_core.models import Customer, Deal, FollowUp, Message, Note, Staff
from crm_core.notes import NoteService
from crm_core.tags import TagService

SENTIMENT_WINDOW = 5  # the customer's last analysed messages


@dataclass(frozen=True)
class CustomerView:
    customer: Customer
    last_contact_by: Staff | None
    notes: list[Note]
    deal: Deal | None
    tags: list[str]
    next_follow_up: FollowUp | None
    sentiment: float | None  # mean over recent analysed customer messages, -1..1


async def customer_view(session: AsyncSession, customer: Customer, stages: DealStages) -> CustomerView:
    by = await session.get(Staff, customer.last_contact_by_id) if customer.last_contact_by_id else None
    return CustomerView(
        customer=customer,
        last_contact_by=by,
        notes=await NoteService(session).recent(customer.id),
        deal=await DealService(session, stages).current(customer.id),
        tags=list(dict.fromkeys([*customer.wecom_tags, *await TagService(session).names(customer.id)])),
        next_follow_up=await FollowUpService(session).next_for_customer(customer.id),
        sentiment=await recent_sentiment(session, customer.id),
    )


async def recent_sentiment(session: AsyncSession, customer_id: int) -> float | None:
    """Mean sentiment of the customer's latest analysed messages (nlp writes Message.analysis)."""
    stmt = (
        select(Message.analysis)
        .where(Message.customer_id == customer_id, Message.direction == "in", Message.analysis.is_not(None))
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(SENTIMENT_WINDOW * 4)  # JSON null reads as "not analysed"; skip those in Python
    )
    scores = [a["sentiment"] for a in (await session.scalars(stmt)).all()
              if isinstance(a, dict) and isinstance(a.get("sentiment"), (int, float))][:SENTIMENT_WINDOW]
    return sum(scores) / len(scores) if scores else None
