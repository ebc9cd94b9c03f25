"""The chat sidebar over HTTP, as its script calls it: the card, the rep's list, the quick actions (seen
back in chat), the data scope, and bad input refused with nothing changed (scrm/http/pages/sidebar.py)."""

from __future__ import annotations

from sqlalchemy import func, select
from yarl import URL

from crm_core.models import AuditEntry, Customer, FollowUp, Note
from scrm import keys
from tests.support.service import external_id

API = "/h5/api/sidebar"
HOSTILE_NAME = '<img src=x onerror="alert(1)">赵磊'


async def customer_id(chat, name: str) -> int:
    return (await chat.customer(name)).id


async def counts(chat) -> tuple[int, int]:
    async with chat.service.sessions() as session:
        notes = await session.scalar(select(func.count()).select_from(Note))
        follow_ups = await session.scalar(select(func.count()).select_from(FollowUp))
    return notes or 0, follow_ups or 0


async def audited(chat, action: str, actor: str) -> list[AuditEntry]:
    async with chat.service.sessions() as session:
        return list((await session.scalars(select(AuditEntry).where(AuditEntry.action == action,
                                                                    AuditEntry.actor == actor))).all())


async def test_the_page_is_a_shell_with_the_csrf_token_and_no_customer_data(browser, pages) -> None:
    await pages.onboard("赵磊")
    resp = await browser.login("zhangwei")
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert browser.csrf_token and '<script src="/h5/static/sidebar.js">' in html
    assert "sim/jssdk/jweixin.js" in html  # the JS-SDK (the simulator's double here) is loaded
    assert "赵磊" not in html  # customer data arrives as JSON and is put on the page as text
    assert "'unsafe-inline'" not in resp.headers["Content-Security-Policy"]


async def test_the_card_shows_what_chat_shows_with_the_phone_masked(browser, pages) -> None:
    await pages.onboard("赵磊", "孙丽")
    await browser.login("zhangwei")
    zhao = await pages.customer("赵磊")
    status, card = await browser.get(f"{API}/contacts/{external_id(pages.service.sim, '赵磊')}")
    assert status == 200
    c = card["customer"]
    assert c["id"] == zhao.id and c["name"] == "赵磊" and c["owner"] == "张伟"
    assert "****" in c["phone"] and zhao.phone not in str(card)
    for key in ("lifecycle", "heat", "deal", "sentiment", "tags", "groups", "tickets", "trend"):
        assert key in c
    assert (await browser.get(f"{API}/customers/{zhao.id}"))[1]["customer"] == c
    assert len(await audited(pages, "customer.view", "zhangwei")) == 2


async def test_opened_outside_a_chat_it_lists_the_same_customers_as_chat(browser, pages) -> None:
    await pages.onboard("赵磊", "孙丽", "周杰", "吴敏")
    await browser.login("zhangwei")
    status, mine = await browser.get(f"{API}/customers")
    assert status == 200
    names = [item["name"] for item in mine["items"]]
    [reply] = await pages.say("zhangwei", "我的客户")
    assert sorted(names) == ["周杰", "孙丽", "赵磊"]  # not 李娜's 吴敏
    positions = [reply.index(name) for name in names]
    assert positions == sorted(positions)  # in chat's order


async def test_a_note_and_a_follow_up_from_the_sidebar_are_seen_in_chat(browser, pages) -> None:
    await pages.onboard("赵磊")
    await browser.login("zhangwei")
    zhao = await customer_id(pages, "赵磊")
    status, card = await browser.post(f"{API}/customers/{zhao}/notes", {"text": "电话沟通，要报价 <b>加急</b>"})
    assert status == 200 and "已" in card["saved"]
    assert card["notes"][0]["text"] == "电话沟通，要报价 <b>加急</b>"
    status, card = await browser.post(f"{API}/customers/{zhao}/follow-ups", {"when": "明天下午3点", "text": "带方案上门"})
    assert status == 200 and card["follow_ups"][0]["text"] == "带方案上门"

    lookup = await pages.ask("zhangwei", "查 赵磊")
    assert "电话沟通，要报价" in lookup
    todo = await pages.ask("zhangwei", "我的待办")
    assert "带方案上门" in todo and "赵磊" in todo
    assert await audited(pages, "customer.note", "zhangwei") and await audited(pages, "customer.follow_up", "zhangwei")


