"""A claim reads the rows still owed work, not the history: its cost must not grow with the archive.

Before the partial index, PostgreSQL found the first due inbox row by walking the primary key past
every finished one (139 ms per claim beside 216,000 done rows), so every worker slowed down as
the archive grew.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, text, update

from crm_core import work_queue
from crm_core.db import create_engine, session_factory
from crm_core.inbox import InboundItem, InboxService
from crm_core.migrate import upgrade_async
from crm_core.models import InboxItem, OutboxItem

DONE, DUE = 5000, 2000  # a backlog: enough due rows that sorting them all would be the slow plan


@pytest.fixture
async def engine(backend):
    await upgrade_async(backend.database_url)
    engine = create_engine(backend.database_url)
    yield engine
    await engine.dispose()


async def test_a_claim_reads_only_due_rows_in_arrival_order(engine, backend):
    sessions = session_factory(engine)
    async with sessions() as session:
        await InboxService(session).stage_many([InboundItem(f"k{i}", "test", "") for i in range(DONE + DUE)])
        await session.execute(update(InboxItem).where(InboxItem.id <= DONE).values(status="done"))
        await session.commit()
    async with engine.connect() as conn:  # the planner's statistics, as autovacuum would leave them
        await conn.execute(text("ANALYZE inbox_items"))
        await conn.commit()

    statements: list[tuple[str, object]] = []
    record = lambda conn, cursor, statement, parameters, *args: statements.append((statement, parameters))  # noqa: E731
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with sessions() as session:
            claimed = await work_queue.claim(session, InboxItem, worker_id="w1", limit=4, lease_seconds=60)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)

    assert [row.dedup_key for row in claimed] == [f"k{i}" for i in range(DONE, DONE + 4)]
    statement, parameters = next((s, p) for s, p in statements if s.lstrip().startswith("UPDATE"))
    explain = "EXPLAIN QUERY PLAN " if backend.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as conn:
        plan = "\n".join(str(row) for row in (await conn.exec_driver_sql(explain + statement, parameters)).all())
    assert "ix_inbox_due" in plan, plan


def test_both_queues_have_the_due_index():
    for model, name in ((InboxItem, "ix_inbox_due"), (OutboxItem, "ix_outbox_due")):
        [index] = [index for index in model.__table__.indexes if index.name == name]
        assert [column.name for column in index.columns] == ["available_at", "id"]
