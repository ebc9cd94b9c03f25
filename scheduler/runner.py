"""Runs the schedule: at most one run per job per scheduled time, across any number of
scheduler processes, with missed runs of the current local day caught up once after downtime.

Three guards, for three different failures:
- a Redis leader lock keeps every scheduler but one idle (no wasted work);
- the unique (job, scheduled_for) row in `job_runs` makes a second run impossible even if two
  processes both believe they lead (lock expiry during a pause, Redis restart);
- a run lease in Redis, renewed while the job runs, tells a run in progress from one whose
  process died (kill -9, OOM, lost host): a run left `running` with its lease expired is taken
  over and run again by the next leader, instead of being skipped for the rest of the day.
Jobs themselves only write outbox rows with idempotency keys, so a run that crashes half-way
and is re-run sends nothing twice and finishes what the first attempt left undone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.db import utcnow
from crm_core.models import Staff
from crm_core.sql import insert_if_absent
from crm_core.job_runs import JobRun

log = logging.getLogger(__name__)

LEADER_KEY = "scrm:scheduler:leader"
LEADER_TTL_SECONDS = 30
RUN_LEASE_PREFIX = "scrm:scheduler:run:"
RUN_LEASE_SECONDS = 30  # renewed every third of this while the job runs


@dataclass(frozen=True)
class JobContext:
    """What a job may use: a session factory and the moment it runs for (business time zone)."""

    sessions: async_sessionmaker[AsyncSession]
    now: datetime
    timezone: ZoneInfo


JobFunc = Callable[[JobContext], Awaitable[str]]  # returns a one-line summary for logs and `jobs list`
StaffWork = Callable[[AsyncSession, Staff], Awaitable[bool]]  # True when it queued a message
STAFF_PAGE = 200


async def for_each_staff(ctx: JobContext, work: StaffWork, what: str, *, staff_ids: list[int] | None = None,
                         roles: tuple[str, ...] | None = None, recipients: str = "staff") -> str:
    """Run `work` for each active staff member (optionally only `staff_ids` or `roles`), each in a
    transaction of its own, so one person's failure neither blocks nor undoes the others'; returns a
    summary ("N <what>(s) queued for M <recipients>") and raises at the end if any of them failed."""
    queued = seen = after_id = 0
    failed: list[str] = []
    while True:
        async with ctx.sessions() as session:
            stmt = select(Staff).where(Staff.active, Staff.id > after_id).order_by(Staff.id).limit(STAFF_PAGE)
            if staff_ids is not None:
                stmt = stmt.where(Staff.id.in_(staff_ids))
            if roles is not None:
                stmt = stmt.where(Staff.role.in_(roles))
            page = list((await session.scalars(stmt)).all())
        if not page:
            break
        after_id = page[-1].id
        for staff in page:
            seen += 1
            try:
                async with ctx.sessions() as session:
                    queued += int(await work(session, staff))
                    await session.commit()
            except Exception:
                log.exception("%s for %s failed", what, staff.userid)
                failed.append(staff.userid)
    summary = f"{queued} {what}(s) queued for {seen} {recipients}"
    if failed:
        raise RuntimeError(f"{summary}; failed for {', '.join(failed)}")
    return summary


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    cron: str  # crontab fields in the business time zone: minute hour day month day-of-week
    description: str
    run: JobFunc

    def trigger(self, tz: ZoneInfo) -> CronTrigger:
        return CronTrigger.from_crontab(self.cron, timezone=tz)

    def next_run(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        return self.trigger(tz).get_next_fire_time(None, after)

    def last_due(self, now: datetime, tz: ZoneInfo) -> datetime | None:
        """The latest scheduled time ≤ now on the same local day (the catch-up candidate)."""
        local_now = now.astimezone(tz)
        day_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
        trigger, due = self.trigger(tz), None
        fire = trigger.get_next_fire_time(None, day_start)
        while fire is not None and fire <= local_now:
            due = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        return due


class Scheduler:
    def __init__(self, jobs: list[ScheduledJob], sessions: async_sessionmaker[AsyncSession], redis: Redis,
                 timezone: ZoneInfo, *, clock: Callable[[], datetime] = utcnow):
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError("job names must be unique")
        self.jobs = {job.name: job for job in jobs}
        self.sessions, self.redis, self.timezone, self.clock = sessions, redis, timezone, clock
        self.identity = uuid.uuid4().hex
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        """Let the current tick finish, then return from `run_forever`."""
        self.stopping.set()

    async def is_leader(self) -> bool:
        """Take or renew the leader lock; the holder keeps renewing it every tick."""
        if await self.redis.set(LEADER_KEY, self.identity, nx=True, ex=LEADER_TTL_SECONDS):
            return True
        holder = await self.redis.get(LEADER_KEY)
        if holder is not None and holder.decode() == self.identity:
            await self.redis.expire(LEADER_KEY, LEADER_TTL_SECONDS)
            return True
        return False

    async def run_job(self, name: str, scheduled_for: datetime) -> str | None:
        """Run `name` for `scheduled_for` unless that run already happened or is under way in another
        process; returns its summary. A run whose process died is run again (see the module doc)."""
        job = self.jobs[name]
        lease = f"{RUN_LEASE_PREFIX}{name}:{scheduled_for.astimezone(UTC).isoformat()}"
        if not await self.redis.set(lease, self.identity, nx=True, ex=RUN_LEASE_SECONDS):
            log.info("job %s for %s is running in another process; skipping", name, scheduled_for.isoformat())
            return None
        try:
            run_id = await self._claim_run(name, scheduled_for)
            if run_id is None:
                log.info("job %s for %s already ran; skipping", name, scheduled_for.isoformat())
                return None
            renewing = asyncio.create_task(self._keep_lease(lease), name=f"lease {name}")
            try:
                summary = await job.run(JobContext(self.sessions, scheduled_for.astimezone(self.timezone),
                                                   self.timezone))
                status = "done"
            except Exception as exc:
                log.exception("job %s for %s failed", name, scheduled_for.isoformat())
                summary, status = f"{type(exc).__name__}: {exc}", "failed"
            finally:
                renewing.cancel()
            async with self.sessions() as session:
                await session.execute(update(JobRun).where(JobRun.id == run_id).values(
                    status=status, summary=summary[:2000], finished_at=utcnow()))
                await session.commit()
            log.info("job %s for %s %s: %s", name, scheduled_for.isoformat(), status, summary)
            return summary
        finally:
            await self._release(lease)

    async def _claim_run(self, name: str, scheduled_for: datetime) -> int | None:
        """The run row to work under: a new one, or one left `running` by a process that died (we hold
        the run's lease, so nobody is running it now); None when the run finished before."""
        async with self.sessions() as session:
            run_id = await insert_if_absent(
                session, JobRun, {"job": name, "scheduled_for": scheduled_for, "status": "running", "summary": "",
                                  "started_at": utcnow()},
                ["job", "scheduled_for"],
            )
            if run_id is None:
                run_id = (await session.execute(
                    update(JobRun).where(JobRun.job == name, JobRun.scheduled_for == scheduled_for,
                                         JobRun.status == "running")
                    .values(started_at=utcnow()).returning(JobRun.id)
                )).scalar_one_or_none()
                if run_id is not None:
                    log.warning("job %s for %s was left running by a process that stopped; running it again",
                                name, scheduled_for.isoformat())
            await session.commit()
        return run_id

    async def _keep_lease(self, lease: str) -> None:
        """Renew the run's lease while the job runs; a Redis hiccup only costs a renewal."""
        while True:
            await asyncio.sleep(RUN_LEASE_SECONDS / 3)
            try:
                holder = await self.redis.get(lease)
                if holder is None:  # Redis restarted and forgot it: take it back
                    await self.redis.set(lease, self.identity, nx=True, ex=RUN_LEASE_SECONDS)
                elif holder.decode() == self.identity:
                    await self.redis.expire(lease, RUN_LEASE_SECONDS)
                else:  # this process stalled past the lease and another took the run over; jobs are idempotent
                    log.warning("run lease %s was taken over by another scheduler", lease)
            except Exception:
                log.warning("could not renew run lease %s; retrying", lease, exc_info=True)

    async def _release(self, lease: str) -> None:
        try:
            holder = await self.redis.get(lease)
            if holder is not None and holder.decode() == self.identity:
                await self.redis.delete(lease)
        except Exception:
            log.warning("could not release run lease %s; it expires on its own", lease, exc_info=True)

    async def tick(self) -> list[str]:
        """Run every job whose latest due time today has no run yet (on time, or caught up)."""
        if not await self.is_leader():
            return []
        ran = []
        now = self.clock()
        for name, job in self.jobs.items():
            due = job.last_due(now, self.timezone)
            if due is not None and await self.run_job(name, due) is not None:
                ran.append(name)
        return ran

    async def run_forever(self, interval: float = 20.0) -> None:
        """Ticks every `interval` seconds; jobs are minute-grained, so a tick a little late is on time."""
        while not self.stopping.is_set():
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed (database or Redis down?); retrying")
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def last_runs(self) -> dict[str, JobRun]:
        async with self.sessions() as session:
            rows = (await session.scalars(select(JobRun).order_by(JobRun.scheduled_for))).all()
        return {row.job: row for row in rows}