async def test_writes_without_the_pages_csrf_token_change_nothing(browser, other_browser, pages) -> None:
    await pages.onboard("赵磊")
    await browser.login("zhangwei")
    zhao = await customer_id(pages, "赵磊")
    before = await counts(pages)
    for token in ("", "forged-token"):
        status, body = await browser.post(f"{API}/customers/{zhao}/notes", {"text": "x"}, csrf=token)
        assert status == 403 and "过期" in body["error"]
    await other_browser.login("lina")  # another session's token is not this one's
    status, _ = await browser.post(f"{API}/customers/{zhao}/notes", {"text": "x"}, csrf=other_browser.csrf_token)
    assert status == 403
    assert (await other_browser.post(f"{API}/customers/{zhao}/notes", {"text": "x"}))[0] == 404  # her token, not her customer
    assert (await counts(pages)) == before


async def test_a_customer_outside_the_reps_scope_is_refused_like_a_missing_one(browser, pages) -> None:
    await pages.onboard("赵磊", "吴敏")
    await browser.login("zhangwei")
    wu = await customer_id(pages, "吴敏")  # 李娜's customer, another team
    before = await counts(pages)
    hidden = await browser.get(f"{API}/customers/{wu}")
    missing = await browser.get(f"{API}/customers/987654321")
    assert hidden[0] == missing[0] == 404 and hidden[1] == missing[1]
    assert (await browser.get(f"{API}/contacts/{external_id(pages.service.sim, '吴敏')}"))[0] == 404
    for path, body in (("notes", {"text": "x"}), ("follow-ups", {"when": "明天", "text": "x"}),
                       ("tags", {"add": ["VIP"]}), ("stage", {"stage": "需求确认"})):
        status, answer = await browser.post(f"{API}/customers/{wu}/{path}", body)
        assert status == 404 and answer == missing[1], path
    assert (await counts(pages)) == before
    assert len(await audited(pages, "customer.view_denied", "zhangwei")) == 2
    assert await audited(pages, "customer.note_denied", "zhangwei")


async def test_a_manager_sees_the_team_and_an_admin_everyone(browser, other_browser, pages) -> None:
    await pages.onboard("赵磊", "吴敏")
    await browser.login("liuyang")  # 销售部 manager
    assert (await browser.get(f"{API}/customers/{await customer_id(pages, '赵磊')}"))[0] == 200
    await other_browser.login("chenjing")  # admin
    assert (await other_browser.get(f"{API}/customers/{await customer_id(pages, '吴敏')}"))[0] == 200


async def test_bad_input_gets_a_clear_refusal_and_changes_nothing(browser, pages) -> None:
    await pages.onboard("赵磊")
    await browser.login("zhangwei")
    zhao = await customer_id(pages, "赵磊")
    before = await counts(pages)
    cases = [
        ("notes", "not json"), ("notes", ["a list"]), ("notes", {"text": ""}), ("notes", {"text": "  "}),
        ("notes", {"text": "x" * 2001}), ("notes", {"text": "a\x00b"}), ("notes", {"text": 42}),
        ("follow-ups", {"when": "昨天", "text": "x"}), ("follow-ups", {"when": "找个时间", "text": "x"}),
        ("follow-ups", {"when": "明天 顺便带方案", "text": "x"}), ("follow-ups", {"when": "", "text": "x"}),
        ("tags", {"add": []}), ("tags", {"add": ["x" * 65]}), ("tags", {"add": "VIP"}),
        ("stage", {"stage": "不存在的阶段"}), ("stage", {"stage": "报价谈判", "values": {"hack": "1"}}),
    ]
    for path, body in cases:
        status, answer = await browser.post(f"{API}/customers/{zhao}/{path}", body)
        assert status == 400 and answer["error"], (path, body)
    assert (await browser.post(f"{API}/customers/abc/notes", {"text": "x"}))[0] == 404
    assert (await browser.get(f"{API}/contacts/{'x' * 100}"))[0] == 404
    assert (await counts(pages)) == before
    async with pages.service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.in_(("customer.note", "customer.follow_up", "customer.tags", "deal.stage")))) == 0


