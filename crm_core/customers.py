"""Customers and the identities that point at them from each channel."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.birthdays import Birthday, parse_birthday
from crm_core.errors import CustomerNotFoundError, DuplicateCustomerError, InvalidDateError
from crm_core.lifecycle import LifecycleService
from crm_core.models import Customer, CustomerIdentity
from crm_core.scope import Scope
from crm_core.search_keys import phone_digits, phone_tail
from crm_core.sql import insert_if_absent


@dataclass(frozen=True)
class ContactProfile:
    """A customer's details as a channel reports them (e.g. WeCom externalcontact/get)."""

    name: str = ""
    company: str = ""
    gender: int = 0
    unionid: str = ""
    remark: str = ""
    description: str = ""
    phones: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    owner_staff_id: int | None = None


class CustomerService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def get(self, customer_id: int) -> Customer:
        customer = await self.session.get(Customer, customer_id)
        if customer is None:
            raise CustomerNotFoundError(f"customer {customer_id} does not exist")
        return customer

    async def resolve(self, channel: str, external_id: str) -> Customer | None:
        stmt = (
            select(Customer)
            .join(CustomerIdentity, CustomerIdentity.customer_id == Customer.id)
            .where(CustomerIdentity.channel == channel, CustomerIdentity.external_id == external_id)
        )
        return await self.session.scalar(stmt)

    async def ensure(self, channel: str, external_id: str, *, name: str = "") -> Customer:
        """The customer behind (channel, external_id), created on first sight.

        Two workers seeing a new customer at once both insert a customer row, but only one
        identity wins the unique constraint; the loser's customer row is rolled back with its
        savepoint, so both end up on the same customer.
        """
        existing = await self.resolve(channel, external_id)
        if existing is not None:
            return existing
        async with self.session.begin_nested() as savepoint:
            customer = Customer(name=name or "", created_at=utcnow())
            self.session.add(customer)
            await self.session.flush()
            won = await insert_if_absent(
                self.session,
                CustomerIdentity,
                {"customer_id": customer.id, "channel": channel, "external_id": external_id, "created_at": utcnow()},
                ["channel", "external_id"],
            )
            if won is None:
                await savepoint.rollback()
        if won is None:
            return await self.resolve(channel, external_id)
        await self.session.refresh(customer, ["identities"])
        return customer

    async def apply_profile(self, customer: Customer, profile: ContactProfile, *, at: datetime | None = None) -> Customer:
        """Refresh what the channel knows; keep what it does not say (empty values never erase).
        A churned customer with an owner again (they added the rep back) returns to their stage."""
        for name in ("name", "company", "unionid", "remark", "description"):
            value = getattr(profile, name)
            if value and getattr(customer, name) != value:  # an unchanged name keeps its search keys as they are
                setattr(customer, name, value)
        if profile.gender:
            customer.gender = profile.gender
        if profile.phones:
            customer.phone = profile.phones[0]
        if profile.tags:
            customer.wecom_tags = list(dict.fromkeys(profile.tags))
        if profile.owner_staff_id is not None:
            customer.owner_id = profile.owner_staff_id
        if customer.birthday is None:
            customer.birthday = birthday_in(profile.description)
        if profile.owner_staff_id is not None:
            await LifecycleService(self.session).re_added(customer, at=at or utcnow())
        return customer

    async def touch_contact(self, customer: Customer, *, at: datetime, staff_id: int | None = None) -> None:
        """Any interaction counts as contact, and wakes a dormant (沉睡) customer up again."""
        if customer.last_contact_at is None or at >= customer.last_contact_at:
            customer.last_contact_at = at
            if staff_id is not None:
                customer.last_contact_by_id = staff_id
        await LifecycleService(self.session).wake(customer, at=at)

    async def create(self, *, name: str, phone: str, company: str, owner_id: int, at: datetime) -> Customer:
        """A customer entered by hand; refuses with DuplicateCustomerError when it already exists."""
        existing = await self.duplicates(name=name, phone=phone, company=company)
        if existing:
            raise DuplicateCustomerError("customer already exists", existing)
        customer = Customer(name=name, phone=phone, company=company, owner_id=owner_id, created_at=at, updated_at=at)
        self.session.add(customer)
        await self.session.flush()
        return customer

    async def duplicates(self, *, name: str, phone: str, company: str, limit: int = 5) -> list[Customer]:
        """Same phone number (compared by digits), or same name at the same company."""
        found: dict[int, Customer] = {}
        digits = phone_digits(phone)
        if digits:
            stmt = select(Customer).where(Customer.phone_tail == phone_tail(phone)).order_by(Customer.id).limit(200)
            for customer in (await self.session.scalars(stmt)).all():
                if phone_digits(customer.phone) == digits:
                    found[customer.id] = customer
        if name and company:
            stmt = (select(Customer).where(Customer.name == name, Customer.company == company)
                    .order_by(Customer.id).limit(limit))
            found.update({c.id: c for c in (await self.session.scalars(stmt)).all()})
        return list(found.values())[:limit]

    async def owned_by(self, owner_id: int, *, by_heat: bool = False, limit: int = 200) -> list[Customer]:
        """A rep's own customers (`我的客户`, the sidebar's list): latest contact first, never-contacted
        last; `by_heat`, the warmest leads first."""
        order = (Customer.lead_score.desc(), Customer.id) if by_heat else \
            (Customer.last_contact_at.desc().nulls_last(), Customer.id)
        stmt = select(Customer).where(Customer.owner_id == owner_id).order_by(*order).limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def search(
        self, q: str = "", *, scope: Scope | None = None, after_id: int = 0, limit: int = 50
    ) -> tuple[list[Customer], int]:
        """Customers whose name, company, phone or remark contains `q`; (page, total), within `scope`."""
        where = [] if scope is None else scope.where()
        if q:
            pattern = f"%{_escape_like(q)}%"
            where.append(
                or_(
                    Customer.name.like(pattern, escape="\\"),
                    Customer.company.like(pattern, escape="\\"),
                    Customer.phone.like(pattern, escape="\\"),
                    Customer.remark.like(pattern, escape="\\"),
                )
            )
        total = await self.session.scalar(select(func.count()).select_from(Customer).where(*where))
        stmt = select(Customer).where(Customer.id > after_id, *where).order_by(Customer.id).limit(limit)
        return list((await self.session.scalars(stmt)).all()), total or 0


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_BIRTHDAY = re.compile(r"生日\s*[:：]?\s*((?:农历|阴历)?[\d一二三四五六七八九十正冬腊闰初廿年月日号./-]+)")


def birthday_in(text: str) -> Birthday | None:
    """Reps write birthdays into the WeCom description ("生日: 1985-03-12", "生日：农历三月初二")."""
    match = _BIRTHDAY.search(text or "")
    if not match:
        return None
    try:
        return parse_birthday(match.group(1))
    except InvalidDateError:
        return None
