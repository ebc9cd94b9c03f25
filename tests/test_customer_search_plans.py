"""Every way a rep looks a customer up is answered from an index, on both databases.

A lookup that scans the customers table costs nothing in a demo and 130 ms at 100,000 customers:
SQLite ran every `name LIKE '张%'` branch as a full scan until its connections read LIKE
case-sensitively (crm_core.db). The plans are read, not timed, so this holds on a busy machine.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from sqlalchemy import event, insert, select, text

from crm_core.db import create_engine, session_factory
from crm_core.migrate import upgrade_async
from crm_core.models import Customer, Staff
from crm_core.search import CustomerSearch
from scrm.bench.lookup import synthetic_customers

CUSTOMERS = 3000


@pytest.fixture
async def filled(backend):
    await upgrade_async(backend.database_url)
    engine = create_engine(backend.database_url)
    sessions = session_factory(engine)
    now = datetime.now(timezone.utc)
    async with sessions() as session:
        rep = Staff(userid="rep", name="销售", role="sales", department_ids=[2])
        session.add(rep)
        await session.flush()
        for batch in synthetic_customers(CUSTOMERS, [rep.id], random.Random(3), now):
            await session.execute(insert(Customer), batch)
        await session.commit()
    async with engine.connect() as conn:  # the planner's statistics, as autovacuum would leave them
        await conn.execute(text("ANALYZE customers"))
        await conn.commit()
    yield engine, sessions
    await engine.dispose()


async def test_every_lookup_branch_reads_an_index(filled, backend):
    engine, sessions = filled
    async with sessions() as session:
        sample = (await session.execute(select(Customer).order_by(Customer.id).limit(1))).scalar_one()
    queries = {"full name": sample.name, "surname": sample.name[0], "company prefix": sample.company[:4],
               "pinyin": sample.name_pinyin, "pinyin prefix": sample.name_pinyin[:3], "initials": sample.name_initials, "phone tail": sample.phone[-4:],
               "phone": sample.phone}

    for kind, query in queries.items():
        statements: list[tuple[str, object]] = []
        record = lambda conn, cursor, statement, parameters, *args: statements.append((statement, parameters))  # noqa: E731
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            async with sessions() as session:
                page = await CustomerSearch(session).find(query)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", record)
        assert page.matches, (kind, query)
        searches = [(statement, parameters) for statement, parameters in statements if "FROM customers" in statement]
        assert searches, kind
        for statement, parameters in searches:
            plan = await _plan(engine, backend.name, statement, parameters)
            if backend.name == "sqlite":
                scans = [line for line in plan if "customers" in line and not line.startswith("SEARCH")]
            else:
                scans = [line for line in plan if "Seq Scan on customers" in line]
            assert not scans, f"{kind} ({query!r}) scans the table:\n" + "\n".join(plan)


async def _plan(engine, dialect: str, statement: str, parameters) -> list[str]:
    async with engine.connect() as conn:
        if dialect == "sqlite":
            rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
            return [row[-1] for row in rows]
        # A 3,000-row table is small enough that PostgreSQL would rightly scan it: forbid that to see
        # whether an index can answer at all, as it must at a million.
        await conn.exec_driver_sql("SET enable_seqscan = off")
        rows = (await conn.exec_driver_sql("EXPLAIN " + statement, parameters)).all()
        return [row[0] for row in rows]
