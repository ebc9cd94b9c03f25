"""CRM tags staff put on customers (`标签 张三 +VIP -价格敏感`)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.errors import ValidationError
from crm_core.models import Customer, CustomerTag, Staff
from crm_core.sql import insert_if_absent
from crm_core.tag_push import queue_tag_push

MAX_TAG_LENGTH = 64


class TagService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def names(self, customer_id: int) -> list[str]:
        stmt = select(CustomerTag.name).where(CustomerTag.customer_id == customer_id).order_by(CustomerTag.id)
        return list((await self.session.scalars(stmt)).all())

    async def change(self, customer: Customer, by: Staff | None, *, add: list[str], remove: list[str],
                     from_wecom: bool = False) -> list[str]:
        """Add and remove in one go; adding a tag twice is harmless (unique per customer). Returns the new set.

        What changed reaches the customer's reps in WeCom (crm_core.tag_push), unless the change came
        from WeCom itself (`from_wecom`): nothing is sent back to where it came from."""
        for name in (*add, *remove):
            if not name or len(name) > MAX_TAG_LENGTH:
                raise ValidationError(f"tag names are 1..{MAX_TAG_LENGTH} characters")
        before = set(await self.names(customer.id))
        for name in add:
            await insert_if_absent(
                self.session, CustomerTag,
                {"customer_id": customer.id, "name": name, "created_by_id": by.id if by else None,
                 "created_at": utcnow()},
                ["customer_id", "name"],
            )
        if remove:
            await self.session.execute(
                delete(CustomerTag).where(CustomerTag.customer_id == customer.id, CustomerTag.name.in_(remove))
            )
        after = await self.names(customer.id)
        if not from_wecom:
            await queue_tag_push(self.session, customer, add=[t for t in after if t not in before],
                                 remove=[t for t in before if t not in after])
        return after
