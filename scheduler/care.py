"""The daily care jobs: birthday and festival greetings (decisions in crm_core.care).

Each job pages through the customers due, one transaction per page: a crash loses at most the
page in flight, and the re-run (the runner's catch-up, or `scrm jobs run`) skips every customer
already decided because the page query leaves them out and the unique care_deliveries row
refuses them. The messages are held to the end of quiet hours from the moment the job really
runs, so a run caught up late in the evening greets the next morning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime

from crm_core.care import KF, NONE, TEMPLATE, CarePolicy, CareService, Occasion, default_care_policy
from crm_core.db import utcnow
from crm_core.models import Customer
from scheduler.runner import JobContext, JobFunc

BATCH_SIZE = 500

Page = Callable[[CareService, Occasion, int, int], Awaitable[list[Customer]]]
AfterBatch = Callable[[int], Awaitable[None]]  # called with the last customer id of each committed page


async def send_birthday_greetings(ctx: JobContext, *, policy: CarePolicy | None = None,
                                  clock: Callable[[], datetime] = utcnow, batch_size: int = BATCH_SIZE,
                                  after_batch: AfterBatch | None = None) -> str:
    """Greet every consenting customer whose birthday (solar or lunar) is celebrated today."""
    policy = policy or default_care_policy()
    occasion = Occasion.birthday(ctx.now.astimezone(ctx.timezone).date())
    counts = await _greet_all(ctx, policy, occasion, CareService.birthdays_due, _send_at(ctx, policy, clock),
                              batch_size, after_batch)
    return _summary(occasion, counts)


async def send_festival_greetings(ctx: JobContext, *, policy: CarePolicy | None = None,
                                  clock: Callable[[], datetime] = utcnow, batch_size: int = BATCH_SIZE,
                                  after_batch: AfterBatch | None = None) -> str:
    """Greet every consenting customer on each enabled festival that falls today."""
    policy = policy or default_care_policy()
    today = ctx.now.astimezone(ctx.timezone).date()
    festivals = policy.festivals_on(today)
    if not festivals:
        return f"no festival on {today.isoformat()}"
    send_at = _send_at(ctx, policy, clock)
    summaries = []
    for festival in festivals:
        occasion = Occasion.festival(festival, today)
        counts = await _greet_all(ctx, policy, occasion, CareService.consenting, send_at, batch_size, after_batch)
        summaries.append(_summary(occasion, counts))
    return "; ".join(summaries)


def _send_at(ctx: JobContext, policy: CarePolicy, clock: Callable[[], datetime]) -> datetime:
    """The scheduled time, or now if the run is late, moved out of quiet hours."""
    return policy.quiet_hours.next_allowed(max(ctx.now, clock()), ctx.timezone)


async def _greet_all(ctx: JobContext, policy: CarePolicy, occasion: Occasion, page: Page, send_at: datetime,
                     batch_size: int, after_batch: AfterBatch | None) -> Counter[str]:
    counts, after_id = Counter[str](), 0
    while True:
        async with ctx.sessions() as session:
            care = CareService(session, policy)
            customers = await page(care, occasion, after_id, batch_size)
            if not customers:
                break
            counts += await care.greet(customers, occasion, send_at)
            await session.commit()
        after_id = customers[-1].id
        if after_batch is not None:
            await after_batch(after_id)
    async with ctx.sessions() as session:
        counts["rep_notices"] = await CareService(session, policy).tell_reps(occasion, send_at)
        await session.commit()
    return counts


def _summary(occasion: Occasion, counts: Counter[str]) -> str:
    return (f"{occasion.key} {occasion.day.isoformat()}: {counts[KF]} by kf, {counts[TEMPLATE]} group-send task(s), "
            f"{counts[NONE]} without channel, {counts['already']} already decided; "
            f"{counts['rep_notices']} rep notice(s)")


JOBS: dict[str, JobFunc] = {
    "care.birthdays": send_birthday_greetings,
    "care.festivals": send_festival_greetings,
}
