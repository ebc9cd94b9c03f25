"""Alembic environment: runs migrations over the service's own async engine."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from crm_core import models  # noqa: F401  (registers every table on Base.metadata)
from crm_core import ticket_models  # noqa: F401  (support tickets' tables)
from crm_core import group_models  # noqa: F401  (customer groups' tables)
from crm_core.db import Base, create_engine
from crm_core import job_runs  # noqa: F401
from crm_core import leases  # noqa: F401
from crm_core import corp_tags, sync_states  # noqa: F401  (corp tag catalogue, sync progress)
from crm_core import targets  # noqa: F401  (sales targets)

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
