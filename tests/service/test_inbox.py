"""The inbox stores callbacks in the order they arrived, once per key: workers take them in id order,
so a rep's `查 张三` and the `2` right after it must not swap places inside one group commit."""

from __future__ import annotations

from sqlalchemy import select

from crm_core.db import create_engine, session_factory
from crm_core.inbox import InboundItem, InboxService
from crm_core.migrate import upgrade_async
from crm_core.models import InboxItem


async def test_staged_rows_keep_arrival_order_and_the_first_of_a_key_wins(backend):
    await upgrade_async(backend.database_url)
    engine = create_engine(backend.database_url)
    try:
        async with session_factory(engine)() as session:
            inbox = InboxService(session)
            created = await inbox.stage_many([InboundItem(key, "test", payload) for key, payload in
                                              [("b", "查 张三"), ("a", "x"), ("b", "retry"), ("c", "2")]])
            again = await inbox.stage_many([InboundItem("a", "test", "late retry"), InboundItem("d", "test", "y")])
            await session.commit()
            rows = (await session.execute(select(InboxItem.dedup_key, InboxItem.payload).order_by(InboxItem.id))).all()
    finally:
        await engine.dispose()
    assert created == {"a", "b", "c"} and again == {"d"}
    assert [tuple(row) for row in rows] == [("b", "查 张三"), ("a", "x"), ("c", "2"), ("d", "y")]
