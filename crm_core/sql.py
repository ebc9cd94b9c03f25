"""Portable SQL helpers for the two dialects we run on (SQLite, PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_if_absent(session: AsyncSession, model: type, values: dict[str, Any], conflict: list[str]) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new id, or None when the key exists.

    Letting the unique constraint decide (instead of select-then-insert) is what keeps
    concurrent retries of the same WeCom message from archiving it twice.
    """
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=conflict).returning(model.id)
    return (await session.execute(stmt)).scalar_one_or_none()
