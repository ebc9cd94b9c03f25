"""The schedule: every timed job, when it runs (business time zone) and what it is for.

A job only decides what is owed and writes outbox rows with idempotency keys; delivery, retries
and WeCom's limits are the sender's business. Each entry's description is what `scrm jobs list`
shows an operator.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from config.settings import Settings
from config.templates import render
from crm_core.models import FollowUp, Staff
from crm_core.outbox import OutboxService
from crm_core.tickets import TicketService, default_policy
from scheduler.models import JobRun
from scheduler.runner import JobContext, ScheduledJob

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


async def escalate_ticket_slas(ctx: JobContext) -> str:
    """Tell the agent, then the manager, about tickets past their SLA (each notice once)."""
    async with ctx.sessions() as session:
        notices = await TicketService(session, default_policy(), ctx.timezone).escalate_sla_breaches(ctx.now)
        await session.commit()
    return f"{notices} SLA escalation(s) queued"


async def prune_job_runs(ctx: JobContext) -> str:
    """Forget run records older than 30 days; they only guard against running a tick twice."""
    async with ctx.sessions() as session:
        result = await session.execute(delete(JobRun).where(JobRun.scheduled_for < ctx.now - KEEP_JOB_RUNS))
        await session.commit()
    return f"{result.rowcount} old run record(s) removed"


def build_jobs(settings: Settings) -> list[ScheduledJob]:
    return [
        ScheduledJob("followups.remind", "* * * * *", "every minute: remind the owner rep when a follow-up falls due (once each)",
                     remind_due_followups),
        ScheduledJob("tickets.sla_escalations", "*/5 * * * *",
                     "every 5 minutes: escalate ticket SLA breaches to the agent, then the manager (once each)",
                     escalate_ticket_slas),
        ScheduledJob("scheduler.prune_runs", "30 3 * * *", "daily 03:30: drop job run records older than 30 days", prune_job_runs),
    ]
