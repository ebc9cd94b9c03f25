"""The durable inbox: a callback is a row here before WeCom hears "ok"."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.models import InboxItem


@dataclass(frozen=True)
class InboundItem:
    dedup_key: str
    source: str
    payload: str


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
        return bool(await self.stage_many([InboundItem(dedup_key, source, payload)]))

    async def stage_many(self, items: list[InboundItem]) -> set[str]:
        """One multi-row INSERT … ON CONFLICT DO NOTHING; returns the keys that were new.

        A key repeated inside `items` is stored once. Used for group commit: many callbacks,
        one round trip and one commit.
        """
        if not items:
            return set()
        now = utcnow()
        rows = {
            item.dedup_key: {"dedup_key": item.dedup_key, "source": item.source, "payload": item.payload,
                             "received_at": now, "available_at": now, "status": "pending", "attempts": 0,
                             "last_error": "", "locked_by": ""}
            for item in reversed(items)  # the first occurrence of a key wins
        }
        insert = postgresql.insert if self.session.bind.dialect.name == "postgresql" else sqlite.insert
        stmt = (
            insert(InboxItem)
            .values(list(rows.values()))
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(InboxItem.dedup_key)
        )
        return set((await self.session.scalars(stmt)).all())

    async def parked(self, limit: int = 100) -> list[InboxItem]:
        stmt = select(InboxItem).where(InboxItem.status == "parked").order_by(InboxItem.id).limit(limit)
        return list((await self.session.scalars(stmt)).all())
