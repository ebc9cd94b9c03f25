"""Manager digests: a daily and a weekly team report per manager, as WeCom markdown.

Each manager gets the figures of their departments' customers (crm_core.scope); admins get the
whole company's. A quiet day still gets a one-line digest: a daily report that sometimes does not
come leaves the manager wondering whether it broke. An app message holds 2,048 bytes of markdown,
so a long digest is sent as a few numbered parts (at most MAX_PARTS; lists are shortened before
more are needed). Each part is one outbox row keyed by manager, day (or ISO week) and part, so a
re-run or a second scheduler sends nothing twice. Wording lives in config/templates_digests.toml.

When the pages' public origin is configured (SCRM_PAGE_BASE_URL), the weekly digest ends with a
textcard that opens the 看板 (/h5/dashboard), keyed like the parts so it too is sent once; its
wording is in config/templates_dashboard.toml.
"""

from __future__ import annotations

import functools
import logging
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from config.markup import Markup, join
from config.templates import render
from crm_core.deals import default_stages
from crm_core.forecast import Outlook
from crm_core.groups import GroupService, Moves
from crm_core.models import Staff
from crm_core.outbox import OutboxService
from crm_core.reports import Period, TeamReport, team_report
from crm_core.scope import scope_for
from scheduler.forecast_jobs import digest_lines, money_text, staff_outlook
from scheduler.runner import JobContext, JobFunc, for_each_staff

log = logging.getLogger(__name__)

RECIPIENT_ROLES = ("manager", "admin")
# App-message markdown: "最长不超过2048个字节，必须是utf8编码" (4096 is the group robot's limit, not an app's).
# https://developer.work.weixin.qq.com/document/path/90236
MAX_BYTES = 2048
MAX_PARTS = 3
# Lists (reps, customers, keywords) are cut to the first of these lengths that fits.
LIST_LIMITS = (10, 5, 3, 1)
# Textcard (文本卡片消息, same page): title "不超过128个字节", description "不超过512个字节" (longer is cut by
# WeCom), url "最长2048字节，请确保包含了协议头(http/https)", btntxt "不超过4个文字".
CARD_TITLE_BYTES, CARD_DESCRIPTION_BYTES, CARD_URL_BYTES, CARD_BUTTON_CHARS = 128, 512, 2048, 4
DASHBOARD_PATH = "/h5/dashboard"  # the managers' 看板 (scrm.http.pages.dashboard)


async def send_daily_digests(ctx: JobContext) -> str:
    """The 24 hours up to the run, for each manager's team."""
    local_date = ctx.now.astimezone(ctx.timezone).date()
    return await _send_digests(ctx, "daily", Period.day_before(ctx.now, ctx.timezone), local_date.isoformat())


async def send_weekly_digests(ctx: JobContext, pages_base_url: str = "") -> str:
    """The last complete week (Monday 00:00 – Sunday 24:00 local), for each manager's team; with the pages'
    public origin, a card that opens the 看板 after it."""
    period = Period.week_before(ctx.now, ctx.timezone)
    year, week, _ = period.start.astimezone(ctx.timezone).date().isocalendar()
    return await _send_digests(ctx, "weekly", period, f"{year}-W{week:02d}", dashboard_url(pages_base_url))


def weekly_digests_job(pages_base_url: str) -> JobFunc:
    """`digests.weekly` for this deployment (SCRM_PAGE_BASE_URL: where the card's link points)."""
    return functools.partial(send_weekly_digests, pages_base_url=pages_base_url)


def dashboard_url(pages_base_url: str) -> str:
    """The 看板's address for a textcard, or "" when there is no public origin or it would be too long."""
    if not pages_base_url:
        return ""
    url = pages_base_url.rstrip("/") + DASHBOARD_PATH
    if len(url.encode()) > CARD_URL_BYTES:
        log.warning("SCRM_PAGE_BASE_URL makes the dashboard link longer than a textcard takes (%d bytes); "
                    "the weekly digest goes without it", CARD_URL_BYTES)
        return ""
    return url


