"""The browser console of `scrm demo`: a visitor chats as a rep and as a customer, watches the
complaint become a ticket on the customer's record, moves the clock and sees the morning arrive.

Runs the demo in-process and drives the page in headless Chromium (Debian's, at /usr/bin/chromium:
Playwright cannot download its own here). Assertions read the page's text, never pixels.
"""

from __future__ import annotations

import re

import aiohttp
import pytest

from config.settings import Settings
from scrm.app import create_app
from scrm.demo.world import OVERDUE_FOLLOWUP, running_demo

WAIT_MS = 15_000  # generous for a shared 2-core machine; every wait ends on a DOM condition
TICKET_NUMBER = re.compile(r"T\d{8}-\d{4}")
COMPLAINT = "上次的货用了两天就坏了，不给退款我就去12315投诉"



def test_only_the_demo_serves_the_console(tmp_path):
    """`scrm serve` must not expose a page that acts as anyone without a password."""
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/scrm.sqlite3"))
    paths = [resource.canonical for resource in app.router.resources()]
    assert not [p for p in paths if p.startswith("/demo")], paths


@pytest.mark.slow
async def test_console_refuses_bad_lines_and_unknown_personas(tmp_path):
    async with running_demo(port=0, data_dir=tmp_path / "data") as demo, aiohttp.ClientSession() as http:
        say = f"{demo.service_url}/demo/api/say"
        for body in ({"chat": "staff:nobody", "text": "查 赵磊"}, {"chat": "staff:zhangwei", "text": "  "},
                     {"chat": "staff:zhangwei", "text": "查" * 2001}):
            async with http.post(say, json=body) as resp:
                assert resp.status == 400, body
        async with http.post(say, data="not json") as resp:
            assert resp.status == 400
        async with http.post(f"{demo.service_url}/demo/api/clock", json={"preset": "yesterday"}) as resp:
            assert resp.status == 400
        async with http.get(f"{demo.service_url}/demo/api/state") as resp:
            state = await resp.json()
        assert state["entries"] == []  # nothing was sent on anyone's behalf


@pytest.mark.slow
async def test_visitor_chats_sees_the_ticket_and_moves_the_clock(tmp_path, chromium):
    from playwright.async_api import async_playwright, expect

    async with running_demo(port=0, data_dir=tmp_path / "data") as demo, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await page.goto(demo.console_url)
            messages, record = page.locator("#messages"), page.locator("#record")

            def customer(name: str):
                return page.locator("#customer-list .chat-item").filter(has=page.locator(".chat-name", has_text=name))

            async def say(text: str) -> None:
                await page.locator("#input").fill(text)
                await page.locator("#input").press("Enter")

            # The sales rep looks a customer up: the card comes back as the bot's bubble, phone masked.
            await page.locator('#staff-list [data-chat="staff:zhangwei"]').click()
            await expect(page.locator("#chat-title")).to_contain_text("张伟（销售）", timeout=WAIT_MS)
            await say("查 赵磊")
            await expect(messages.locator(".msg.out .bubble")).to_have_text("查 赵磊", timeout=WAIT_MS)
            card = messages.locator(".msg.in .bubble").last
            await expect(card).to_contain_text("【赵磊】华东精密机械有限公司", timeout=WAIT_MS)
            await expect(card).to_contain_text("138****1001")

            # The customer complains through 微信客服: acknowledged with a ticket number, and the
            # record panel shows the open ticket and the negative mood.
            await customer("赵磊").click()
            await say(COMPLAINT)
            await expect(messages.locator(".msg.in .bubble").last).to_contain_text(TICKET_NUMBER, timeout=WAIT_MS)
            await expect(record.locator(".record-name")).to_have_text("赵磊", timeout=WAIT_MS)
            await expect(page.locator("#record-tickets")).to_contain_text(TICKET_NUMBER, timeout=WAIT_MS)
            await expect(record).to_contain_text("负面")
            await expect(record).to_contain_text(COMPLAINT)
            # The support agent was handed the ticket: their chat shows an unread message.
            await expect(page.locator('[data-chat="staff:wangfang"] .badge')).to_be_visible(timeout=WAIT_MS)

            # Next morning 09:00: the rep's morning list names yesterday's missed follow-up, and
            # 周杰's birthday greeting waits in 群发助手 for the rep to send.
            await page.locator('[data-preset="nine"]').click()
            await expect(page.locator("#status")).to_contain_text("已快进到", timeout=WAIT_MS)
            await expect(page.locator("#clock-now")).to_contain_text("09:00")
            await page.locator('#staff-list [data-chat="staff:zhangwei"]').click()
            _, overdue_customer, overdue_text = OVERDUE_FOLLOWUP
            await expect(messages).to_contain_text(overdue_text, timeout=WAIT_MS)
            await expect(messages).to_contain_text(overdue_customer)
            task = messages.locator(".bubble.card", has_text="群发助手")
            await expect(task).to_contain_text("周杰")
            await task.get_by_role("button", name="发送").click()
            await expect(task).to_contain_text("已发送", timeout=WAIT_MS)
            await page.screenshot(path=str(tmp_path / "demo_console.png"), full_page=True)
            await customer("周杰").click()
            await expect(messages.locator(".msg.in .bubble")).to_contain_text("生日快乐", timeout=WAIT_MS)
            await expect(page.locator('[data-preset="nine"]')).to_be_disabled()  # the past cannot be revisited
        finally:
            await browser.close()


