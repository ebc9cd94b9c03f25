"""The schedule table is valid, and the follow-up reminder job sends each reminder once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from config.settings import Settings
from crm_core.models import Customer, FollowUp, OutboxItem, Staff
from scheduler.jobs import JOB_FUNCTIONS, SERVICE_JOB_NAMES, build_jobs, load_schedule, remind_due_followups
from scheduler.runner import JobContext
from tests.support.chat import SHANGHAI as TZ


def test_schedule_table_is_valid_and_schedules_every_job():
    async def service_job(ctx):
        return ""

    jobs = build_jobs(Settings(), {name: service_job for name in SERVICE_JOB_NAMES})
    assert {j.name for j in jobs} == set(JOB_FUNCTIONS) | SERVICE_JOB_NAMES  # every job is scheduled, once
    for job in jobs:
        CronTrigger.from_crontab(job.cron, timezone=TZ)  # raises on a bad expression
        assert job.description and job.description.isascii()


def test_a_bad_schedule_entry_is_refused_with_the_reason(tmp_path):
    bad = tmp_path / "schedule.toml"
    bad.write_text('[[job]]\nname = "birthdays"\ncron = "61 9 * * *"\ndescription = ""\n', encoding="utf-8")
    with pytest.raises(ValueError) as refused:
        load_schedule(bad)
    message = str(refused.value)
    assert "no job called 'birthdays'" in message and "invalid cron" in message and "needs a description" in message


async def test_due_followups_are_reminded_exactly_once(env):  # noqa: F811
    sessions, _ = env
    now = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
    async with sessions() as session:
        rep = Staff(userid="zhangwei", name="张伟")
        customer = Customer(name="赵磊", company="华东精密")
        session.add_all([rep, customer])
        await session.flush()
        session.add_all([
            FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=now - timedelta(minutes=1), text="带方案上门"),
            FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=now + timedelta(hours=1), text="later"),
        ])
        await session.commit()
    ctx = JobContext(sessions, now.astimezone(TZ), TZ)
    assert await remind_due_followups(ctx) == "1 follow-up reminder(s) queued"
    assert await remind_due_followups(ctx) == "0 follow-up reminder(s) queued"
    async with sessions() as session:
        [row] = (await session.scalars(select(OutboxItem))).all()
    assert row.payload["touser"] == "zhangwei"
    assert "赵磊" in row.payload["text"]["content"] and "14:59" in row.payload["text"]["content"]
    assert "带方案上门" in row.payload["text"]["content"]
