"""The schedule: every timed job, when it runs (business time zone) and what it is for.

A job only decides what is owed and writes outbox rows with idempotency keys; delivery, retries
and WeCom's limits are the sender's business. Each entry's description is what `scrm jobs list`
shows an operator.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import delete, select

from config.settings import Settings
from config.templates import render
from crm_core.models import FollowUp, Staff
from crm_core.outbox import OutboxService
from crm_core.ticket_policy import TicketPolicy, default_policy, load_ticket_policy
from crm_core.tickets import TicketService
from scheduler import care, digests, forecast_jobs, leads, nudges
from crm_core.job_runs import JobRun
from scheduler.runner import JobContext, JobFunc, ScheduledJob

SCHEDULE_FILE = Path(__file__).resolve().parent.parent / "config" / "schedule.toml"
REMINDER_BATCH = 500
KEEP_JOB_RUNS = timedelta(days=30)


async def remind_due_followups(ctx: JobContext) -> str:
    """A reminder to the rep at the moment a follow-up falls due, once."""
    sent = 0
    while True:
        async with ctx.sessions() as session:
            due = (await session.scalars(
                select(FollowUp)
                .where(FollowUp.status == "open", FollowUp.reminded_at.is_(None), FollowUp.due_at <= ctx.now)
                .order_by(FollowUp.due_at)
                .limit(REMINDER_BATCH)
            )).all()
            if not due:
                return f"{sent} follow-up reminder(s) queued"
            owners = {s.id: s for s in (await session.scalars(
                select(Staff).where(Staff.id.in_({f.owner_id for f in due}))
            )).all()}
            outbox = OutboxService(session)
            for followup in due:
                owner = owners[followup.owner_id]
                content = render(
                    "reminders.followup_due",
                    customer=followup.customer.name or followup.customer.remark,
                    due=f"{followup.due_at.astimezone(ctx.timezone):%m-%d %H:%M}",
                    text=followup.text or render("reminders.followup_no_text"),
                )
                await outbox.enqueue(
                    idempotency_key=f"followup:{followup.id}:due",
                    kind="app_message",
                    payload={"touser": owner.userid, "msgtype": "text", "text": {"content": content}},
                    customer_id=followup.customer_id,
                    staff_id=owner.id,
                )
                followup.reminded_at = ctx.now
            await session.commit()
            sent += len(due)


async def escalate_ticket_slas(ctx: JobContext, policy: TicketPolicy | None = None) -> str:
    """Tell the agent, then the manager, about tickets past their SLA (each notice once)."""
    async with ctx.sessions() as session:
        notices = await TicketService(session, policy or default_policy(), ctx.timezone).escalate_sla_breaches(ctx.now)
        await session.commit()
    return f"{notices} SLA escalation(s) queued"


async def prune_job_runs(ctx: JobContext) -> str:
    """Forget run records older than 30 days; they only guard against running a tick twice."""
    async with ctx.sessions() as session:
        result = await session.execute(delete(JobRun).where(JobRun.scheduled_for < ctx.now - KEEP_JOB_RUNS))
        await session.commit()
    return f"{result.rowcount} old run record(s) removed"


JOB_FUNCTIONS: dict[str, JobFunc] = {
    "followups.remind": remind_due_followups,
    "tickets.sla_escalations": escalate_ticket_slas,
    "scheduler.prune_runs": prune_job_runs,
    **care.JOBS,
    **nudges.JOBS,
    **leads.JOBS,
    **forecast_jobs.JOBS,
    **digests.JOBS,
}


# Jobs that need what only the service has (the WeCom client): scrm builds them and passes them
# to `build_jobs` as `extra`, so the scheduler package itself never talks to WeCom.
SERVICE_JOB_NAMES = frozenset({"care.group_send_sync", "directory.sync", "customers.sync", "handovers.follow_results",
                               "groups.sync"})


def load_schedule(path: Path = SCHEDULE_FILE) -> list[dict[str, str]]:
    """The `[[job]]` entries of config/schedule.toml, checked: known names, no repeats, valid cron."""
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get("job", [])
    known = set(JOB_FUNCTIONS) | SERVICE_JOB_NAMES
    problems, seen = [], set()
    for entry in entries:
        name = entry.get("name", "")
        if name not in known:
            problems.append(f"{path.name}: no job called {name!r} (known: {', '.join(sorted(known))})")
        if name in seen:
            problems.append(f"{path.name}: job {name!r} is scheduled twice")
        seen.add(name)
        try:
            CronTrigger.from_crontab(entry.get("cron", ""))
        except ValueError as exc:
            problems.append(f"{path.name}: job {name!r} has an invalid cron {entry.get('cron')!r}: {exc}")
        if not entry.get("description"):
            problems.append(f"{path.name}: job {name!r} needs a description")
    if problems:
        raise ValueError("\n".join(problems))
    return entries


def build_jobs(settings: Settings, extra: dict[str, JobFunc] | None = None) -> list[ScheduledJob]:
    """The scheduled jobs; `extra` supplies the SERVICE_JOB_NAMES jobs (left out when not given)."""
    unknown = set(extra or {}) - SERVICE_JOB_NAMES
    if unknown:
        raise ValueError(f"extra jobs must be listed in SERVICE_JOB_NAMES: {', '.join(sorted(unknown))}")
    policy = load_ticket_policy(settings.ticket_routing_file)

    async def escalate_with_routing(ctx: JobContext) -> str:
        return await escalate_ticket_slas(ctx, policy)

    functions = {**JOB_FUNCTIONS, "tickets.sla_escalations": escalate_with_routing,
                 "digests.weekly": digests.weekly_digests_job(settings.pages.base_url), **(extra or {})}
    return [ScheduledJob(entry["name"], entry["cron"], entry["description"], functions[entry["name"]])
            for entry in load_schedule() if entry["name"] in functions]
