"""`/h5/dashboard`, the managers' 看板, and its JSON `/h5/api/dashboard`.

Managers see their departments, admins the company; either may narrow it to one department they
may choose and pick a period (crm_core.dashboard.PERIODS). Everything comes from crm_core.dashboard,
the functions `scrm report` prints, and each table reaches the page as the very cells the CLI prints
(scrm.cli.report's row functions), so a figure on screen and in the terminal cannot differ; the raw
numbers come along for the charts. The page (static/dashboard.js) draws the charts with the vendored
Apache ECharts (static/vendor/echarts/, no CDN) and puts every text on screen with textContent.
Views and refusals are audit-logged under the viewer, as lookups in chat are.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web

from config.templates import render
from crm_core import dashboard as board
from crm_core.audit import AuditService
from crm_core.deals import default_stages
from crm_core.models import Staff
from scheduler.forecast_jobs import forecast_settings, money_text, percent
from scrm import keys
from scrm.cli import report
from scrm.http.api import target_json
from scrm.http.pages import MANAGER_ROLES, page_response, words
from scrm.http.pages.identity import Viewer, api_error, refusal_page, viewer_for_api, viewer_for_page

DEFAULT_PERIOD = "this_month"
_ID = re.compile(r"[0-9]{1,18}")


def routes() -> list[web.AbstractRouteDef]:
    return [web.get("/h5/dashboard", page), web.get("/h5/api/dashboard", data)]


async def page(request: web.Request) -> web.Response:
    """The page's shell; its script asks /h5/api/dashboard for the figures."""
    viewer = await viewer_for_page(request)
    if viewer.role not in MANAGER_ROLES:
        await _audit(request, viewer, "dashboard.view_denied", "page")
        raise refusal_page(request, 403, "managers_only")
    return page_response(request, viewer, title=render("dashboard.page.title"), page="dashboard",
                         data={"words": words("dashboard.page"), "periods": list(board.PERIODS),
                               "echarts": "/h5/static/vendor/echarts/echarts.min.js"},
                         styles=("dashboard.css",))


async def data(request: web.Request) -> web.Response:
    """Every figure of the 看板 for `period` (one of PERIODS) and `department` (an id the viewer may choose)."""
    viewer = await viewer_for_api(request)
    if viewer.role not in MANAGER_ROLES:
        await _audit(request, viewer, "dashboard.view_denied", "api")
        raise api_error(403, render("pages.refusals.managers_only"))
    period = request.query.get("period") or DEFAULT_PERIOD
    if period not in board.PERIODS:
        raise api_error(400, render("dashboard.page.bad_period"))
    raw_department = request.query.get("department", "")
    if raw_department and not _ID.fullmatch(raw_department):
        raise api_error(404, render("dashboard.page.no_department"))
    tz = request.app[keys.SETTINGS].tz
    now = request.app[keys.CLOCK]().astimezone(tz)
    since, until = board.period_dates(period, now.date())
    async with request.app[keys.SESSIONS]() as session:
        staff = await session.get(Staff, viewer.staff_id)
        try:
            view = await board.make_view(session, staff, since, until, tz,
                                         int(raw_department) if raw_department else None)
        except board.DepartmentNotVisibleError:
            raise api_error(404, render("dashboard.page.no_department"))
        result = await board.dashboard(session, view, default_stages(), forecast_settings(), now)
        departments = await board.visible_departments(session, staff)
        label = await report.scope_label(session, view)
        AuditService(session).record(actor=viewer.userid, action="dashboard.view",
                                     detail=f"period={period} department={view.department_id}")
        await session.commit()  # the month's first forecast for this view is kept, as `scrm report forecast` keeps it
    return web.json_response(dashboard_json(result, period, label, departments, now),
                             headers={"Cache-Control": "no-store"})


def dashboard_json(result: board.Dashboard, period: str, label: str, departments: dict[int, str],
                   now: datetime) -> dict[str, Any]:
    """The page's figures: each section's numbers for the charts and its texts as `scrm report` prints them."""
    view, funnel, losses, outlook = result.view, result.funnel, result.losses, result.forecast
    forecast, review = outlook.forecast, outlook.last_month
    return {
        "generated_at": now.isoformat(),
        "at_text": f"{now:%Y-%m-%d %H:%M}",
        "period": {"name": period, "since": view.since.isoformat(), "until": view.until.isoformat()},
        "scope": {"label": label, "department": view.department_id},
        "departments": [{"id": i, "name": name} for i, name in departments.items()],
        "funnel": {
            "summary": report.funnel_summary(funnel),
            "won_deals": funnel.won_deals, "won_amount": funnel.won_amount,
            "won_amount_text": money_text(funnel.won_amount), "cohort_won": funnel.cohort_won,
            "header": _cells("funnel.stage_header"), "rows": report.funnel_stage_rows(funnel),
            "stages": [{"stage": s.stage, "reached": s.reached, "next_rate": s.next_rate, "win_rate": s.win_rate,
                        "median_days": s.median_days} for s in funnel.stages],
        },
        "losses": {
            "title": report.losses_title(losses), "deals": losses.deals, "amount": losses.amount,
            "header": _cells("dashboard.cli.losses_header"), "rows": report.losses_rows(losses),
            "reasons_text": report.losses_reasons(losses),
            "stages": [{"stage": s.stage, "deals": s.deals, "amount": s.amount} for s in losses.stages],
            "reasons": [{"reason": r, "count": n} for r, n in losses.reasons],
        },
        "trend": {
            "header": _cells("dashboard.cli.trend_header"), "rows": report.trend_rows(result.trend),
            "months": [{"month": m.month, "won_deals": m.won_deals, "won_amount": m.won_amount,
                        "average_amount": m.average_amount, "median_cycle_days": m.median_cycle_days}
                       for m in result.trend],
        },
        "attainment": {
            "month": result.attainment.month.label,
            "header": _cells("targets.report.header"), "rows": report.target_rows(result.attainment),
            "departments": [target_json(r) for r in result.attainment.departments],
            "reps": [target_json(r) for r in result.attainment.reps],
        },
        "forecast": {
            "month": forecast.month.label, "summary": report.forecast_summary(outlook),
            "review": report.forecast_review(outlook),
            "amount": round(forecast.amount), "amount_text": money_text(forecast.amount),
            "won_amount": forecast.won_amount, "won_deals": forecast.won_deals,
            "last_month": {"month": review.month.label, "forecast_amount": review.forecast_amount,
                           "won_amount": review.won_amount, "won_deals": review.won_deals,
                           "accuracy": review.accuracy,
                           "accuracy_text": percent(review.accuracy) if review.accuracy is not None else None},
        },
    }


def _cells(key: str) -> list[str]:
    return str(render(key)).split("|")


async def _audit(request: web.Request, viewer: Viewer, action: str, detail: str) -> None:
    async with request.app[keys.SESSIONS]() as session:
        AuditService(session).record(actor=viewer.userid, action=action, detail=detail)
        await session.commit()
