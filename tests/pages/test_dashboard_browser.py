"""A manager opens the 看板 in real Chromium (Debian's) through the simulated WeCom login: the tables show
what `scrm report` prints for the same scope and period, every chart draws (a canvas each), a name with
HTML in it stays text, and no request leaves localhost (ECharts is the service's own copy). Screenshots
at phone (390 px) and desktop width go to test-artifacts/ (docs/screenshots/ holds the README's)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import update

from crm_core.models import Staff
from tests.support.dashboard import scrm_report
from tests.support.chat import Chat

WAIT_MS = 15_000  # generous for a shared 2-core machine; every wait ends on a DOM condition
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHARTS = ("funnel-chart", "losses-chart", "trend-chart", "attainment-chart", "forecast-chart")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")



async def rows_of(page, table_id: str) -> list[list[str]]:
    return await page.eval_on_selector_all(
        f"#{table_id} tbody tr", "rows => rows.map(r => Array.from(r.cells, c => c.textContent))")


@pytest.mark.slow
async def test_a_managers_dashboard_in_chromium_shows_the_report_numbers_and_draws(seeded: Chat, chromium, capsys):
    from playwright.async_api import async_playwright, expect

    chat = seeded
    async with chat.service.sessions() as session:  # a name with markup in it must reach the screen as text
        await session.execute(update(Staff).where(Staff.userid == "lina").values(name="<b>李娜</b>"))
        await session.commit()
    chat.service.sim.web.member = "liuyang"  # signed in to the WeCom client the simulator plays
    url = str(chat.service.client.make_url("/h5/dashboard?period=last_90_days"))
    requests: list[str] = []
    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            page.on("request", lambda request: requests.append(request.url))
            page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
                    if response.status >= 400 else None)
            page.on("console", lambda message: errors.append(f"{message.text} {message.location.get('url')}")
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(url)
            await expect(page.locator("body[data-ready=true]")).to_have_count(1, timeout=WAIT_MS)
            for chart in CHARTS:
                await expect(page.locator(f"#{chart} canvas")).to_have_count(1, timeout=WAIT_MS)

            at = await page.evaluate("fetch('/h5/api/dashboard?period=last_90_days').then(r => r.json())")
            period = at["period"]
            funnel = await scrm_report(capsys, "funnel", "--since", period["since"], "--until", period["until"],
                                       "--at", at["generated_at"], "--as", "liuyang")
            shown = await rows_of(page, "funnel-table")
            assert shown and all(funnel.has_row(row) for row in shown), (shown, funnel.lines)
            assert funnel.has(await page.locator("#funnel .summary").text_content())
            assert funnel.has(await page.locator("#losses .summary").text_content())
            targets = await scrm_report(capsys, "targets", "--month", period["until"][:7], "--at", at["generated_at"],
                                        "--as", "liuyang")
            attainment = await rows_of(page, "attainment-table")
            assert attainment and all(targets.has_row(row) for row in attainment), (attainment, targets.lines)
            assert any(row[0] == "<b>李娜</b>" for row in attainment)
            assert await page.locator("#attainment-table b").count() == 0
            trend = await scrm_report(capsys, "trend", "--month", period["until"][:7], "--at", at["generated_at"],
                                      "--as", "liuyang")
            assert all(trend.has_row(row) for row in await rows_of(page, "trend-table"))
            forecast = await scrm_report(capsys, "forecast", "--at", at["generated_at"], "--as", "liuyang")
            assert forecast.has(await page.locator("#forecast .summary").first.text_content())
            await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)

            # One department: the page asks again and every table follows.
            await page.locator("#department").select_option(label="销售部")
            await expect(page.locator("#scope")).to_contain_text("刘洋 的范围 · 销售部", timeout=WAIT_MS)
            await expect(page.locator("#attainment-chart canvas")).to_have_count(1, timeout=WAIT_MS)
            narrowed = await scrm_report(capsys, "targets", "--month", period["until"][:7], "--at",
                                         at["generated_at"], "--as", "liuyang", "--department", "销售部")
            assert all(narrowed.has_row(row) for row in await rows_of(page, "attainment-table"))
            assert "department=2" in page.url

            await page.set_viewport_size({"width": 1280, "height": 900})
            await page.goto(url)
            await expect(page.locator("body[data-ready=true]")).to_have_count(1, timeout=WAIT_MS)
            for chart in CHARTS:
                await expect(page.locator(f"#{chart} canvas")).to_have_count(1, timeout=WAIT_MS)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-desktop.png"), full_page=True)
        finally:
            await browser.close()
    leaving = [u for u in requests if urlsplit(u).hostname not in LOCAL_HOSTS]
    assert not leaving, leaving
    assert any(u.endswith("/h5/static/vendor/echarts/echarts.min.js") for u in requests)
    # No script error, no Content-Security-Policy refusal; Chromium's own /favicon.ico probe (the service has none)
    # is the browser's, not the page's.
    assert not [e for e in errors if not e.endswith("/favicon.ico")], errors
