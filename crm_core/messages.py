"""The message archive: every inbound and outbound message, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from crm_core.db import utcnow
from crm_core.models import Customer, Message
from crm_core.sql import insert_if_absent


@dataclass(frozen=True)
class NewMessage:
    channel: str
    direction: str
    external_msg_id: str
    msg_type: str
    sent_at: datetime
    text: str = ""
    sender: str = ""
    recipient: str = ""
    payload: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    customer_id: int | None = None
    staff_id: int | None = None


@dataclass(frozen=True)
class MessageFilter:
    channel: str | None = None
    direction: str | None = None
    since: datetime | None = None
    customer_id: int | None = None
    # A data scope's owners (None: everyone): their customers' messages and their own chats with the bot.
    owner_ids: frozenset[int] | None = None


class MessageService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def archive(self, message: NewMessage) -> Message | None:
        """Archive in the caller's transaction; None when (channel, external_msg_id) is already there."""
        if message.direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', got {message.direction!r}")
        values = {**message.__dict__, "created_at": utcnow(), "analysis": None}
        new_id = await insert_if_absent(self.session, Message, values, ["channel", "external_msg_id"])
        if new_id is None:
            return None
        # We know every column we just wrote: attach the row without reading it back.
        archived = Message(id=new_id, **values)
        make_transient_to_detached(archived)
        self.session.add(archived)
        return archived

    async def list(self, flt: MessageFilter, *, after_id: int = 0, limit: int = 100) -> tuple[list[Message], int]:
        where = []
        if flt.channel:
            where.append(Message.channel == flt.channel)
        if flt.direction:
            where.append(Message.direction == flt.direction)
        if flt.since:
            where.append(Message.sent_at >= flt.since)
        if flt.customer_id is not None:
            where.append(Message.customer_id == flt.customer_id)
        if flt.owner_ids is not None:
            owned = select(Customer.id).where(Customer.owner_id.in_(flt.owner_ids))
            where.append(or_(Message.customer_id.in_(owned), Message.staff_id.in_(flt.owner_ids)))
        total = await self.session.scalar(select(func.count()).select_from(Message).where(*where))
        stmt = select(Message).where(Message.id > after_id, *where).order_by(Message.id).limit(limit)
        return list((await self.session.scalars(stmt)).all()), total or 0

    async def last_for_customer(self, customer_id: int) -> Message | None:
        """The customer's latest conversation message (events such as "contact added" do not count)."""
        stmt = (
            select(Message)
            .where(Message.customer_id == customer_id, Message.msg_type.not_like("event%"))
            .order_by(Message.sent_at.desc(), Message.id.desc())
        )
        return await self.session.scalar(stmt.limit(1))
