"""Data scope: which customers a staff member may see.

sales and support see the customers they own, managers those owned by anyone in their
departments (themselves included), admins every customer. Computed once per command as a set
of owner ids, so every query can carry it as a plain `owner_id IN (...)` filter.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer, Staff


@dataclass(frozen=True)
class Scope:
    staff_id: int
    owner_ids: frozenset[int] | None  # None: every customer

    @property
    def everyone(self) -> bool:
        return self.owner_ids is None

    def where(self) -> list[ColumnElement[bool]]:
        return [] if self.owner_ids is None else [Customer.owner_id.in_(self.owner_ids)]

    def allows(self, customer: Customer) -> bool:
        return self.owner_ids is None or customer.owner_id in self.owner_ids

    def covers_staff(self, staff_id: int) -> bool:
        return self.owner_ids is None or staff_id in self.owner_ids


async def scope_for(session: AsyncSession, staff: Staff) -> Scope:
    if staff.role == "admin":
        return Scope(staff.id, None)
    if staff.role != "manager":
        return Scope(staff.id, frozenset({staff.id}))
    departments = set(staff.department_ids or [])
    rows = (await session.execute(select(Staff.id, Staff.department_ids))).all()
    team = {row.id for row in rows if departments & set(row.department_ids or [])}
    return Scope(staff.id, frozenset(team | {staff.id}))


async def managers_of(session: AsyncSession, staff: Staff) -> list[Staff]:
    """Who manages `staff`: active managers sharing one of their departments (the same relation that
    gives managers their scope), or the admins when there are none, so news always reaches someone."""
    departments = set(staff.department_ids or [])
    rows = (await session.scalars(select(Staff).where(Staff.active.is_(True), Staff.id != staff.id,
                                                      Staff.role.in_(("manager", "admin"))).order_by(Staff.id))).all()
    managers = [s for s in rows if s.role == "manager" and departments & set(s.department_ids or [])]
    return managers or [s for s in rows if s.role == "admin"]
