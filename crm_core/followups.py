"""Follow-up reminders: stored here, listed by the bot, fired by the scheduler when due."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import lazyload
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import ValidationError
from crm_core.models import Customer, FollowUp, Staff


class FollowUpService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add(self, customer: Customer, by: Staff, due_at: datetime, text: str, *, at: datetime) -> FollowUp:
        """The reminder goes to the customer's owner (the rep who will act), or to `by` for unowned customers."""
        if due_at <= at:
            raise ValidationError("a follow-up must be due in the future")
        follow_up = FollowUp(customer_id=customer.id, owner_id=customer.owner_id or by.id, created_by_id=by.id,
                             due_at=due_at, text=text, status="open", created_at=at)
        self.session.add(follow_up)
        await self.session.flush()
        return follow_up

    async def open_for_owner(self, owner_id: int, *, limit: int = 200) -> tuple[list[FollowUp], int]:
        """Open follow-ups, most urgent (overdue) first; (page, total)."""
        where = (FollowUp.owner_id == owner_id, FollowUp.status == "open")
        total = await self.session.scalar(select(func.count()).select_from(FollowUp).where(*where)) or 0
        stmt = select(FollowUp).where(*where).order_by(FollowUp.due_at, FollowUp.id).limit(limit)
        return list((await self.session.scalars(stmt)).unique().all()), total

    async def next_for_customer(self, customer_id: int) -> FollowUp | None:
        stmt = (
            select(FollowUp)
            .where(FollowUp.customer_id == customer_id, FollowUp.status == "open")
            .order_by(FollowUp.due_at, FollowUp.id)
            .limit(1)
            # The card asking already holds the customer: joining it again (with its owner, and a
            # second query for its identities) was the card's costliest read.
            .options(lazyload(FollowUp.customer))
        )
        return await self.session.scalar(stmt)
