"""The scheduler mechanism: once per scheduled time across processes, catch-up after downtime
on the same local day only, the leader lock, and a failing job recorded without stopping others."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from crm_core.job_runs import JobRun
from scheduler.runner import LEADER_KEY, JobContext, ScheduledJob, Scheduler
from tests.support.chat import SHANGHAI
from tests.support.scheduling import JobClock, morning_job

TZ = SHANGHAI


async def runs(sessions) -> list[JobRun]:
    async with sessions() as session:
        return list((await session.scalars(select(JobRun).order_by(JobRun.id))).all())


async def test_two_schedulers_run_each_tick_exactly_once(env):
    sessions, (redis_a, redis_b) = env
    calls: list = []
    clock = JobClock(datetime(2026, 11, 23, 1, 0, 5, tzinfo=timezone.utc))  # 09:00:05 in Shanghai
    a = Scheduler([morning_job(calls)], sessions, redis_a, TZ, clock=clock)
    b = Scheduler([morning_job(calls)], sessions, redis_b, TZ, clock=clock)
    ran = await asyncio.gather(a.tick(), b.tick(), a.tick(), b.tick())
    assert sum(len(r) for r in ran) == 1
    assert [c.isoformat() for c in calls] == ["2026-11-23T09:00:00+08:00"]
    # Even a second leader (lock lost, e.g. Redis restarted) cannot run the same tick again.
    await redis_a.delete(LEADER_KEY)
    assert await b.tick() == []
    [run] = await runs(sessions)
    assert run.status == "done" and run.summary == "greeted at 09:00"


async def test_missed_run_is_caught_up_once_on_the_same_day_only(env):
    sessions, (redis_a, _) = env
    calls: list = []
    # The service was down at 09:00 and comes back at 15:30 the same day: one catch-up run.
    clock = JobClock(datetime(2026, 11, 23, 7, 30, tzinfo=timezone.utc))
    scheduler = Scheduler([morning_job(calls)], sessions, redis_a, TZ, clock=clock)
    assert await scheduler.tick() == ["greetings"]
    assert await scheduler.tick() == []
    # Back at 08:00 the next day, before the 09:00 slot: yesterday's run is not repeated.
    clock.at = datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)
    assert await scheduler.tick() == []
    assert len(calls) == 1


async def test_a_failing_job_is_recorded_and_the_others_still_run(env):
    sessions, (redis_a, _) = env
    calls: list = []

    async def broken(ctx: JobContext) -> str:
        raise RuntimeError("template missing")

    clock = JobClock(datetime(2026, 11, 23, 1, 1, tzinfo=timezone.utc))
    scheduler = Scheduler([ScheduledJob("broken", "0 9 * * *", "坏的任务", broken), morning_job(calls)],
                          sessions, redis_a, TZ, clock=clock)
    assert await scheduler.tick() == ["broken", "greetings"]
    failed, done = await runs(sessions)
    assert failed.status == "failed" and "template missing" in failed.summary
    assert done.status == "done" and len(calls) == 1


def test_job_names_must_be_unique():
    async def noop(ctx):
        return ""

    with pytest.raises(ValueError):
        Scheduler([ScheduledJob("a", "* * * * *", "", noop)] * 2, None, None, TZ)
