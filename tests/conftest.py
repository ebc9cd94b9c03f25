"""Shared fixtures: the two storage backends every service test runs on.

`sqlite`: a fresh SQLite file and the in-process Redis stand-in (the embedded quickstart).
`postgres`: the PostgreSQL and Redis services on 127.0.0.1 (production shape). Unreachable
services skip those tests with the reason, except under CI=true, where they fail the run.

Every SQLite connection a test opens returns the rows of a SELECT without ORDER BY in reverse
(`PRAGMA reverse_unordered_selects`): code or a test relying on an order nobody asked for then fails
on every run, instead of on the odd PostgreSQL run where a plan or a concurrent worker changed it.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

PG_ADMIN_URL = os.environ.get("SCRM_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
# Each test run gets its own database (dropped at the end) and, as far as 14 numbers allow, its
# own Redis db, so two runs on one machine never truncate each other's tables.
PG_TEST_DB = f"scrm_pytest_{os.getpid()}"
PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_TEST_DB}"
REDIS_URL = f"redis://127.0.0.1:6379/{2 + os.getpid() % 14}"


@event.listens_for(Engine, "connect")
def _reverse_unordered_selects(dbapi_connection, _record) -> None:
    if "sqlite" in type(dbapi_connection).__module__:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA reverse_unordered_selects = ON")
        cursor.close()


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


async def _reset_postgres() -> None:
    """Create the test database once, migrate it, and empty every table before each test."""
    import asyncpg

    from crm_core.migrate import upgrade_async

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_TEST_DB)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{PG_TEST_DB}"')
    finally:
        await admin.close()
    await upgrade_async(PG_URL)
    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{t["tablename"]}"' for t in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


async def _flush_redis() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture(scope="session", autouse=True)
def drop_test_database():
    """Remove this run's PostgreSQL database once every test is done."""
    yield

    async def drop() -> None:
        import asyncpg

        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)')
        finally:
            await admin.close()

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError:
        return
    asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'scrm.sqlite3'}", None)
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    await asyncio.gather(_reset_postgres(), _flush_redis())
    return Backend("postgres", PG_URL, REDIS_URL)
