"""Everything a customer card shows, gathered in one place so the bot, API or a digest read the same."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.deals import DealService, DealStages
from crm_core.followups import FollowUpService
from crm_core.groups import GroupService
from crm_core.models import Customer, Deal, FollowUp, Note, Staff
from crm_core.notes import NoteService
from crm_core.tags import TagService
from crm_core.ticket_models import OPEN, Ticket


@dataclass(frozen=True)
class CustomerView:
    customer: Customer
    last_contact_by: Staff | None
    notes: list[Note]
    deal: Deal | None
    tags: list[str]
    next_follow_up: FollowUp | None
    open_tickets: list[Ticket]
    sentiment: float | None  # the rolling sentiment kept by crm_core.insights, -1..1
    groups: list[str] = field(default_factory=list)  # the customer groups (客户群) they are in now


async def customer_view(session: AsyncSession, customer: Customer, stages: DealStages) -> CustomerView:
    by = await session.get(Staff, customer.last_contact_by_id) if customer.last_contact_by_id else None
    return CustomerView(
        customer=customer,
        last_contact_by=by,
        notes=await NoteService(session).recent(customer.id),
        deal=await DealService(session, stages).current(customer.id),
        tags=list(dict.fromkeys([*customer.wecom_tags, *await TagService(session).names(customer.id)])),
        next_follow_up=await FollowUpService(session).next_for_customer(customer.id),
        open_tickets=list((await session.scalars(
            select(Ticket).where(Ticket.customer_id == customer.id, Ticket.status == OPEN).order_by(Ticket.id)
        )).all()),
        sentiment=customer.sentiment_score,
        groups=[g.name for g in await GroupService(session).of_customer(customer)],
    )
