"""The two storage backends: a fresh SQLite file, or this process's own PostgreSQL database and Redis db.

Unreachable services skip those tests with the reason, except under CI=true, where they fail the run.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import pytest

PG_ADMIN_URL = os.environ.get("SCRM_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
# Each test process (a run, or each of its pytest-xdist workers) gets its own database, dropped at
# the end, so two runs on one machine never empty each other's tables.
PG_TEST_DB = f"scrm_pytest_{os.getpid()}"
PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_TEST_DB}"

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis has 16 numbered dbs. Db 15 is the connector tests' shared store (keys per corp id, never
# flushed) and holds the claims below; 0-1 are left to the service and the demo. Every test flushes
# its db, so each test process claims one of 2-14 for itself: picked by pid alone, two runs sharing
# the machine landed on the same db now and then and flushed a rep's pending pick list or
# confirmation under each other (test_understanding, test_commands failed "没有待选择的列表").
REDIS_TEST_DBS = range(2, 15)
CLAIMS_DB = 15
CLAIM_SECONDS = 24 * 3600  # a claim left by a killed run is taken over at once (its pid is gone)


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


_redis_url: str | None = None


def redis_url() -> str:
    """This process's Redis db, claimed on first use (not at import: an xdist controller imports
    this module too and never runs a test) and released when the process exits."""
    global _redis_url
    if _redis_url is None:
        _redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{_claim_redis_db()}"
    return _redis_url


def __getattr__(name: str) -> str:
    """`REDIS_URL` reads as the constant it was (tests/service/test_scale_out.py imports it)."""
    if name == "REDIS_URL":
        return redis_url()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Compare-and-set in one step, so two processes taking over the same stale claim cannot both win.
_TAKE_OVER = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) " \
             "return 1 end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _claim_redis_db() -> int:
    import atexit

    import redis

    me = f"{socket.gethostname()}:{os.getpid()}"
    start = os.getpid() % len(REDIS_TEST_DBS)  # spread first tries, so runs seldom contend
    order = [*REDIS_TEST_DBS[start:], *REDIS_TEST_DBS[:start]]
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=CLAIMS_DB, socket_connect_timeout=1)
    try:
        for db in order:
            key = f"scrm:pytest:redis-db:{db}"
            won = bool(client.set(key, me, nx=True, ex=CLAIM_SECONDS))
            if not won:
                owner = client.get(key)
                won = owner is not None and not _alive(owner.decode()) and bool(
                    client.eval(_TAKE_OVER, 1, key, owner, me, CLAIM_SECONDS))
            if won:
                atexit.register(_release, key, me)
                return db
    except (redis.exceptions.ConnectionError, OSError):
        return order[0]  # the tests that need Redis skip (or fail under CI) on require_service
    finally:
        client.close()
    raise RuntimeError(f"Redis dbs {REDIS_TEST_DBS.start}-{REDIS_TEST_DBS.stop - 1} are all claimed by test "
                       f"processes still running (keys scrm:pytest:redis-db:* in db {CLAIMS_DB})")


def _alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's run: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release(key: str, me: str) -> None:
    import redis

    try:
        with redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=CLAIMS_DB, socket_connect_timeout=1) as client:
            client.eval(_RELEASE, 1, key, me)
    except (redis.exceptions.ConnectionError, OSError):
        pass  # a claim whose process is gone is taken over by the next run


_migrated: set[str] = set()  # databases migrated by this process
_tables: list[str] = []  # the test database's tables, read once


async def reset_postgres() -> None:
    """Create and migrate the test database once per process; before each test, empty every table
    and restart every id sequence. DELETE with foreign keys unchecked, not TRUNCATE: TRUNCATE
    gives each of the ~40 tables new files and took 1.1-1.5 s per test on a busy machine, DELETE
    of a test's few rows ~30 ms (and cloning a migrated template database, 0.24 s, would cost more
    than the DELETEs too). Only the tables holding rows and the sequences drawn from are reset, in
    a transaction that does not wait for fsync: 67 ms a test before, 26 ms after a test's write and
    19 ms when nothing was written."""
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
        if not _tables:
            _tables.extend(r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"))
        # Only what the last test touched: a test writes a few of the ~40 tables and draws from a few
        # sequences (pg_sequences.last_value is NULL until a restarted sequence is drawn from again).
        used = await conn.fetch(" UNION ALL ".join(
            f"(SELECT '{t}' AS name FROM \"{t}\" LIMIT 1)" for t in _tables))
        sequences = await conn.fetch(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL")
        if used or sequences:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica;"  # no FK checks while emptying
                                   "SET LOCAL synchronous_commit = off;"  # a throwaway database: no fsync to wait for
                                   + "".join(f'DELETE FROM "{r["name"]}";' for r in used)
                                   + "".join(f'ALTER SEQUENCE "{q["sequencename"]}" RESTART;' for q in sequences))
    finally:
        await conn.close()


async def flush_redis() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        await client.flushdb()
    finally:
        await client.aclose()
