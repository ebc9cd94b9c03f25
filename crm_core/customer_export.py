"""Customers written back out as spreadsheet records, in crm_core.customer_sheet's columns, so an
exported file imports again as the same customers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import noload

from crm_core.customer_sheet import birthday_text, description_parts, staff_label
from crm_core.importer import WECOM_CHANNEL
from crm_core.models import Customer, CustomerIdentity, CustomerTag
from crm_core.scope import Scope


async def export_records(session: AsyncSession, scope: Scope, *, page_size: int = 1000) -> AsyncIterator[dict[str, Any]]:
    """Customers within `scope` as {field: value} in COLUMNS' terms, read a page at a time by id."""
    after_id = 0
    while True:
        stmt = (select(Customer).where(Customer.id > after_id, *scope.where()).order_by(Customer.id)
                .limit(page_size).options(noload(Customer.identities)))
        page = list((await session.scalars(stmt)).all())
        if not page:
            return
        ids = [c.id for c in page]
        tags: dict[int, list[str]] = {}
        stmt = (select(CustomerTag.customer_id, CustomerTag.name)
                .where(CustomerTag.customer_id.in_(ids)).order_by(CustomerTag.id))
        for customer_id, name in (await session.execute(stmt)).all():
            tags.setdefault(customer_id, []).append(name)
        external: dict[int, list[str]] = {}
        stmt = (select(CustomerIdentity.customer_id, CustomerIdentity.external_id)
                .where(CustomerIdentity.channel == WECOM_CHANNEL, CustomerIdentity.customer_id.in_(ids))
                .order_by(CustomerIdentity.id))
        for customer_id, external_id in (await session.execute(stmt)).all():
            external.setdefault(customer_id, []).append(external_id)
        for customer in page:
            parts = description_parts(customer.description)
            yield {
                "name": customer.name, "phone": customer.phone, "company": customer.company,
                "position": parts["position"], "birthday": birthday_text(customer.birthday),
                "owner": staff_label(customer.owner.userid, customer.owner.name) if customer.owner else "",
                "tags": "、".join(tags.get(customer.id, [])), "source": customer.source, "remark": customer.remark,
                "description": parts["description"], "external_userid": "、".join(external.get(customer.id, [])),
                "care_consent": "是" if customer.may_receive_care else "否",
                "contract_ends_on": customer.contract_ends_on,
            }
        after_id = page[-1].id
        for customer in page:
            session.expunge(customer)

async def count_in_scope(session: AsyncSession, scope: Scope) -> int:
    return await session.scalar(select(func.count()).select_from(Customer).where(*scope.where())) or 0
