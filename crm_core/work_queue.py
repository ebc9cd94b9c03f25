"""One leasing mechanism for both durable queues (inbox and outbox).

A row is claimable when it is `pending`, or `processing` with an expired lease, and its
`available_at` has come; due rows are claimed in that order (arrival order for new rows). A
partial index holds only active rows, so a claim costs the same beside ten done rows or ten
million. Claiming is a single UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING,
so any number of workers (processes or tasks) share a queue without taking the same row twice;
on SQLite the single statement is atomic on its own. A worker that dies leaves its lease to
expire and the row is claimed again; the unique keys downstream make the second run harmless.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.models import QUEUE_ACTIVE, InboxItem, OutboxItem

QueueRow = TypeVar("QueueRow", InboxItem, OutboxItem)


async def claim(
    session: AsyncSession,
    model: type[QueueRow],
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    now: datetime | None = None,
) -> list[QueueRow]:
    """Lease up to `limit` due rows to `worker_id`, oldest first, and commit the lease."""
    now = now or utcnow()
    candidates = (
        select(model.id)
        .where(QUEUE_ACTIVE, model.available_at <= now)
        .order_by(model.available_at, model.id)  # the partial index ix_*_due: reads due rows only
        .limit(limit)
    )
    if session.bind.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(model)
        .where(model.id.in_(candidates.scalar_subquery()))
        .values(
            status="processing",
            locked_by=worker_id,
            attempts=model.attempts + 1,
            available_at=now + timedelta(seconds=lease_seconds),
        )
        .returning(model)
        .execution_options(synchronize_session=False)
    )
    rows = list((await session.scalars(stmt)).all())
    await session.commit()
    rows.sort(key=lambda row: row.id)
    return rows


async def extend(session: AsyncSession, model: type[QueueRow], ids: list[int], worker_id: str, *,
                 lease_seconds: float, now: datetime | None = None) -> int:
    """Push the lease of `worker_id`'s unfinished rows among `ids` out again; returns how many."""
    result = await session.execute(
        update(model).where(model.id.in_(ids), model.locked_by == worker_id, model.status == "processing")
        .values(available_at=(now or utcnow()) + timedelta(seconds=lease_seconds)))
    await session.commit()
    return result.rowcount


def still_mine(model: type[QueueRow], row_id: int, worker_id: str):
    """Guard for the finishing UPDATE: only the current lease holder may finish a row."""
    return and_(model.id == row_id, model.locked_by == worker_id, model.status == "processing")


async def finish(session: AsyncSession, model: type[QueueRow], row_id: int, worker_id: str, **values) -> bool:
    """Mark a leased row done/sent inside the caller's transaction; False if the lease was lost."""
    result = await session.execute(update(model).where(still_mine(model, row_id, worker_id)).values(**values))
    return result.rowcount == 1


async def finish_many(session: AsyncSession, model: type[QueueRow], worker_id: str,
                      finished: list[tuple[int, dict]]) -> bool:
    """Mark several leased rows finished inside the caller's transaction, each with its own values;
    False (nothing changed) unless every one of them is still this worker's.

    The lease check locks the rows on PostgreSQL, so none can change hands before the commit."""
    ids = [row_id for row_id, _ in finished]
    mine = select(model.id).where(model.id.in_(ids), model.locked_by == worker_id, model.status == "processing")
    if session.bind.dialect.name == "postgresql":
        mine = mine.with_for_update()
    if len(set((await session.scalars(mine)).all())) != len(set(ids)):
        return False
    by_columns: dict[tuple[str, ...], list[dict]] = {}
    for row_id, values in finished:
        by_columns.setdefault(tuple(sorted(values)), []).append({"row_id": row_id, **values})
    table = model.__table__
    by_id = update(table).where(table.c.id == bindparam("row_id"))  # Core: no ORM bookkeeping per row
    for rows in by_columns.values():
        await session.execute(by_id, rows)  # one executemany per column set
    return True


async def fail(
    session: AsyncSession,
    model: type[QueueRow],
    row_id: int,
    worker_id: str,
    *,
    error: str,
    max_attempts: int,
    retry_in: float,
    now: datetime | None = None,
) -> str:
    """Record a failed attempt: due again in `retry_in` seconds, or parked once attempts are used up
    (the caller's retry protocol picks both: scrm.retries).

    Returns the new status. Parked rows keep their error for an operator to read and retry.
    """
    now = now or utcnow()
    row = await session.get(model, row_id, with_for_update=session.bind.dialect.name == "postgresql")
    if row is None or row.locked_by != worker_id or row.status != "processing":
        await session.rollback()
        return "lost"
    row.last_error = error[:4000]
    if row.attempts >= max_attempts:
        row.status = "parked"
    else:
        row.status = "pending"
        row.available_at = now + timedelta(seconds=retry_in)
    row.locked_by = ""
    await session.commit()
    return row.status


async def defer(session: AsyncSession, model: type[QueueRow], row_id: int, worker_id: str, *, retry_in: float,
                reason: str, now: datetime | None = None) -> bool:
    """Put a leased row back for later without using up an attempt: the work was not tried (a rate
    limit said not yet), so it must not count towards parking the row."""
    now = now or utcnow()
    result = await session.execute(
        update(model).where(still_mine(model, row_id, worker_id)).values(
            status="pending", locked_by="", attempts=model.attempts - 1, last_error=reason[:4000],
            available_at=now + timedelta(seconds=retry_in)))
    await session.commit()
    return result.rowcount == 1


async def release(session: AsyncSession, model: type[QueueRow], worker_id: str, *, now: datetime | None = None) -> int:
    """Hand back every row still leased to `worker_id` (work it could not finish or record when its
    connection failed), due now and without using up the attempt. Returns how many."""
    result = await session.execute(
        update(model).where(model.locked_by == worker_id, model.status == "processing").values(
            status="pending", locked_by="", attempts=model.attempts - 1, available_at=now or utcnow()))
    await session.commit()
    return result.rowcount


async def requeue(session: AsyncSession, model: type[QueueRow], row_id: int) -> bool:
    """Give a parked row a fresh set of attempts (operator action)."""
    result = await session.execute(
        update(model)
        .where(model.id == row_id, model.status == "parked")
        .values(status="pending", attempts=0, available_at=utcnow(), last_error="")
    )
    await session.commit()
    return result.rowcount == 1

