"""Portable SQL helpers for the two dialects we run on (SQLite ≥ 3.35, PostgreSQL)."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause


async def insert_if_absent(session: AsyncSession, model: type, values: dict[str, Any], conflict: list[str]) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new id, or None when the key exists.

    Letting the unique constraint decide (instead of select-then-insert) is what keeps
    concurrent retries of the same WeCom message from archiving it twice. This runs for every
    archived message and every reply, so the statement is plain SQL that both dialects accept
    and SQLAlchemy compiles once: its dialect-specific `insert().on_conflict_do_nothing()` is
    not cacheable and costs a fresh compile per call.
    """
    table: Table = model.__table__
    row = _with_defaults(table, values)
    stmt = _insert_ignore(table, tuple(row), tuple(conflict))
    return (await session.execute(stmt, row)).scalar_one_or_none()


def _with_defaults(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Fill in the Python-side column defaults that a Core insert would have applied."""
    row = dict(values)
    for column in table.columns:
        if column.name in row or column.default is None or column.primary_key:
            continue
        default = column.default
        if default.is_scalar:
            row[column.name] = default.arg
        elif default.is_callable:
            row[column.name] = default.arg(None)
    return row


@cache
def _insert_ignore(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...]) -> TextClause:
    names = ", ".join(f'"{c}"' for c in columns)
    params = ", ".join(f":{c}" for c in columns)
    target = ", ".join(f'"{c}"' for c in conflict)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({params}) ON CONFLICT ({target}) DO NOTHING RETURNING id'
    return text(sql).bindparams(*(bindparam(c, type_=table.c[c].type) for c in columns))


async def take_turns(session: AsyncSession, key: str) -> None:
    """Wait for, then hold until commit, the turn of the WeCom object `key` names, before reading it.

    Callback handlers read the changed object from WeCom (groupchat/get, externalcontact/get,
    user/get) and store what it says. Two workers handling two changes of one object could read in
    one order and commit in the other, and the older read would win: under load a group's owner
    change was lost behind its rename. Whoever takes the turn second reads after the first
    committed, so the last commit is the newest read. The nightly group sync takes the same turns (it
    reads each group with groupchat/get as a callback does). PostgreSQL: a transaction-scoped
    advisory lock (the object's row may not exist yet). SQLite runs one inbox worker, which already
    handles callbacks in turn, though a nightly sync there may still cross one; a write lock held
    across a WeCom call would hold every callback's ack.
    """
    if session.bind.dialect.name == "postgresql":
        await session.execute(_ADVISORY_LOCK, {"key": key})


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


async def reread_locked(session: AsyncSession, row: Any, attributes: list[str]) -> None:
    """Flush our own changes, then re-read `attributes` of `row` under its row lock.

    The lock is FOR NO KEY UPDATE, not FOR UPDATE: every message archived for a customer holds a
    KEY SHARE lock on the customer row (the foreign key check), and FOR UPDATE waits for those.
    Two workers, each holding its own message's KEY SHARE and asking FOR UPDATE, deadlock; NO KEY
    UPDATE does not conflict with KEY SHARE, so they queue instead. SQLite has no row locks: its
    single writer already serialises this.
    """
    await session.flush()
    await session.refresh(row, attributes, with_for_update={"key_share": True})
