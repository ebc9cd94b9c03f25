"""The durable inbox: a callback is a row here before WeCom hears "ok"."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

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
        rows: dict[str, dict] = {}
        for item in items:  # in arrival order, which is the order workers take them in; the first of a key wins
            rows.setdefault(item.dedup_key, {"dedup_key": item.dedup_key, "source": item.source, "payload": item.payload,
                                             "received_at": now, "available_at": now, "status": "pending",
                                             "attempts": 0, "last_error": "", "locked_by": ""})
        # One statement for any number of rows, compiled once: executemany with RETURNING becomes a
        # multi-row INSERT in SQLAlchemy ("insertmanyvalues"), where .values([...]) would be compiled
        # anew for every batch size.
        result = await self.session.execute(_stage_statement(self.session.bind.dialect.name), list(rows.values()))
        return set(result.scalars().all())

    async def parked(self, limit: int = 100) -> list[InboxItem]:
        stmt = select(InboxItem).where(InboxItem.status == "parked").order_by(InboxItem.id).limit(limit)
        return list((await self.session.scalars(stmt)).all())


@cache
def _stage_statement(dialect: str):
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (insert(InboxItem.__table__).on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(InboxItem.__table__.c.dedup_key))
