"""Opening and closing the shared resources: database, Redis (or its in-process stand-in)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from config.settings import Settings
from crm_core.models import Staff
from crm_core.scope import Scope, scope_for
from crm_core.staff import StaffService
from crm_core.migrate import code_head, upgrade_async

log = logging.getLogger(__name__)
T = TypeVar("T")


def open_redis(settings: Settings) -> Redis:
    """Real Redis when SCRM_REDIS_URL is set; otherwise fakeredis, good for one process only."""
    if settings.redis_url:
        return Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
    import fakeredis

    log.info("SCRM_REDIS_URL is unset: using the in-process Redis stand-in (single process only)")
    return fakeredis.FakeAsyncRedis()


class SchemaNotReady(RuntimeError):
    """The database has no schema (`version` None) or an older one than the code's `head`."""

    def __init__(self, version: str | None, head: str):
        super().__init__("The database has no schema yet: run `scrm db upgrade` first" if version is None else
                         f"The database schema is at {version}, the code needs {head}: run `scrm db upgrade`")
        self.version, self.head = version, head


async def prepare_schema(engine: AsyncEngine, settings: Settings) -> None:
    """SQLite (embedded) migrates itself; PostgreSQL must be migrated on purpose, once, by
    `scrm db upgrade`, so several processes never race a migration."""
    if settings.database_url.startswith("sqlite"):
        # A file already at head (every start but the first) is left alone: running alembic to
        # find that out cost a thread, an event loop and a parse of every migration script.
        try:
            await check_schema(engine, settings.database_url)
        except SchemaNotReady:
            await upgrade_async(settings.database_url)
        return
    await check_schema(engine, settings.database_url)


async def check_schema(engine: AsyncEngine, database_url: str) -> None:
    """SchemaNotReady unless the database is at the code's migration head; changes nothing."""
    head = code_head()
    try:
        async with engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception as exc:
        raise SchemaNotReady(None, head) from exc
    if version != head:
        raise SchemaNotReady(version, head)


class CliError(Exception):
    """A one-shot command cannot go on; its message says what to fix (exit status 2)."""


async def with_session(config_path: str | None, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """For one-shot CLI commands: settings, a checked schema, one session for `work`, then close.
    A schema that is missing or behind raises CliError saying to run `scrm db upgrade`."""
    from config.settings import load_settings
    from crm_core.db import create_engine, session_factory

    settings = load_settings(toml_path=config_path)
    engine = create_engine(settings.database_url)
    try:
        try:
            await prepare_schema(engine, settings)
        except RuntimeError as exc:
            raise CliError(str(exc)) from exc
        async with session_factory(engine)() as session:
            return await work(session)
    finally:
        await engine.dispose()


async def scope_as(session: AsyncSession, userid: str | None) -> tuple[Staff | None, Scope]:
    """The data scope a CLI command runs with: `--as USERID`'s (sales: own customers, manager: the
    departments', admin: all), or every customer when no one is named."""
    if not userid:
        return None, Scope(0, None)
    staff = await StaffService(session).get_by_userid(userid)
    if staff is None:
        raise CliError(f"--as {userid}: no staff member has this WeCom userid")
    return staff, await scope_for(session, staff)


async def database_ok(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def redis_ok(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except Exception:
        return False
