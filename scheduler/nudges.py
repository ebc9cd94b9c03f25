"""Nudges for reps and their managers: the morning digest, stalled-deal escalations, customers
turning dormant and contract renewals.

crm_core.nudges decides who is owed what; this module words it (config/templates_nudges.toml)
and writes outbox rows. Every row's idempotency key names the rep and day, or the deal's stage
entry, so a re-run sends nothing twice. Work is committed per rep (or per page of deals), so one
rep's failure neither blocks nor undoes the others'; the job still reports the failure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from crm_core.lead_score import default_policy as lead_score_policy
from crm_core.models import Staff
from crm_core.nudges import NudgePolicy, NudgeService, StallNotice, default_policy, local_day_start
from crm_core.outbox import OutboxService
from scheduler.runner import JobContext, JobFunc, for_each_staff


# WeCom cuts a text message at 2048 bytes (UTF-8).
MAX_BYTES = 2048
DEAL_PAGE = 500
DORMANT_CHUNK = 500
# A free-text excerpt (follow-up text, last note) keeps a line to one line on a phone.
EXCERPT_CHARS = 40


@dataclass(frozen=True)
class Section:
    title: str
    lines: list[str]
    total: int


def fit_message(header: str, sections: list[Section], footer: str = "", limit: int = MAX_BYTES) -> str:
    """Header, sections and footer in at most `limit` bytes: lines are added to the sections in
    turn while they fit, so every list shows its first items, and each cut list says how many
    more there are."""
    sections = [s for s in sections if s.total]
    shown = [0] * len(sections)

    def build() -> str:
        parts = [header]
        for section, count in zip(sections, shown):
            parts.append("")
            if section.title:
                parts.append(section.title)
            parts.extend(section.lines[:count])
            if section.total > count:
                parts.append(render("nudges.more", count=section.total - count))
        if footer:
            parts.extend(["", footer])
        return "\n".join(parts)

    open_sections = {i for i, s in enumerate(sections) if s.lines}
    while open_sections:
        for i in sorted(open_sections):
            shown[i] += 1
            if len(build().encode()) > limit:
                shown[i] -= 1
                open_sections.discard(i)
            elif shown[i] == len(sections[i].lines):
                open_sections.discard(i)
    return clip(build(), limit)


def clip(text: str, limit: int = MAX_BYTES) -> str:
    """A last resort for text that cannot fit otherwise (absurdly long names): cut at a character."""
    if len(text.encode()) <= limit:
        return text
    ellipsis = render("nudges.trimmed")
    budget = limit - len(ellipsis.encode())
    return text.encode()[:budget].decode(errors="ignore") + ellipsis


def excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + render("nudges.trimmed")


def who(customer: str, company: str) -> str:
    return render("nudges.who", customer=customer, company=company) if company else \
        render("nudges.who_no_company", customer=customer)


def duration(span: timedelta) -> str:
    hours = int(span.total_seconds() // 3600)
    return render("nudges.hours", count=hours) if hours < 72 else render("nudges.days", count=span.days)


def local_text(at: datetime, tz: ZoneInfo) -> str:
    return f"{at.astimezone(tz):%m-%d %H:%M}"


def text_message(staff: Staff, content: str) -> dict[str, Any]:
    return {"touser": staff.userid, "msgtype": "text", "text": {"content": content}}


async def send_morning_nudges(ctx: JobContext, policy: NudgePolicy | None = None) -> str:
    """One message per rep: today's and overdue follow-ups, the hottest leads, customers gone
    quiet, contracts ending soon. A rep with none of these gets no message."""
    policy = policy or default_policy()
    today = ctx.now.astimezone(ctx.timezone).date()

    async def nudge(session: AsyncSession, rep: Staff) -> bool:
        content = await morning_message(NudgeService(session, policy, ctx.timezone), rep, ctx.now, today)
        if content is None:
            return False
        return await OutboxService(session).enqueue(
            idempotency_key=f"nudge:morning:{rep.id}:{today.isoformat()}", kind="app_message",
            payload=text_message(rep, content), staff_id=rep.id)

    return await for_each_staff(ctx, nudge, "morning nudge")


async def morning_message(service: NudgeService, rep: Staff, now: datetime, today: date) -> str | None:
    tz, policy = service.timezone, service.policy
    day_start = local_day_start(today, tz)
    follow_ups = await service.due_follow_ups(rep.id, now)
    leads = lead_score_policy()
    hot = await service.hot_leads(rep.id, leads.hot, leads.morning_top)
    quiet = await service.quiet_customers(rep.id, now)
    contracts = await service.contracts_ending(rep.id, today, today + timedelta(days=policy.contract_within_days))
    if not (follow_ups.total or hot.total or quiet.total or contracts.total):
        return None

    def follow_up_line(f) -> str:
        what = excerpt(f.text) if f.text.strip() else (
            render("nudges.morning.followup_last_note", note=excerpt(f.last_note)) if f.last_note.strip()
            else render("nudges.morning.followup_no_text"))
        if f.due_at < day_start:
            return render("nudges.morning.followup_overdue", who=who(f.customer, f.company),
                          due=local_text(f.due_at, tz), what=what)
        return render("nudges.morning.followup_today", who=who(f.customer, f.company),
                      time=f"{f.due_at.astimezone(tz):%H:%M}", what=what)

    def quiet_line(q) -> str:
        key = "nudges.morning.quiet_line" if q.contacted else "nudges.morning.quiet_line_never"
        line = render(key, who=who(q.customer, q.company), days=(now - q.quiet_since).days)
        return line + (render("nudges.morning.quiet_stage", stage=q.deal_stage) if q.deal_stage else "")

    def contract_line(c) -> str:
        days = (c.ends_on - today).days
        if days == 0:
            return render("nudges.morning.contract_line_today", who=who(c.customer, c.company))
        return render("nudges.morning.contract_line", who=who(c.customer, c.company),
                      date=f"{c.ends_on:%m-%d}", days=days)

    return fit_message(
        render("nudges.morning.header", name=rep.name or rep.userid),
        [Section(render("nudges.morning.followups_title", count=follow_ups.total),
                 [follow_up_line(f) for f in follow_ups.items], follow_ups.total),
         Section(render("nudges.morning.hot_title", count=hot.total),
                 [render("nudges.morning.hot_line", who=who(h.customer, h.company), score=h.score,
                         stage=render(f"lifecycle.{h.lifecycle}")) for h in hot.items], hot.total),
         Section(render("nudges.morning.quiet_title", count=quiet.total),
                 [quiet_line(q) for q in quiet.items], quiet.total),
         Section(render("nudges.morning.contracts_title", days=policy.contract_within_days, count=contracts.total),
                 [contract_line(c) for c in contracts.items], contracts.total)],
        render("nudges.morning.footer"),
    )


# -- hourly: stalled deals --------------------------------------------------------------------------

async def escalate_stalled_deals(ctx: JobContext, policy: NudgePolicy | None = None) -> str:
    """Tell the rep about a deal stuck in its stage, then the rep's managers if it stays stuck;
    each once per stage entry. A person gets at most `max_per_recipient_per_run` notices a run,
    so a backlog arrives over a few hours rather than as a flood."""
    policy = policy or default_policy()
    async with ctx.sessions() as session:
        managers = list((await session.scalars(
            select(Staff).where(Staff.active, Staff.role == "manager").order_by(Staff.id))).all())
    counts = {"rep": 0, "manager": 0, "deferred": 0}
    per_recipient: Counter[int] = Counter()
    after_id = 0
    while True:
        async with ctx.sessions() as session:
            service = NudgeService(session, policy, ctx.timezone)
            notices, last_id = await service.stall_notices(ctx.now, after_id=after_id, limit=DEAL_PAGE,
                                                           managers=managers)
            if last_id is None:
                break
            outbox = OutboxService(session)
            for notice in notices:
                if any(per_recipient[r.id] >= policy.stall_max_per_recipient for r in notice.recipients):
                    counts["deferred"] += 1
                    continue
                per_recipient.update(r.id for r in notice.recipients)
                content = stall_message(notice, ctx.now, ctx.timezone)
                new = False
                for recipient in notice.recipients:
                    new |= await outbox.enqueue(
                        idempotency_key=f"{notice.deal.key}:{notice.level}:{recipient.userid}", kind="app_message",
                        payload=text_message(recipient, content), customer_id=notice.deal.customer_id,
                        staff_id=recipient.id)
                if new:
                    service.record_stall_notice(notice, ctx.now)
                    counts[notice.level] += 1
            await session.commit()
        after_id = last_id
    summary = f"{counts['rep']} stalled deal(s) told to reps, {counts['manager']} escalated to managers"
    return summary + (f"; {counts['deferred']} left for the next run" if counts["deferred"] else "")


def stall_message(notice: StallNotice, now: datetime, tz: ZoneInfo) -> str:
    deal = notice.deal
    values = {"who": who(deal.customer, deal.company), "customer": deal.customer, "stage": deal.stage,
              "idle": duration(now - deal.last_activity_at), "entered": local_text(deal.stage_changed_at, tz),
              "last": local_text(deal.last_activity_at, tz)}
    if notice.level == "rep":
        return clip(render("nudges.stall.rep", **values))
    owner = notice.owner
    told = render("nudges.stall.told", at=local_text(notice.rep_told_at, tz)) if notice.rep_told_at \
        else render("nudges.stall.no_owner")
    rep = (owner.name or owner.userid) if owner is not None else render("nudges.stall.nobody")
    return clip(render("nudges.stall.manager", rep=rep, told=told, **values))


# -- 02:00 dormant customers --------------------------------------------------------------------------

async def mark_dormant_customers(ctx: JobContext, policy: NudgePolicy | None = None) -> str:
    """Active customers without interaction for `dormant.after_days` become dormant, each with a
    reactivation follow-up for the owner; then one message per rep lists today's."""
    policy = policy or default_policy()
    moved = 0
    while True:
        async with ctx.sessions() as session:
            chunk = await NudgeService(session, policy, ctx.timezone).mark_dormant(ctx.now, DORMANT_CHUNK)
            await session.commit()
        if not chunk:
            break
        moved += chunk
    # Listed from the stored follow-ups, not from this run's memory, so a run that stopped after
    # some chunks still gets every rep told when it is run again.
    async with ctx.sessions() as session:
        owners = await NudgeService(session, policy, ctx.timezone).reactivation_owners(ctx.now)
    today = ctx.now.astimezone(ctx.timezone).date()
    quiet_until = datetime.combine(today, policy.notify_not_before, tzinfo=ctx.timezone)

    async def tell(session: AsyncSession, rep: Staff) -> bool:
        service = NudgeService(session, policy, ctx.timezone)
        listing = await service.reactivations(rep.id, ctx.now)
        if not listing.total:
            return False
        content = fit_message(
            render("nudges.dormant.header", count=listing.total, days=policy.dormant_after.days,
                   due=local_text(service.reactivation_due(ctx.now), ctx.timezone)),
            [Section("", [render("nudges.dormant.line", who=who(r.customer, r.company)) for r in listing.items],
                     listing.total)],
            render("nudges.dormant.footer"))
        return await OutboxService(session).enqueue(
            idempotency_key=f"nudge:dormant:{rep.id}:{today.isoformat()}", kind="app_message",
            payload=text_message(rep, content), staff_id=rep.id,
            not_before=quiet_until if ctx.now < quiet_until else None)

    told = await for_each_staff(ctx, tell, "dormant notice", staff_ids=owners) if owners else "0 dormant notice(s) queued"
    return f"{moved} customer(s) marked dormant; {told}"