async def test_a_tag_reaches_wecom_and_a_stage_asks_for_what_it_needs(browser, pages) -> None:
    await pages.onboard("孙丽")
    await browser.login("zhangwei")
    sun = await customer_id(pages, "孙丽")
    status, card = await browser.post(f"{API}/customers/{sun}/tags", {"add": ["重要客户"], "remove": []})
    assert status == 200 and "重要客户" in card["customer"]["tags"]
    await pages.service.settle()
    follow = next(f for f in pages.service.sim.external_contacts[external_id(pages.service.sim, "孙丽")]["follow_user"]
                  if f["userid"] == "zhangwei")
    assert "重要客户" in {t["tag_name"] for t in follow["tags"]}  # WeCom's corp tag, through the tag push

    status, asked = await browser.post(f"{API}/customers/{sun}/stage", {"stage": "输单"})
    assert status == 409 and asked["field"] == "lost_reason"
    status, card = await browser.post(f"{API}/customers/{sun}/stage",
                                      {"stage": "输单", "values": {"lost_reason": "价格太高"}})
    assert status == 200 and "价格太高" in card["customer"]["deal"]
    assert "价格太高" in await pages.ask("zhangwei", "查 孙丽")


async def test_support_staff_may_note_but_not_move_deals(browser, pages) -> None:
    await pages.onboard("何军")  # 王芳's (support) customer
    await browser.login("wangfang")
    he = await customer_id(pages, "何军")
    assert (await browser.post(f"{API}/customers/{he}/notes", {"text": "已回访"}))[0] == 200
    status, body = await browser.post(f"{API}/customers/{he}/stage", {"stage": "需求确认"})
    assert status == 403 and body["error"]


async def test_html_in_a_name_comes_back_as_the_characters_it_is(browser, pages) -> None:
    await pages.onboard("赵磊")
    async with pages.service.sessions() as session:
        customer = await session.scalar(select(Customer).where(Customer.name == "赵磊"))
        customer.name = HOSTILE_NAME
        await session.commit()
    await browser.login("zhangwei")
    resp = await browser.http.get(browser.url(f"{API}/customers/{customer.id}"))
    assert resp.content_type == "application/json"
    assert (await resp.json())["customer"]["name"] == HOSTILE_NAME
    page = await (await browser.http.get(browser.url("/h5/sidebar"))).text()
    assert "onerror" not in page


async def test_my_customers_in_chat_links_to_the_sidebar(browser, pages) -> None:
    await pages.onboard("赵磊")
    assert "<a href" not in await pages.ask("zhangwei", "我的客户")  # no SCRM_PAGE_BASE_URL, no link
    origin = str(browser.url("/")).rstrip("/")
    pages.service.app[keys.DISPATCHER].page_base_url = origin  # as SCRM_PAGE_BASE_URL would set it
    reply = await pages.ask("zhangwei", "我的客户")
    link = f'<a href="{origin}/h5/sidebar?view=mine">'
    assert link in reply and "赵磊" in reply
    page, visited = await browser.open("/h5/sidebar?view=mine", as_member="zhangwei")
    assert page.status == 200 and URL(visited[-1]).query["view"] == "mine"
