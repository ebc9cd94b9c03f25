"""Moving customers between reps: one customer, or every customer of a departing rep.

Notes stay on the customer, so they move with it; open follow-ups and open deals change owner
in the same transaction, and every moved customer gets an audit row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.audit import AuditService
from crm_core.models import Customer, Deal, FollowUp, Staff


@dataclass(frozen=True)
class HandoverResult:
    customers: int
    follow_ups: int
    deals: int


class HandoverService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def one(self, customer: Customer, to: Staff, *, by: Staff) -> HandoverResult:
        return await self._move([customer.id], customer.owner_id, to, by=by)

    async def all_of(self, leaving: Staff, to: Staff, *, by: Staff) -> HandoverResult:
        ids = list((await self.session.scalars(select(Customer.id).where(Customer.owner_id == leaving.id))).all())
        return await self._move(ids, leaving.id, to, by=by)

    async def _move(self, customer_ids: list[int], from_id: int | None, to: Staff, *, by: Staff) -> HandoverResult:
        if not customer_ids:
            return HandoverResult(0, 0, 0)
        moved = HandoverResult(0, 0, 0)
        audit = AuditService(self.session)
        for start in range(0, len(customer_ids), 500):  # keep IN lists well under driver limits
            chunk = customer_ids[start:start + 500]
            customers = await self.session.execute(
                update(Customer).where(Customer.id.in_(chunk)).values(owner_id=to.id)
            )
            follow_ups = await self.session.execute(
                update(FollowUp).where(FollowUp.customer_id.in_(chunk), FollowUp.status == "open")
                .values(owner_id=to.id)
            )
            deals = await self.session.execute(
                update(Deal).where(Deal.customer_id.in_(chunk), Deal.status == "open")
                .values(owner_id=to.id)
            )
            moved = HandoverResult(moved.customers + customers.rowcount, moved.follow_ups + follow_ups.rowcount,
                                   moved.deals + deals.rowcount)
            for customer_id in chunk:
                audit.record(actor=by.userid, action="customer.handover", customer_id=customer_id,
                             detail=f"from_staff={from_id} to_staff={to.id}")
        return moved