async def test_a_handover_in_the_demo_settles_when_a_day_passes(tmp_path):
    """转交 in the console: WeCom takes its 24 hours on the demo clock, then the customer hears who
    serves them now and the manager gets the summary."""
    async with running_demo(port=0, data_dir=tmp_path / "data") as demo, aiohttp.ClientSession() as http:
        api = f"{demo.service_url}/demo/api"
        async with http.post(f"{api}/say", json={"chat": "staff:liuyang", "text": "转交 赵磊 李娜"}) as resp:
            assert resp.status == 200
        async with http.post(f"{api}/clock", json={"preset": "day"}) as resp:
            assert resp.status == 200
        async with http.get(f"{api}/state") as resp:
            entries = (await resp.json())["entries"]
    zhao = next(e for e in entries if e["chat"].startswith("customer:") and "接替" in e["text"])
    assert zhao["sender"] == "李娜"
    assert any(e["chat"] == "staff:liuyang" and "1 位已由 李娜 接手" in e["text"] for e in entries)


# Page elements wider than the screen, outside the strips meant to scroll sideways within themselves.
OVERFLOWING = """() => [...document.querySelectorAll("body *")]
    .filter((e) => !e.closest(".sidebar, .suggestions") && e.getBoundingClientRect().width > 0)
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 || e.getBoundingClientRect().left < -1)
    .map((e) => e.tagName + "." + e.className)"""


@pytest.mark.slow
async def test_on_a_phone_wide_screen_the_console_fits_and_the_chat_works(tmp_path, chromium):
    """375 × 667 CSS px (an iPhone SE / 8): no sideways scrolling, and a rep and a customer can chat."""
    from playwright.async_api import async_playwright, expect

    async with running_demo(port=0, data_dir=tmp_path / "data") as demo, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
            await page.goto(demo.console_url)
            messages = page.locator("#messages")
            await page.locator('#staff-list [data-chat="staff:zhangwei"]').click()
            await page.locator("#input").fill("查 赵磊")
            await page.locator("#send").click()
            card = messages.locator(".msg.in .bubble").last
            await expect(card).to_contain_text("【赵磊】华东精密机械有限公司", timeout=WAIT_MS)

            # A customer further along the strip of chats is reached by swiping it, not the page.
            await page.locator("#customer-list .chat-item", has_text="赵磊").click()
            await page.locator("#input").fill(COMPLAINT)
            await page.locator("#input").press("Enter")
            await expect(messages.locator(".msg.in .bubble").last).to_contain_text(TICKET_NUMBER, timeout=WAIT_MS)

            width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], f"the page scrolls sideways: {width[0]} px of content in {width[1]} px"
            assert await page.evaluate(OVERFLOWING) == []
            for target in ("#input", "#send", "#messages .msg.in .bubble >> nth=-1"):
                box = await page.locator(target).bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375 and box["y"] + box["height"] <= 667, \
                    (target, box)
            await page.screenshot(path=str(tmp_path / "demo_console_phone.png"))
        finally:
            await browser.close()
