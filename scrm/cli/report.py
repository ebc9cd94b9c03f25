"""`scrm report funnel`, `scrm report forecast` and `scrm report targets`: the sales funnel, the
month's forecast and the month's attainment against targets as plain-text tables for managers, over
what a staff member may see (`--as`) or the company.

Running `report forecast` first in a month keeps that month's forecast (as the scheduled
`forecast.snapshot` job would), so next month can compare it with what was won.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import unicodedata
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from config.settings import load_settings
from config.templates import render

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm_core.dashboard import Losses, MonthTrend, View
    from crm_core.forecast import Outlook
    from crm_core.funnel import Funnel
    from crm_core.targets import Attainment

DEFAULT_DAYS = 30


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="sales funnel, forecast, targets and trend for managers (the 看板's figures)")
    what = report.add_subparsers(dest="report_what", metavar="REPORT", required=True)
    for name, help_text in (("funnel", "customers by channel, deals opened, stage conversion and days, deals won, "
                                       "where deals were lost"),
                            ("forecast", "this month's forecast by stage; last month's forecast against actual"),
                            ("targets", "each rep's and department's target and what was won against it"),
                            ("trend", "deals won, average size and median sales cycle, month by month")):
        cmd = what.add_parser(name, help=help_text)
        if name == "funnel":
            cmd.add_argument("--since", type=date.fromisoformat, metavar="YYYY-MM-DD",
                             help=f"first day (default: {DEFAULT_DAYS} days up to --until)")
            cmd.add_argument("--until", type=date.fromisoformat, metavar="YYYY-MM-DD",
                             help="last day, included (default: today)")
        if name in ("targets", "trend"):
            cmd.add_argument("--month", metavar="YYYY-MM",
                             help="default: the month of --at" + (" (and the five before it)" if name == "trend" else ""))
        cmd.add_argument("--as", dest="as_userid", metavar="USERID",
                         help="what this staff member may see (manager: departments, admin: all); default: the company")
        cmd.add_argument("--department", metavar="NAME|ID",
                         help="only this department's members (one of --as's departments; any for an admin)")
        cmd.add_argument("--at", type=datetime.fromisoformat, metavar="ISO-8601",
                         help="report as of this moment instead of now (e.g. 2026-12-01T09:00+08:00)")
        cmd.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    return asyncio.run(_report(args))


async def _report(args: argparse.Namespace) -> int:
    """Each report reads crm_core.dashboard's functions for the view the options name, as the page does."""
    from crm_core import dashboard
    from crm_core.db import utcnow
    from crm_core.deals import default_stages
    from crm_core.funnel import funnel
    from crm_core.targets import InvalidMonthError, month_of, read_month
    from scheduler.forecast_jobs import forecast_settings
    from scrm.resources import CliError, scope_as, with_session

    tz = load_settings(toml_path=args.config).tz
    now = (args.at.replace(tzinfo=args.at.tzinfo or tz) if args.at else utcnow()).astimezone(tz)
    since = until = now.date()
    if args.report_what == "funnel":
        until = args.until or now.date()
        since = args.since or until - timedelta(days=DEFAULT_DAYS - 1)
        if since > until:
            print("--since must not be after --until", file=sys.stderr)
            return 2
    elif args.report_what in ("targets", "trend"):
        try:
            label = read_month(args.month).label(now.date()) if args.month else f"{now:%Y-%m}"
        except InvalidMonthError:
            print(f"--month {args.month}: not a month; write it as 2026-12", file=sys.stderr)
            return 2
        month = month_of(label, tz)
        since, until = month.start.astimezone(tz).date(), (month.end.astimezone(tz) - timedelta(days=1)).date()

    async def work(session: AsyncSession) -> str:
        staff, _ = await scope_as(session, args.as_userid)
        department = None
        if args.department:
            try:
                department = await dashboard.find_department(session, staff, args.department)
            except dashboard.DepartmentNotVisibleError as exc:
                raise CliError(f"--department {args.department}: no such department"
                               + (f" among {staff.userid}'s" if staff is not None else "")) from exc
        view = await dashboard.make_view(session, staff, since, until, tz, department)
        label = await scope_label(session, view)
        stages = default_stages()
        if args.report_what == "funnel":
            return "\n".join([render_funnel(await funnel(session, view.scope, view.period, stages), since, until, label),
                              "", render_losses(await dashboard.losses(session, view, stages))])
        if args.report_what == "targets":
            return render_targets(await dashboard.attainment(session, view), label)
        if args.report_what == "trend":
            return render_trend(await dashboard.trend(session, view), label)
        outlook = await dashboard.forecast(session, view, stages, forecast_settings(), now)
        await session.commit()
        return render_forecast(outlook, label, now)

    print(await with_session(args.config, work))
    return 0


