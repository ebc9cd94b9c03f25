"""The durable inbox: a callback is a row here before WeCom hears "ok"."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.models import InboxItem
from crm_core.sql import insert_if_absent


class InboxService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def accept(self, *, dedup_key: str, source: str, payload: str) -> bool:
        """Store and commit one inbound item; False when it was already stored (a retry)."""
        created = await self.stage(dedup_key=dedup_key, source=source, payload=payload)
        await self.session.commit()
        return created

    async def stage(self, *, dedup_key: str, source: str, payload: str) -> bool:
        """Add one inbound item to the caller's transaction (e.g. next to a sync cursor)."""
        now = utcnow()
        new_id = await insert_if_absent(
            self.session,
            InboxItem,
            {"dedup_key": dedup_key, "source": source, "payload": payload, "received_at": now, "available_at": now,
             "status": "pending", "attempts": 0, "last_error": "", "locked_by": ""},
            ["dedup_key"],
        )
        return new_id is not None

    async def counts(self) -> dict[str, int]:
        rows = await self.session.execute(select(InboxItem.status, func.count()).group_by(InboxItem.status))
        return {status: count for status, count in rows.all()}

    async def parked(self, limit: int = 100) -> list[InboxItem]:
        stmt = select(InboxItem).where(InboxItem.status == "parked").order_by(InboxItem.id).limit(limit)
        return list((await self.session.scalars(stmt)).all())
