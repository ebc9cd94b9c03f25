"""03:00 `leads.rescore`: every warm or recently contacted customer's 热度 recomputed for today, so a
lead nobody heard from cools down before the 08:30 morning nudge lists the hot ones.

Pages of customers by id, each page in its own transaction (crm_core.lead_score locks the page's
rows), so the job never holds the whole table and a second run simply computes the same scores.
"""

from __future__ import annotations

from crm_core.lead_score import LeadScorePolicy, LeadScoreService
from scheduler.runner import JobContext, JobFunc

RESCORE_PAGE = 500


async def rescore_leads(ctx: JobContext, policy: LeadScorePolicy | None = None) -> str:
    """Recompute the lead score of warm, never scored and recently contacted customers as of the run."""
    after_id, seen, changed = 0, 0, 0
    while True:
        async with ctx.sessions() as session:
            page = await LeadScoreService(session, policy).rescore_page(ctx.now, after_id=after_id, limit=RESCORE_PAGE)
            await session.commit()
        if page is None:
            break
        after_id, seen, changed = page.last_id, seen + page.seen, changed + page.changed
    return f"{seen} lead score(s) recomputed, {changed} changed"


JOBS: dict[str, JobFunc] = {
    "leads.rescore": rescore_leads,
}
