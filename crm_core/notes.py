"""Notes reps write about customers; writing one counts as contact with the customer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.customers import CustomerService
from crm_core.models import Customer, Note, Staff


class NoteService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def add(self, customer: Customer, author: Staff, text: str, *, at: datetime) -> Note:
        note = Note(customer_id=customer.id, author_id=author.id, text=text, created_at=at)
        self.session.add(note)
        await CustomerService(self.session).touch_contact(customer, at=at, staff_id=author.id)
        await self.session.flush()
        return note

    async def recent(self, customer_id: int, limit: int = 3) -> list[Note]:
        stmt = select(Note).where(Note.customer_id == customer_id).order_by(Note.created_at.desc(), Note.id.desc()).limit(limit)
        return list((await self.session.scalars(stmt)).all())
