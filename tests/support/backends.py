"""The two storage backends: a fresh SQLite file, or this run's own PostgreSQL database and Redis db.

Unreachable services skip those tests with the reason, except under CI=true, where they fail the run.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import pytest

PG_ADMIN_URL = os.environ.get("SCRM_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
# Each test run gets its own database (dropped at the end) and, as far as 14 numbers allow, its
# own Redis db, so two runs on one machine never truncate each other's tables. Dbs 2-14: db 15 is
# the connector tests' shared store (keys per corp id, never flushed), which a run landing on it
# flushed under them (a second gettoken in test_fifty_concurrent_calls_cause_one_gettoken).
PG_TEST_DB = f"scrm_pytest_{os.getpid()}"
PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_TEST_DB}"
REDIS_URL = f"redis://127.0.0.1:6379/{2 + os.getpid() % 13}"


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str
    redis_url: str | None


def require_service(name: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        message = f"{name} at {host}:{port} is unreachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}; start it (see .ci/run)")
        pytest.skip(message)


_migrated: set[str] = set()  # databases migrated by this run


async def reset_postgres() -> None:
    """Create and migrate the test database once per run; before each test, empty every table
    and restart every id sequence. DELETE with foreign keys unchecked, not TRUNCATE: TRUNCATE
    gives each of the ~30 tables new files and took 1.1-1.5 s per test on a busy machine, DELETE
    of a test's few rows ~30 ms."""
    import asyncpg

    from crm_core.migrate import upgrade_async

    if PG_URL not in _migrated:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_TEST_DB)
            if not exists:
                await admin.execute(f'CREATE DATABASE "{PG_TEST_DB}"')
        finally:
            await admin.close()
        await upgrade_async(PG_URL)
        _migrated.add(PG_URL)
    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
        sequences = await conn.fetch("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica;"  # no FK checks while emptying
                               + "".join(f'DELETE FROM "{t["tablename"]}";' for t in tables)
                               + "".join(f'ALTER SEQUENCE "{q["sequencename"]}" RESTART;' for q in sequences))
    finally:
        await conn.close()


async def flush_redis() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