async def _send_digests(ctx: JobContext, kind: str, period: Period, stamp: str, card_url: str = "") -> str:
    """One markdown digest per manager (and admin), each in its own transaction."""

    async def send(session: AsyncSession, manager: Staff) -> bool:
        scope = await scope_for(session, manager)
        report = await team_report(session, scope, period, as_of=ctx.now)
        # The weekly digest also shows the month's forecast (kept as the month's snapshot if first).
        forecast = await staff_outlook(session, manager, scope, ctx.now, ctx.timezone) if kind == "weekly" else None
        groups = await GroupService(session).moves(scope, period.start, period.end)
        parts = render_digest(kind, report, ctx.timezone, company_wide=scope.everyone, forecast=forecast, groups=groups)
        outbox, queued = OutboxService(session), []
        for number, content in enumerate(parts, start=1):
            queued.append(await outbox.enqueue(
                idempotency_key=f"digest:{kind}:{manager.id}:{stamp}" + (f":{number}" if number > 1 else ""),
                kind="app_message", staff_id=manager.id,
                payload={"touser": manager.userid, "msgtype": "markdown", "markdown": {"content": content}}))
        if card_url:
            await outbox.enqueue(idempotency_key=f"digest:{kind}:{manager.id}:{stamp}:card", kind="app_message",
                                 staff_id=manager.id, payload={"touser": manager.userid, "msgtype": "textcard",
                                                               "textcard": dashboard_card(report, ctx.timezone,
                                                                                          forecast, card_url)})
        return queued[0]

    return await for_each_staff(ctx, send, f"{kind} digest", roles=RECIPIENT_ROLES, recipients="manager(s)/admin(s)")


def render_digest(kind: str, report: TeamReport, tz: ZoneInfo, *, company_wide: bool = False,
                  forecast: Outlook | None = None, groups: Moves | None = None) -> list[str]:
    """The digest's markdown messages: one if it fits WeCom's size limit, else up to MAX_PARTS
    numbered parts, its lists shortened until they do."""
    for limit in LIST_LIMITS:
        parts = _split(_lines(kind, report, tz, limit, company_wide, forecast, groups or Moves()))
        if len(parts) <= MAX_PARTS:
            return parts
    return _cut_to_fit(parts)


def _lines(kind: str, report: TeamReport, tz: ZoneInfo, limit: int, company_wide: bool,
           forecast: Outlook | None, groups: Moves) -> list[str]:
    start, end = report.period.start.astimezone(tz), report.period.end.astimezone(tz)
    if kind == "daily":
        lines = [_md("digests.daily_title", date=_day(end.date())),
                 _md("digests.period", start=f"{start:%m-%d %H:%M}", end=f"{end:%m-%d %H:%M}")]
    else:
        lines = [_md("digests.weekly_title", start=_day(start.date()), end=_day(end.date() - timedelta(days=1)))]
    if company_wide:
        lines.append(_md("digests.company_wide"))
    lines.append("")
    if not report.has_activity and not (groups.joined or groups.left):
        lines.append(_md(f"digests.quiet_{kind}"))
    if report.new_customers:
        lines.append(_md("digests.new_customers", count=report.new_customers))
    if report.messages_in or report.messages_out:
        lines.append(_md("digests.messages", incoming=report.messages_in, outgoing=report.messages_out))
    if groups.joined or groups.left:
        lines.append(_md("groups.digest", joined=groups.joined, left=groups.left))
    mix = report.sentiment
    if mix.total:
        lines.append(_md("digests.sentiment", positive=mix.positive, neutral=mix.neutral, negative=mix.negative))
    if report.trending_negative:
        lines.append(_md("digests.trending_header"))
        lines += _capped([_md("digests.trending_line", name=c.name or _md("digests.customer_unnamed", id=c.customer_id),
                              score=c.sentiment) for c in report.trending_negative], limit)
    t = report.tickets
    if t.complaints or t.opened or t.resolved or t.sla_breached:
        lines.append(_md("digests.tickets", complaints=t.complaints, opened=t.opened, resolved=t.resolved,
                         breached=t.sla_breached))
    if report.overdue_followups:
        lines.append(_md("digests.overdue_header"))
        lines += _capped([_md("digests.overdue_line", name=r.name, count=r.count) for r in report.overdue_followups],
                         limit)
    lines += _deal_lines(report)
    if forecast is not None:
        lines += digest_lines(forecast)
    if report.keywords:
        words = [_md("digests.keyword", word=w, count=n) for w, n in report.keywords[:limit]]
        lines.append(_md("digests.keywords", words=join(_md("digests.keyword_separator"), words, "markdown")))
    return lines


def _deal_lines(report: TeamReport) -> list[str]:
    deals, lines = report.deals, []
    if deals.open_by_stage:
        order = {stage: i for i, stage in enumerate(default_stages().all)}
        stages = sorted(deals.open_by_stage.items(), key=lambda sc: (order.get(sc[0], len(order)), sc[0]))
        shown = [_md("digests.deals_stage", stage=s, count=n) for s, n in stages]
        lines.append(_md("digests.deals_open", stages=join(_md("digests.item_separator"), shown, "markdown")))
    if deals.moved or deals.won or deals.lost:
        key = "digests.deals_changed_amount" if deals.won_amount else "digests.deals_changed"
        lines.append(_md(key, moved=deals.moved, won=deals.won, lost=deals.lost, amount=_money(deals.won_amount)))
    return lines