async def scope_label(session: AsyncSession, view: View) -> str:
    """全公司 (no --as, or an admin's), 刘洋 的范围, and the department when one is chosen."""
    from crm_core.dashboard import visible_departments

    viewer = view.viewer
    label = render("forecast.company") if viewer is None or viewer.role == "admin" else \
        render("forecast.scope_staff", name=viewer.name or viewer.userid)
    if view.department_id is None:
        return label
    name = (await visible_departments(session, viewer))[view.department_id]
    return render("dashboard.cli.scope_department", scope=label, department=name)


# What each report says, line by line and cell by cell: the 看板 (scrm/http/pages/dashboard.py) shows these
# very texts beside its charts, so a number on the page and in the terminal cannot differ.

def target_rows(result: Attainment) -> list[list[str]]:
    """Departments, then reps: who, target, won so far, deals, attainment."""
    from scheduler.forecast_jobs import money_text

    none = render("targets.report.none")
    return [[render("targets.report.department", name=r.name) if r.kind == "department" else r.name,
             money_text(r.target) if r.target is not None else render("targets.report.no_target"),
             money_text(r.won_amount), str(r.won_deals), _pct(r.ratio) if r.ratio is not None else none]
            for r in result.rows]


def losses_title(result: Losses) -> str:
    from scheduler.forecast_jobs import money_text

    return render("dashboard.cli.losses_title", deals=result.deals, amount=money_text(result.amount))


def losses_rows(result: Losses) -> list[list[str]]:
    """Per stage the lost deals left: stage, deals, their amount."""
    from scheduler.forecast_jobs import money_text

    return [[row.stage or render("dashboard.cli.stage_unknown"), str(row.deals), money_text(row.amount)]
            for row in result.stages]


def losses_reasons(result: Losses) -> str:
    """常见原因：价格太高（2）、… ; empty when no lost deal gave one."""
    if not result.reasons:
        return ""
    return render("dashboard.cli.reasons", reasons=render("dashboard.cli.reason_separator").join(
        render("dashboard.cli.reason", reason=reason, count=count) for reason, count in result.reasons))


def trend_rows(months: list[MonthTrend]) -> list[list[str]]:
    """Month, deals won, their amount, average size (of those with a budget), median cycle."""
    from scheduler.forecast_jobs import money_text

    none = render("funnel.none")
    return [[m.month, str(m.won_deals), money_text(m.won_amount),
             money_text(m.average_amount) if m.average_amount is not None else none,
             render("dashboard.cli.days", days=m.median_cycle_days) if m.median_cycle_days is not None else none]
            for m in months]


def funnel_summary(result: Funnel) -> str:
    from scheduler.forecast_jobs import money_text

    return render("funnel.summary", customers=result.customers, deals=result.deals_opened, won=result.won_deals,
                  amount=money_text(result.won_amount))


def funnel_stage_rows(result: Funnel) -> list[list[str]]:
    """Stage, reached, on to the next stage, finally won, median days in the stage."""
    none = render("funnel.none")
    return [[row.stage, str(row.reached), _pct(row.next_rate), _pct(row.win_rate),
             render("funnel.days", days=row.median_days, count=row.stays) if row.median_days is not None else none]
            for row in result.stages]


def forecast_summary(view: Outlook) -> str:
    from scheduler.forecast_jobs import money_text

    forecast = view.forecast
    return render("forecast.summary", amount=money_text(forecast.amount), deals=round(forecast.deals),
                  won=money_text(forecast.won_amount), won_deals=forecast.won_deals)


def forecast_review(view: Outlook) -> str:
    """Last month's kept forecast against what was won, or why there is none to compare."""
    from scheduler.forecast_jobs import money_text, percent

    review = view.last_month
    month = review.month.label
    if view.scope_key is None:
        return render("forecast.review_no_scope", month=month, actual=money_text(review.won_amount),
                      actual_deals=review.won_deals)
    if review.forecast_amount is None:
        return render("forecast.review_no_snapshot", month=month, actual=money_text(review.won_amount),
                      actual_deals=review.won_deals)
    return render("forecast.review", month=month, forecast=money_text(review.forecast_amount),
                  deals=review.forecast_deals, actual=money_text(review.won_amount),
                  actual_deals=review.won_deals, ratio=percent(review.accuracy))


