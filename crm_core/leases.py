"""Named leases in the database: long work that must run in one process at a time, whichever process
(two schedulers, `scrm serve` and `scrm sync` by hand) starts it, on SQLite and PostgreSQL alike.

A lease is held until its holder releases it or stops renewing it: a holder that dies (kill -9, a
lost host) frees it `ttl` seconds later, so a crash never blocks the work for good. The row also
remembers when the work last finished, which is how a fresh install knows it never ran.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, UTCDateTime, utcnow
from crm_core.models import BigId
from crm_core.sql import insert_if_absent


class Lease(Base):
    __tablename__ = "leases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    holder: Mapped[str] = mapped_column(String(64), default="")  # "" when nobody holds it
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # the last complete run
    summary: Mapped[str] = mapped_column(Text, default="")


class LeaseService:
    """Each call is one statement; commit after it, so other processes see the lease at once."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def acquire(self, name: str, holder: str, *, ttl: float) -> bool:
        """Take the lease unless a live holder has it; True when we hold it now."""
        await insert_if_absent(self.session, Lease, {"name": name, "holder": "", "summary": ""}, ["name"])
        now = utcnow()
        taken = await self.session.execute(
            update(Lease).where(Lease.name == name, (Lease.holder == "") | (Lease.expires_at < now) | (Lease.holder == holder))
            .values(holder=holder, expires_at=now + timedelta(seconds=ttl)))
        return taken.rowcount == 1

    async def renew(self, name: str, holder: str, *, ttl: float) -> bool:
        """Push the expiry on; False when the lease expired and someone else took it."""
        renewed = await self.session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder)
            .values(expires_at=utcnow() + timedelta(seconds=ttl)))
        return renewed.rowcount == 1

    async def release(self, name: str, holder: str, *, finished: bool, summary: str = "") -> None:
        """Give the lease back; `finished` records a complete run (a failed one leaves the last success)."""
        values: dict = {"holder": "", "expires_at": None}
        if finished:
            values.update(finished_at=utcnow(), summary=summary[:2000])
        await self.session.execute(update(Lease).where(Lease.name == name, Lease.holder == holder).values(**values))

    async def get(self, name: str) -> Lease | None:
        return await self.session.scalar(select(Lease).where(Lease.name == name))
