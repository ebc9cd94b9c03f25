"""Schema migrations (Alembic), callable from the CLI, tests and the demo alike."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@functools.cache
def code_head() -> str:
    """The migration head this code ships. Read once per process (parsing the scripts took about
    50 ms, paid on every start and one-shot command): the scripts do not change under a running process."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision`; creates the SQLite file's folder when needed."""
    if database_url.startswith("sqlite") and ":///" in database_url:
        path = database_url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """Alembic's env runs its own event loop, so from async code run it in a thread."""
    await asyncio.to_thread(upgrade, database_url, revision)


async def refresh_statistics(database_url: str) -> None:
    """After migrating: some migrations rewrite whole tables (0008 every customer), and until
    autovacuum catches up PostgreSQL plans on dead rows and stale statistics (BENCHMARKS.md: the
    morning nudge took 212 s instead of 9.5 s at 1M customers). VACUUM cannot run in a transaction."""
    from sqlalchemy import text

    from crm_core.db import create_engine

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
            else:
                await conn.execute(text("ANALYZE"))
                await conn.commit()
    finally:
        await engine.dispose()
