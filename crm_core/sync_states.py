"""Where a long sync from WeCom stands, kept in the database so it survives the process.

One row per kind of sync ("customers", …): the run's inputs (which reps), its cursor, its counts,
the contacts that failed, and a lease. A sync takes the lease before it works and renews it as it
goes, so a second scheduler (or a CLI run beside the service) finds it taken and does nothing,
while a run whose process died loses the lease after `lease_seconds` and the next one resumes it
from the kept cursor.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, UTCDateTime, utcnow

RUNNING, DONE, FAILED = "running", "done", "failed"
MAX_FAILED_KEPT = 1000  # failed contacts remembered per run (the count goes on past it)


class SyncState(Base):
    __tablename__ = "sync_states"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(12), default=DONE)  # running | done | failed
    run_id: Mapped[str] = mapped_column(String(32), default="")
    userids: Mapped[list[str]] = mapped_column(JSON, default=list)  # the reps this run covers, in order
    batch: Mapped[int] = mapped_column(Integer, default=0)  # which slice of `userids` is being paged
    cursor: Mapped[str] = mapped_column(String(512), default="")  # WeCom's next_cursor within that slice
    pages: Mapped[int] = mapped_column(Integer, default=0)
    contacts: Mapped[int] = mapped_column(Integer, default=0)  # follow entries applied
    created: Mapped[int] = mapped_column(Integer, default=0)  # customers new to the CRM
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{"id": …, "error": …}]
    error: Mapped[str] = mapped_column(Text, default="")  # why the run stopped, when it did
    summary: Mapped[str] = mapped_column(Text, default="")  # the last finished run, for `jobs list` and the CLI
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # last run that reached the end
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


async def claim(session: AsyncSession, kind: str, owner: str, *, lease: timedelta,
                now: datetime | None = None) -> SyncState | None:
    """Take the lease on `kind`'s sync, or None while another live run holds it. The UPDATE's own
    condition decides between two claimants (PostgreSQL re-checks it on the row it waited for)."""
    now = now or utcnow()
    insert = (postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert)(SyncState)
    await session.execute(insert.values(kind=kind, status=DONE, userids=[], failed=[])
                          .on_conflict_do_nothing(index_elements=["kind"]))
    result = await session.execute(
        update(SyncState)
        .where(SyncState.kind == kind,
               or_(SyncState.lease_owner == "", SyncState.lease_owner == owner,
                   SyncState.lease_until.is_(None), SyncState.lease_until < now))
        .values(lease_owner=owner, lease_until=now + lease)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    state = await session.scalar(select(SyncState).where(SyncState.kind == kind)
                                 .execution_options(populate_existing=True))
    return state


async def renew(session: AsyncSession, state: SyncState, owner: str, *, lease: timedelta,
                now: datetime | None = None) -> bool:
    """Extend our lease; False when it was lost (we were paused past it and another run took over)."""
    now = now or utcnow()
    result = await session.execute(
        update(SyncState).where(SyncState.kind == state.kind, SyncState.lease_owner == owner)
        .values(lease_until=now + lease).execution_options(synchronize_session=False))
    return result.rowcount == 1


async def release(session: AsyncSession, kind: str, owner: str) -> None:
    await session.execute(update(SyncState).where(SyncState.kind == kind, SyncState.lease_owner == owner)
                          .values(lease_owner="", lease_until=None).execution_options(synchronize_session=False))


async def get(session: AsyncSession, kind: str) -> SyncState | None:
    return await session.get(SyncState, kind)


def record_failures(state: SyncState, failures: list[tuple[str, str]]) -> None:
    """Count every failed contact; keep the first MAX_FAILED_KEPT with their error for the report."""
    if not failures:
        return
    state.failed_count += len(failures)
    room = MAX_FAILED_KEPT - len(state.failed)
    if room > 0:
        state.failed = [*state.failed, *({"id": i, "error": e[:200]} for i, e in failures[:room])]