# -- 09:00 contract renewals ----------------------------------------------------------------------------

async def remind_contract_renewals(ctx: JobContext, policy: NudgePolicy | None = None) -> str:
    """One message per rep listing the customers whose contract ends exactly `days_before` days from
    today; keyed by rep and end date, and a customer is listed on one day only, so once each."""
    policy = policy or default_policy()
    today = ctx.now.astimezone(ctx.timezone).date()
    ends_on = today + timedelta(days=policy.renewal_days_before)
    async with ctx.sessions() as session:
        owners = await NudgeService(session, policy, ctx.timezone).contract_owners(ends_on)

    async def remind(session: AsyncSession, rep: Staff) -> bool:
        listing = await NudgeService(session, policy, ctx.timezone).contracts_ending(rep.id, ends_on, ends_on)
        if not listing.total:
            return False
        content = fit_message(
            render("nudges.renewal.header", count=listing.total, date=f"{ends_on:%Y-%m-%d}",
                   days=policy.renewal_days_before),
            [Section("", [render("nudges.renewal.line", who=who(c.customer, c.company)) for c in listing.items],
                     listing.total)],
            render("nudges.renewal.footer"))
        return await OutboxService(session).enqueue(
            idempotency_key=f"renewal:{rep.id}:{ends_on.isoformat()}", kind="app_message",
            payload=text_message(rep, content), staff_id=rep.id)

    if not owners:
        return f"0 renewal reminder(s) queued (no contract ends on {ends_on.isoformat()})"
    return await for_each_staff(ctx, remind, "renewal reminder", staff_ids=owners)


JOBS: dict[str, JobFunc] = {
    "nudges.morning": send_morning_nudges,
    "deals.stall_escalations": escalate_stalled_deals,
    "customers.dormant": mark_dormant_customers,
    "contracts.renewal_reminders": remind_contract_renewals,
}