def render_targets(result: Attainment, scope_label: str) -> str:
    """One line per department, then per rep: target, won so far, deals, attainment."""
    title = render("targets.report.title", month=result.month.label, scope=scope_label)
    if not result.rows:
        return "\n".join([title, "", render("targets.report.empty", month=result.month.label)])
    return "\n".join([title, "", *table(_cells("targets.report.header"), target_rows(result)),
                      render("targets.report.note")])


def render_losses(result: Losses) -> str:
    """Where the period's lost deals were lost: by the stage they left, and the most common reasons."""
    if not result.deals:
        return losses_title(result)
    reasons = losses_reasons(result)
    return "\n".join([losses_title(result), *table(_cells("dashboard.cli.losses_header"), losses_rows(result)),
                      *([reasons] if reasons else [])])


def render_trend(months: list[MonthTrend], scope_label: str) -> str:
    """Month by month: deals won, their amount, the average size (of those with a budget), the median cycle."""
    return "\n".join([render("dashboard.cli.trend_title", start=months[0].month, end=months[-1].month, scope=scope_label),
                      "", *table(_cells("dashboard.cli.trend_header"), trend_rows(months)),
                      render("dashboard.cli.trend_note")])


def render_funnel(result: Funnel, since: date, until: date, scope_label: str) -> str:
    from crm_core.deals import default_stages
    from scheduler.forecast_jobs import money_text

    stages = default_stages()
    lines = [render("funnel.title", start=since.isoformat(), end=until.isoformat(), scope=scope_label),
             funnel_summary(result), ""]
    if not (result.customers or result.deals_opened or result.won_deals):
        return "\n".join([*lines, render("funnel.empty")])
    none = render("funnel.none")
    rows = [*funnel_stage_rows(result), [render("funnel.won_row"), str(result.cohort_won), "", "", ""]]
    lines += [*table(_cells("funnel.stage_header"), rows), render("funnel.note"), "", render("funnel.channels_title")]
    header = [*_cells("funnel.channel_header"), *stages.stages, render("funnel.won_row"), *_cells("funnel.channel_tail")]
    lines += table(header, [[_channel(c.channel), str(c.customers), str(c.deals_opened), *map(str, c.reached),
                             str(c.won_deals), money_text(c.won_amount)] for c in result.channels])
    lines += ["", render("funnel.channel_days_title")]
    lines += table([_cells("funnel.channel_header")[0], *stages.stages],
                   [[_channel(c.channel), *(f"{d:.1f}" if d is not None else none for d in c.median_days)]
                    for c in result.channels if any(d is not None for d in c.median_days)])
    return "\n".join(lines)


def render_forecast(view: Outlook, scope_label: str, now: datetime) -> str:
    from scheduler.forecast_jobs import money_text

    forecast = view.forecast
    lines = [render("forecast.title", month=forecast.month.label, scope=scope_label, at=f"{now:%Y-%m-%d %H:%M}"),
             forecast_summary(view), ""]
    rows = []
    for s in forecast.stages:
        probability = f"{s.probability:.1%}"
        rows.append([s.stage, str(s.open_deals), money_text(s.open_amount), str(s.in_month_deals),
                     money_text(s.in_month_amount),
                     render("forecast.learned", value=probability, count=s.closed_sample) if s.probability_learned
                     else render("forecast.default", value=probability),
                     render("forecast.days_learned" if s.days_learned else "forecast.days_default", days=s.days_to_close)])
    lines += [*table(_cells("forecast.stage_header"), rows), render("forecast.note"), "", forecast_review(view)]
    if view.snapshot_made:
        lines.append(render("forecast.snapshot_made"))
    return "\n".join(lines)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Columns aligned by display width (a Chinese character takes two); text left, numbers right."""
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [cell + " " * (w - _width(cell)) if i == 0 else " " * (w - _width(cell)) + cell
                 for i, (cell, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
    return out


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cells(key: str) -> list[str]:
    return render(key).split("|")


def _channel(name: str) -> str:
    from crm_core.funnel import UNKNOWN_CHANNEL

    return render("funnel.channel_unknown") if name == UNKNOWN_CHANNEL else name


def _pct(share: float | None) -> str:
    return render("funnel.none") if share is None else f"{share:.1%}"