def dashboard_card(report: TeamReport, tz: ZoneInfo, forecast: Outlook | None, url: str) -> dict[str, str]:
    """The textcard that opens the 看板: the week, this month's forecast so far, within WeCom's limits."""
    start, end = report.period.start.astimezone(tz).date(), report.period.end.astimezone(tz).date() - timedelta(days=1)
    week = render("dashboard.card.week", kind="textcard",
                  **{edge: render("digests.date", kind="textcard", month=day.month, day=day.day)
                     for edge, day in (("start", start), ("end", end))})
    lines = [render("dashboard.card.line_week", kind="textcard", week=week)]
    if forecast is not None:
        lines.append(render("dashboard.card.line_forecast", kind="textcard",
                            forecast=money_text(forecast.forecast.amount), won=money_text(forecast.forecast.won_amount),
                            won_deals=forecast.forecast.won_deals))
    lines.append(render("dashboard.card.line_open", kind="textcard"))
    return {"title": _bytes(render("dashboard.card.title", kind="textcard", week=week), CARD_TITLE_BYTES),
            "description": _bytes("".join(lines), CARD_DESCRIPTION_BYTES), "url": url,
            "btntxt": str(render("dashboard.card.button", kind="textcard"))[:CARD_BUTTON_CHARS]}


def _bytes(text: str, limit: int) -> str:
    """Cut at a character so WeCom never cuts inside one (or inside a <div>: the lines are whole or absent)."""
    if len(text.encode()) <= limit:
        return text
    return text.encode()[:limit].decode("utf-8", "ignore")


def _capped(lines: list[str], limit: int) -> list[str]:
    """The first `limit` lines, then how many more there are ("…等 N 位")."""
    if len(lines) <= limit:
        return lines
    return lines[:limit] + [_md("digests.more", count=len(lines) - limit)]


def _fits(content: str) -> bool:
    return len(content.encode("utf-8")) <= MAX_BYTES


def _split(lines: list[str]) -> list[str]:
    """Whole lines packed into messages that fit, each after the first headed by the title and its
    number ("（续 2/3）"); a single line too long for any message is shortened (absurdly long names)."""
    title, body = lines[0], [_clip(line) for line in lines[1:]]
    parts: list[list[str]] = [[title]]
    for line in body:
        if _fits("\n".join([*parts[-1], line, _continued(99, 99)])):
            parts[-1].append(line)
        else:
            parts.append([title, line])
    if len(parts) == 1:
        return ["\n".join(parts[0])]
    return ["\n".join([part[0] + (_continued(number, len(parts)) if number > 1 else ""), *part[1:]])
            for number, part in enumerate(parts, start=1)]


def _continued(number: int, total: int) -> str:
    return _md("digests.continued", part=number, parts=total)


def _clip(line: str) -> str:
    """A line that could not fit even a message of its own, cut at a character and marked."""
    budget = MAX_BYTES // 2
    if len(line.encode("utf-8")) <= budget:
        return line
    tail = _md("digests.truncated")
    return line.encode("utf-8")[:budget - len(tail.encode("utf-8"))].decode("utf-8", "ignore") + tail


def _cut_to_fit(parts: list[str]) -> list[str]:
    """Last resort when even the shortest lists need more than MAX_PARTS messages: keep the first
    ones, the last of them saying the rest was left out."""
    kept, tail = parts[:MAX_PARTS], _md("digests.truncated")
    lines = kept[-1].split("\n")
    while len(lines) > 1 and not _fits("\n".join([*lines, tail])):
        lines.pop()
    return [*kept[:-1], "\n".join([*lines, tail])]


def _md(key: str, **values: object) -> Markup:
    """Every line of a digest is WeCom markdown, so its values are escaped for markdown."""
    return render(key, kind="markdown", **values)


def _day(day: date) -> str:
    return _md("digests.date", month=day.month, day=day.day)


def _money(amount: int) -> str:
    if amount >= 10_000:
        return _md("digests.money_wan", value=f"{amount / 10_000:.2f}".rstrip("0").rstrip("."))
    return _md("digests.money_yuan", value=amount)


JOBS: dict[str, JobFunc] = {
    "digests.daily": send_daily_digests,
    "digests.weekly": send_weekly_digests,
}
