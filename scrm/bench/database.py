"""Bringing a database a benchmark has just filled (or reused) to the state a live one is in."""

from __future__ import annotations

from sqlalchemy import text


async def vacuum_and_analyse(engine) -> None:
    """VACUUM ANALYZE before timing, as autovacuum would have long before a company's first lookup
    of the day. Rows bulk-inserted seconds ago are otherwise vacuumed, analysed and hint-bitted
    beside the timed path (on 2 cores, the first of `scrm bench lookup`'s passes ran 10 ms slower at
    p50), and a database reused across schema migrations (which rewrite rows) times dead rows and
    stale plans. SQLite has no vacuum worth timing around: its statistics are refreshed."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
        else:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
