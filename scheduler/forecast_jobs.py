"""The month's forecast snapshot job, and the forecast section of the weekly manager digest.

`forecast.snapshot` runs on the 1st shortly after midnight and keeps each scope's first forecast
of the month (the company, each manager's departments); a report that runs first in a month keeps
it just the same, and a re-run keeps nothing twice (unique month + scope).
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from config.policies import CONFIG_DIR, load_policy
from config.templates import render
from crm_core.deals import default_stages
from crm_core.forecast import ForecastSettings, Month, Outlook, keep_snapshot, make_forecast, outlook, scope_key, snapshot_scopes
from crm_core.models import Staff
from crm_core.scope import Scope
from scheduler.runner import JobContext, JobFunc

log = logging.getLogger(__name__)

@functools.cache
def forecast_settings() -> ForecastSettings:
    """config/forecast.toml, checked against the shipped deal pipeline, read once per process."""
    return load_policy(CONFIG_DIR / "forecast.toml", functools.partial(ForecastSettings.from_toml, stages=default_stages()))


async def snapshot_forecasts(ctx: JobContext) -> str:
    """Keep this month's first forecast for the company and each manager's departments, each in its own transaction."""
    async with ctx.sessions() as session:
        scopes = await snapshot_scopes(session)
    kept, failed = 0, []
    for key, scope in scopes:
        try:
            async with ctx.sessions() as session:
                forecast = await make_forecast(session, scope, default_stages(), forecast_settings(), ctx.now, ctx.timezone)
                kept += await keep_snapshot(session, key, forecast)
                await session.commit()
        except Exception:
            log.exception("forecast snapshot for %s failed", key)
            failed.append(key)
    summary = (f"{kept} forecast snapshot(s) kept for {Month.of(ctx.now, ctx.timezone).label} "
               f"({len(scopes) - kept - len(failed)} of {len(scopes)} scope(s) already had one)")
    if failed:
        raise RuntimeError(f"{summary}; failed for {', '.join(failed)}")
    return summary


async def staff_outlook(session: AsyncSession, staff: Staff | None, scope: Scope, now: datetime,
                        tz: ZoneInfo) -> Outlook:
    """The forecast a staff member's report shows (keeping the month's snapshot if it is the first)."""
    return await outlook(session, scope, scope_key(staff, scope), default_stages(), forecast_settings(), now, tz)


def digest_lines(view: Outlook) -> list[str]:
    """The weekly digest's forecast section: this month's forecast, last month's against actual."""
    forecast, review = view.forecast, view.last_month
    lines = [render("forecast.digest_month", kind="markdown", amount=money_text(forecast.amount),
                    deals=round(forecast.deals), won=money_text(forecast.won_amount))]
    if review.forecast_amount is None:
        lines.append(render("forecast.digest_review_none", kind="markdown", actual=money_text(review.won_amount),
                            actual_deals=review.won_deals))
    else:
        lines.append(render("forecast.digest_review", kind="markdown", forecast=money_text(review.forecast_amount),
                            actual=money_text(review.won_amount), actual_deals=review.won_deals,
                            ratio=percent(review.accuracy)))
    return lines


def money_text(amount: float) -> str:
    """123.46万 from 10,000 yuan up, else whole yuan."""
    if amount >= 10_000:
        return render("forecast.money_wan", value=f"{amount / 10_000:.2f}".rstrip("0").rstrip("."))
    return render("forecast.money_yuan", value=f"{amount:.0f}")


def percent(share: float | None) -> str:
    return render("forecast.na") if share is None else f"{share:.0%}"


JOBS: dict[str, JobFunc] = {
    "forecast.snapshot": snapshot_forecasts,
}
