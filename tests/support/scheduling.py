"""What the scheduler's tests share: a clock they set, a job that records when it ran, and the
database plus two Redis clients (two processes' worth) the `env` fixture hands them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import fakeredis
import redis.asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.db import create_engine, session_factory
from crm_core.migrate import upgrade_async
from scheduler.runner import LEADER_KEY, JobContext, ScheduledJob
from tests.support.backends import Backend


class JobClock:
    """"Now" for a scheduler or job, moved by the test (`clock.at = …`) instead of waiting."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def morning_job(calls: list) -> ScheduledJob:
    """A 09:00 job that records each moment it ran."""
    async def run(ctx: JobContext) -> str:
        calls.append(ctx.now)
        await asyncio.sleep(0)
        return f"greeted at {ctx.now:%H:%M}"

    return ScheduledJob("greetings", "0 9 * * *", "每天 9:00 问候", run)


@asynccontextmanager
async def job_env(backend: Backend) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], list]]:
    """A migrated database and two Redis clients on one server, as two scheduler processes see them
    (real Redis on the postgres backend, a shared fakeredis server on sqlite); no leader yet."""
    await upgrade_async(backend.database_url)
    engine = create_engine(backend.database_url)
    if backend.redis_url:
        shared = [redis.asyncio.Redis.from_url(backend.redis_url) for _ in range(2)]
    else:
        server = fakeredis.FakeServer()
        shared = [fakeredis.FakeAsyncRedis(server=server) for _ in range(2)]
    await shared[0].delete(LEADER_KEY)
    try:
        yield session_factory(engine), shared
    finally:
        for client in shared:
            await client.aclose()
        await engine.dispose()
