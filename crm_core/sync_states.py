"""Where a long sync from WeCom stands, kept in the database so it survives the process.

One row per kind of sync ("customers", "directory", …): the run's inputs (which reps), its cursor,
its counts, the contacts that failed, and when a run last reached the end (how a fresh install knows
it never synced). Who may run the sync now is not kept here: a sync holds its lease
(crm_core.leases) before it works and renews it in each transaction that writes here, so a second
scheduler (or a CLI run beside the service) finds it taken and does nothing, while a run whose
process died loses the lease and the next one resumes from the kept cursor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, UTCDateTime

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


async def load(session: AsyncSession, kind: str) -> SyncState:
    """`kind`'s row, created (as a sync that never ran) the first time; call it holding the lease."""
    insert = (postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert)(SyncState)
    await session.execute(insert.values(kind=kind, status=DONE, userids=[], failed=[])
                          .on_conflict_do_nothing(index_elements=["kind"]))
    return await session.get(SyncState, kind, populate_existing=True)


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
