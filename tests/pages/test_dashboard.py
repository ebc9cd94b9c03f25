"""/h5/dashboard and /h5/api/dashboard: managers and admins only, scoped like chat, every figure equal to
what `scrm report` prints for the same viewer, period and department; bad filters refused."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from config.templates import render
from crm_core.db import utcnow
from crm_core.models import AuditEntry
from tests.support.chat import SHANGHAI
from tests.support.dashboard import scrm_report


async def figures(browser, **params) -> dict:
    resp = await browser.http.get(browser.url("/h5/api/dashboard"), params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def assert_same_as_reports(capsys, body: dict, *who: str) -> None:
    """Every table row and summary line of the page's figures is a line `scrm report` prints."""
    period, at = body["period"], body["generated_at"]
    month = period["until"][:7]
    funnel = await scrm_report(capsys, "funnel", "--since", period["since"], "--until", period["until"], "--at", at, *who)
    assert funnel.has(body["funnel"]["summary"])
    assert body["funnel"]["rows"] and all(funnel.has_row(row) for row in body["funnel"]["rows"]), funnel.lines
    assert funnel.has(body["losses"]["title"])
    assert all(funnel.has_row(row) for row in body["losses"]["rows"])
    assert not body["losses"]["reasons_text"] or funnel.has(body["losses"]["reasons_text"])
    trend = await scrm_report(capsys, "trend", "--month", month, "--at", at, *who)
    assert len(body["trend"]["rows"]) == 6 and all(trend.has_row(row) for row in body["trend"]["rows"]), trend.lines
    targets = await scrm_report(capsys, "targets", "--month", month, "--at", at, *who)
    assert body["attainment"]["rows"] and all(targets.has_row(row) for row in body["attainment"]["rows"])
    assert len([line for line in targets.lines if "元" in line or "万" in line]) == len(body["attainment"]["rows"])
    forecast = await scrm_report(capsys, "forecast", "--at", at, *who)
    assert forecast.has(body["forecast"]["summary"]) and forecast.has(body["forecast"]["review"])


async def test_a_managers_figures_are_what_scrm_report_prints(seeded, browser, capsys):
    await browser.login("liuyang", "/h5/dashboard")
    for period in ("last_90_days", "this_month", "last_30_days"):
        body = await figures(browser, period=period)
        assert body["scope"] == {"label": "刘洋 的范围", "department": None}
        assert [d["name"] for d in body["departments"]] == ["销售部", "客户服务部"]
        await assert_same_as_reports(capsys, body, "--as", "liuyang")
    body = await figures(browser, period="last_90_days")
    assert body["funnel"]["won_deals"] == 2 and body["losses"]["deals"] == 2
    assert [(s["stage"], s["deals"]) for s in body["losses"]["stages"]] == [("初访", 2)]
    assert {r["reason"] for r in body["losses"]["reasons"]} == {"价格太高", "选了竞品"}
    zhang = next(r for r in body["attainment"]["reps"] if r["userid"] == "zhangwei")
    now = utcnow().astimezone(SHANGHAI)
    won_this_month = 300_000 if (now - timedelta(days=2)).month == now.month else 0  # 赵磊, won 2 days ago
    assert (zhang["target"], zhang["won_amount"]) == (500_000, won_this_month)

    narrowed = await figures(browser, period="last_90_days", department="2")
    assert narrowed["scope"] == {"label": "刘洋 的范围 · 销售部", "department": 2}
    await assert_same_as_reports(capsys, narrowed, "--as", "liuyang", "--department", "销售部")


async def test_an_admin_sees_the_company_and_any_department(seeded, browser, capsys):
    await browser.login("chenjing", "/h5/dashboard")
    body = await figures(browser, period="last_90_days")
    assert body["scope"]["label"] == "全公司"
    assert {d["name"] for d in body["departments"]} >= {"销售部", "客户服务部", "行政部"}
    await assert_same_as_reports(capsys, body, "--as", "chenjing")
    await assert_same_as_reports(capsys, body)  # the admin's view is the company's
    assert (await figures(browser, period="last_month", department="4"))["scope"]["department"] == 4


async def test_reps_are_refused_and_bad_filters_change_nothing(seeded, browser, other_browser):
    resp = await browser.login("zhangwei", "/h5/dashboard")
    assert resp.status == 403
    assert render("pages.refusals.managers_only") in await resp.text()
    api = await browser.http.get(browser.url("/h5/api/dashboard"))
    assert api.status == 403 and (await api.json())["error"] == render("pages.refusals.managers_only")

    await other_browser.login("liuyang", "/h5/dashboard")
    for params, status in (({"period": "forever"}, 400), ({"department": "4"}, 404), ({"department": "99"}, 404),
                           ({"department": "二"}, 404), ({"department": "2' or 1=1"}, 404)):
        resp = await other_browser.http.get(other_browser.url("/h5/api/dashboard"), params=params)
        assert resp.status == status, params
        assert (await resp.json())["error"]
    async with seeded.service.sessions() as session:
        trail = [(e.actor, e.action) for e in (await session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("dashboard.%")).order_by(AuditEntry.id))).all()]
    assert trail == [("zhangwei", "dashboard.view_denied"), ("zhangwei", "dashboard.view_denied")]


async def test_the_page_is_a_shell_whose_script_and_charts_come_from_here(seeded, browser):
    resp = await browser.login("liuyang", "/h5/dashboard")
    html = await resp.text()
    assert resp.status == 200
    assert '<script src="/h5/static/dashboard.js"></script>' in html
    assert '"echarts": "/h5/static/vendor/echarts/echarts.min.js"' in html or \
        '"echarts":"/h5/static/vendor/echarts/echarts.min.js"' in html
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    for path in ("/h5/static/dashboard.js", "/h5/static/dashboard.css", "/h5/static/vendor/echarts/echarts.min.js"):
        static = await browser.http.get(browser.url(path))
        assert static.status == 200, path
    unauthenticated = await seeded.service.client.get("/h5/api/dashboard")
    assert unauthenticated.status == 401
