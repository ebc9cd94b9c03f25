"""Named leases in the database: long work that must run in one process at a time, whichever process
(two schedulers, `scrm serve` and `scrm sync` by hand) starts it, on SQLite and PostgreSQL alike.

A lease is held until its holder releases it or stops renewing it: a holder that dies (kill -9, a
lost host) frees it `ttl` seconds later, so a crash never blocks the work for good. A lease only says
who runs now; how far the work got, and whether it ever finished, is its sync state
(crm_core.sync_states).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, update
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


class LeaseService:
    """Each call is one statement; commit after it, so other processes see the lease at once. A renew
    in the transaction that writes the work's progress locks the lease row until that commit, so
    nobody takes the lease over halfway through the write (PostgreSQL re-checks the condition on
    the row it waited for)."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def acquire(self, name: str, holder: str, *, ttl: float, now: datetime | None = None) -> bool:
        """Take the lease unless a live holder has it; True when we hold it now."""
        await insert_if_absent(self.session, Lease, {"name": name, "holder": ""}, ["name"])
        now = now or utcnow()
        taken = await self.session.execute(
            update(Lease).where(Lease.name == name, (Lease.holder == "") | (Lease.expires_at < now) | (Lease.holder == holder))
            .values(holder=holder, expires_at=now + timedelta(seconds=ttl)).execution_options(synchronize_session=False))
        return taken.rowcount == 1

    async def renew(self, name: str, holder: str, *, ttl: float, now: datetime | None = None) -> bool:
        """Push the expiry on; False when the lease expired and someone else took it."""
        renewed = await self.session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder)
            .values(expires_at=(now or utcnow()) + timedelta(seconds=ttl)).execution_options(synchronize_session=False))
        return renewed.rowcount == 1

    async def release(self, name: str, holder: str) -> None:
        """Give the lease back (a no-op when someone else holds it now)."""
        await self.session.execute(update(Lease).where(Lease.name == name, Lease.holder == holder)
                                   .values(holder="", expires_at=None).execution_options(synchronize_session=False))

