"""The sidebar in real Chromium (Debian's, /usr/bin/chromium, driven by Playwright): opened in the toolbar of
a rep's chat with a customer, through the simulated WeCom OAuth and JS-SDK, as WeCom's client would; what
the rep writes there is what chat shows. And the demo console opening the pages as a chosen member.

Screenshots go to a temporary folder, or to $SCRM_SCREENSHOT_DIR (docs/screenshots for the README).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_core.models import Customer
from scrm.demo.world import running_demo
from tests.support.service import external_id

WAIT_MS = 15_000  # generous for a shared 2-core machine; every wait ends on a DOM condition
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
HOSTILE = '<img src=x onerror="window.__pwned=1">赵磊'



@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCRM_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_rep_works_a_customer_from_the_chat_toolbar_and_chat_agrees(pages, chromium) -> None:
    from playwright.async_api import async_playwright, expect

    await pages.onboard("赵磊", "吴敏")
    sim, service = pages.service.sim, pages.service
    sim.web.member, sim.web.open_chat = "zhangwei", external_id(sim, "赵磊")
    sidebar = str(service.client.make_url("/h5/sidebar"))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport=PHONE)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(sidebar)
            await expect(page.locator("#customer-name")).to_have_text("赵磊", timeout=WAIT_MS)
            assert page.url.split("#")[0] == sidebar  # the OAuth code is gone from the address
            assert [c for c in sim.web.agent_configs if c["errMsg"] == "agentConfig:ok"]  # the client accepted it
            await expect(page.locator("#owner")).to_have_text("张伟")
            assert "****" in await page.locator("#phone").inner_text()

            await page.locator("#note-form textarea").fill("电话沟通，客户要报价")
            await page.locator("#note-form button").click()
            await expect(page.locator("#notes")).to_contain_text("电话沟通，客户要报价", timeout=WAIT_MS)
            await page.locator("#follow-up-form [name=when]").fill("明天下午3点")
            await page.locator("#follow-up-form [name=text]").fill("带方案上门")
            await page.locator("#follow-up-form button").click()
            await expect(page.locator("#follow-ups")).to_contain_text("带方案上门", timeout=WAIT_MS)
            await page.locator("#follow-up-form [name=when]").fill("昨天")
            await page.locator("#follow-up-form button").click()
            await expect(page.locator("#follow-up-form .notice.error")).to_contain_text("过去", timeout=WAIT_MS)
            assert not errors

            # what the rep wrote in the sidebar is what chat knows
            assert "电话沟通，客户要报价" in await pages.ask("zhangwei", "查 赵磊")
            todo = await pages.ask("zhangwei", "我的待办")
            assert "带方案上门" in todo and "赵磊" in todo

            # another team's customer: a refusal, not data
            wu = await pages.customer("吴敏")
            await page.goto(f"{sidebar}?customer={wu.id}")
            await expect(page.locator(".notice.error")).to_contain_text("无权查看", timeout=WAIT_MS)
            assert "吴敏" not in await page.locator("#app").inner_text()

            # a name made of HTML is shown as the characters it is, and runs nothing
            async with service.sessions() as session:
                zhao = await session.scalar(select(Customer).where(Customer.name == "赵磊"))
                zhao.name = HOSTILE
                await session.commit()
            await page.goto(sidebar)
            await expect(page.locator("#customer-name")).to_have_text(HOSTILE, timeout=WAIT_MS)
            assert await page.evaluate("window.__pwned") is None
            assert await page.locator("#app img").count() == 0
        finally:
            await browser.close()


@pytest.mark.slow
async def test_the_demo_console_opens_the_pages_as_the_chosen_member(tmp_path, chromium, shots) -> None:
    from playwright.async_api import async_playwright, expect

    async with running_demo(port=0, data_dir=tmp_path / "data") as demo, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await page.goto(demo.console_url)
            zhao = external_id(demo.demo.sim, "赵磊")
            await page.locator("#page-as").select_option("zhangwei")
            await page.locator("#page-chat").select_option(zhao)
            await page.locator("#open-sidebar").click()
            frame = page.frame_locator("#page-frame")
            await expect(frame.locator("#customer-name")).to_have_text("赵磊", timeout=WAIT_MS)
            await page.set_viewport_size({"width": 1440, "height": 1400})  # the record and the page, one above the other
            await page.screenshot(path=str(shots / "demo-console-sidebar.png"))
            await page.set_viewport_size({"width": 1440, "height": 900})

            await page.locator("#page-chat").select_option("")  # from the workbench: the rep's customers
            await page.locator("#open-sidebar").click()
            await expect(frame.locator("#mine")).to_contain_text("赵磊", timeout=WAIT_MS)

            await page.locator("#page-as").select_option("lina")  # another rep: the page logs in as her
            await page.locator("#open-sidebar").click()
            await expect(frame.locator("#mine")).to_contain_text("吴敏", timeout=WAIT_MS)
            assert "赵磊" not in await frame.locator("#mine").inner_text()
            assert await page.locator("#open-dashboard").is_disabled()  # 看板 is for managers

            # a day's work on 赵磊, through the console's chats, for the screenshots
            for chat, line in ((f"customer:{zhao}", "你好，上次说的冷链箱，能发一份新的报价单吗？"),
                               ("staff:zhangwei", "记 赵磊 电话沟通，客户要 200 台冷链箱的报价"),
                               ("staff:zhangwei", "跟进 赵磊 明天上午10点 发报价单"),
                               ("staff:zhangwei", "阶段 赵磊 需求确认"),
                               (f"customer:{zhao}", "好的，谢谢，价格合适这周就定")):
                assert (await page.request.post(f"{demo.service_url}/demo/api/say",
                                                data={"chat": chat, "text": line})).ok
            for viewport, name in ((PHONE, "sidebar-phone.png"), (DESKTOP, "sidebar-desktop.png")):
                alone = await browser.new_page(viewport=viewport)
                await alone.goto(f"{demo.service_url}/demo/pages/open?as=zhangwei&page=sidebar&chat={zhao}")
                await expect(alone.locator("#customer-name")).to_have_text("赵磊", timeout=WAIT_MS)
                await expect(alone.locator("#notes")).to_contain_text("冷链箱", timeout=WAIT_MS)
                await alone.screenshot(path=str(shots / name), full_page=True)
                await alone.close()
        finally:
            await browser.close()
