"""The one retry protocol (scrm.retries): each kind of failure gets its one answer."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest
import redis.asyncio
import sqlalchemy.exc
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.wecom.chat_archive import ArchiveKeyError
from connectors.wecom.errors import WeComUnavailableError, error_for
from crm_core.db import create_engine, session_factory, utcnow
from crm_core.migrate import upgrade_async
from crm_core.models import InboxItem
from scrm import retries
from scrm.bench.processes import free_port
from scrm.delivery.send_limits import DeferredSend
from scrm.ingest.webhook import InvalidWebhookItemError
from scrm.retries import backoff, decide


def test_not_yet_waits_as_long_as_asked_without_using_an_attempt():
    retry = decide(DeferredSend("member limit reached", 42.0), failures=1)
    assert (retry.after, retry.uses_attempt, retry.expected) == (42.0, False, True)


@pytest.mark.parametrize("error", [InvalidWebhookItemError("unreadable"), ArchiveKeyError("no key for version 2"),
                                   error_for(40001, "invalid credential", "message/send"),
                                   error_for(60111, "userid not found", "message/send")])
def test_what_retrying_cannot_fix_gives_up_at_once(error):
    retry = decide(error, failures=1)
    assert retry.gives_up and retry.uses_attempt and retry.expected


def test_wecom_throttling_waits_wecoms_interval_spread_a_little_and_uses_an_attempt():
    retry = decide(error_for(45009, "api freq out of limit", "message/send"), failures=3)
    assert 60.0 <= retry.after <= 75.0 and retry.uses_attempt and retry.expected


def test_wecom_unreachable_backs_off_and_an_unexpected_error_is_logged_with_its_traceback():
    assert decide(error_for(-2, "timeout", "message/send"), failures=3).after == 4.0
    unexpected = decide(KeyError("touser"), failures=2)
    assert (unexpected.after, unexpected.uses_attempt, unexpected.expected) == (2.0, True, False)


def test_backoff_doubles_up_to_its_cap():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(30) == 300.0 and backoff(30, cap=60.0) == 60.0


# -- outages: the errors a dropped or failed-over connection really raises ---------------------------

async def _terminate_others(database_url: str) -> None:
    """What a failover (or an administrator) does to every connection of ours: pg_terminate_backend."""
    admin = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await admin.close()


async def _running(database_url: str, query: str, task: asyncio.Task) -> None:
    """Until the server is executing `query` (so it is cut off mid-run, not before it was sent)."""
    admin = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        while not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1",
                                       query):
            assert not task.done(), "the query ended before it was seen running"
    finally:
        await admin.close()


async def _raised(call) -> BaseException:
    try:
        await call()
    except Exception as exc:  # noqa: BLE001 - the point is to see what it raises
        return exc
    raise AssertionError("nothing was raised")


@pytest.fixture
async def sessions(backend):
    await upgrade_async(backend.database_url)
    engine = create_engine(backend.database_url)
    yield backend, session_factory(engine)
    await engine.dispose()


async def test_a_connection_terminated_mid_transaction_is_an_outage_at_every_step(sessions):
    backend, make_session = sessions
    if backend.name == "sqlite":
        pytest.skip("SQLite has no server to drop the connection")
    async with make_session() as session:
        await session.execute(text("SELECT 1"))
        await _terminate_others(backend.database_url)
        first = await _raised(lambda: session.execute(text("SELECT 2")))  # the driver finds the socket closed
        again = await _raised(lambda: session.execute(text("SELECT 3")))  # the same session used once more
        commit = await _raised(session.commit)
    assert isinstance(again, sqlalchemy.exc.PendingRollbackError)
    assert [retries.is_outage(e) for e in (first, again, commit)] == [True, True, True]
    assert not decide(again, failures=1).uses_attempt

    async with make_session() as session:
        await session.execute(text("SELECT 1"))
        query = asyncio.create_task(session.execute(text("SELECT pg_sleep(5)")))
        await _running(backend.database_url, "SELECT pg_sleep(5)", query)
        await _terminate_others(backend.database_url)
        during = await _raised(lambda: query)
    assert retries.is_outage(during), repr(during)

    async with make_session() as session:  # a pooled connection killed while idle: the pre-ping replaces it
        assert (await session.execute(text("SELECT 1"))).scalar() == 1


async def test_a_read_only_server_and_a_refused_connection_are_outages(sessions):
    backend, make_session = sessions
    if backend.name == "sqlite":
        pytest.skip("SQLite has no server to fail over")
    async with make_session() as session:  # the old primary, demoted to a standby, refuses writes
        await session.execute(text("SET TRANSACTION READ ONLY"))
        read_only = await _raised(lambda: session.execute(insert(InboxItem).values(
            dedup_key="ro", source="test", payload="", status="pending", received_at=utcnow(), available_at=utcnow())))
    assert retries.is_outage(read_only), repr(read_only)
    refused = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere")
    try:
        async with session_factory(refused)() as session:
            assert retries.is_outage(await _raised(lambda: session.execute(text("SELECT 1"))))
    finally:
        await refused.dispose()


async def test_a_locked_closed_or_unreachable_sqlite_file_is_an_outage(tmp_path):
    path = tmp_path / "scrm.sqlite3"
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0.05})  # gives up at once
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        holder = sqlite3.connect(path)  # another process (a backup, a migration) holds the write lock
        holder.execute("BEGIN IMMEDIATE")
        try:
            async with engine.begin() as conn:
                locked = await _raised(lambda: conn.execute(text("INSERT INTO t DEFAULT VALUES")))
        finally:
            holder.rollback()
            holder.close()
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.close()  # the connection gone underneath
            closed = await _raised(lambda: conn.execute(text("SELECT 1")))
    finally:
        await engine.dispose()
    unreachable = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'scrm.sqlite3'}")
    try:
        async with unreachable.connect() as conn:
            cannot_open = await _raised(lambda: conn.execute(text("SELECT 1")))
    except Exception as exc:  # noqa: BLE001 - raised on connect
        cannot_open = exc
    finally:
        await unreachable.dispose()
    assert [retries.is_outage(e) for e in (locked, closed, cannot_open)] == [True, True, True]


async def test_redis_refusing_connections_is_an_outage():
    client = redis.asyncio.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    try:
        assert retries.is_outage(await _raised(client.ping))
    finally:
        await client.aclose()


async def test_the_rows_own_database_errors_and_wecom_being_unreachable_are_not_outages(sessions):
    backend, make_session = sessions
    row = dict(dedup_key="twice", source="test", payload="", status="pending", received_at=utcnow(),
               available_at=utcnow())
    async with make_session() as session:
        await session.execute(insert(InboxItem).values(**row))
        await session.commit()
        duplicate = await _raised(lambda: session.execute(insert(InboxItem).values(**row)))
    async with make_session() as session:
        session.add(InboxItem(**row))
        flush_failed = await _raised(session.flush)
        after_failed_flush = await _raised(lambda: session.execute(text("SELECT 1")))
    assert isinstance(duplicate, sqlalchemy.exc.IntegrityError)
    assert isinstance(after_failed_flush, sqlalchemy.exc.PendingRollbackError)
    assert [retries.is_outage(e) for e in (duplicate, flush_failed, after_failed_flush)] == [False, False, False]
    try:
        raise WeComUnavailableError("Cannot connect to host", "message/send") from ConnectionRefusedError(111, "refused")
    except WeComUnavailableError as wecom_down:
        assert not retries.is_outage(wecom_down) and decide(wecom_down, failures=1).uses_attempt
